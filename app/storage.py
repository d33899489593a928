"""File storage behind a small interface; a local folder by default.

An object store would implement the same `Storage` protocol: `open_writer` streams a new
object (committed whole or not at all), `path` gives a local path for serving and for
tools that read files (an object store would download to a cache, or serve by redirect)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
from anyio import AsyncFile

CHUNK = 1024 * 1024
HEAD_BYTES = 4096


class UploadTooLarge(Exception):
    pass


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str
    head: bytes  # the first bytes, for sniffing the type from content


class StorageWriter(Protocol):
    size: int
    head: bytes

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> StoredFile: ...

    async def abort(self) -> None: ...


class Storage(Protocol):
    async def open_writer(self, *, max_bytes: int) -> StorageWriter: ...

    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile: ...

    async def adopt(self, source: Path) -> StoredFile:
        """Take a finished local file (made from a stored one, e.g. a cleaned image) into
        storage under a new key; the source is moved, not copied."""
        ...

    def path(self, key: str) -> Path: ...

    async def delete(self, key: str) -> None: ...


class LocalWriter:
    """Writes one new file under a temporary name; `commit` syncs it to disk and renames
    it into place, `abort` removes it. Small writes are gathered into 1 MB blocks so a
    stream of network-sized pieces costs one thread hop per megabyte."""

    def __init__(
        self, storage: LocalStorage, key: str, out: AsyncFile[bytes], partial: Path, max_bytes: int
    ) -> None:
        self._storage = storage
        self.key = key
        self._out = out
        self._partial = partial
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.size = 0
        self.head = b""
        self._done = False

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self._max_bytes:
            raise UploadTooLarge()
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._digest.update(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            block = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            await self._out.write(block)

    async def commit(self) -> StoredFile:
        try:
            await self._flush()
            await self._out.flush()
            await anyio.to_thread.run_sync(os.fsync, self._out.wrapped.fileno())
            await self._out.aclose()
            final = self._storage.path(self.key)
            await anyio.Path(self._partial).rename(final)
        except BaseException:
            await self.abort()
            raise
        self._done = True
        return StoredFile(
            key=self.key, size=self.size, sha256=self._digest.hexdigest(), head=self.head
        )

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._pending.clear()
        with anyio.CancelScope(shield=True):
            await self._out.aclose()
            await anyio.Path(self._partial).unlink(missing_ok=True)


class LocalStorage:
    """Files under one folder, named by random keys (never by what the uploader called them).

    A file is written to a temporary name and renamed into place only when complete,
    so a failed or cancelled upload leaves nothing behind."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

    async def open_writer(self, *, max_bytes: int) -> LocalWriter:
        key = secrets.token_hex(16)
        final = self.path(key)
        await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{key}.part")
        out = await anyio.open_file(partial, "wb")
        return LocalWriter(self, key, out, partial, max_bytes)

    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile:
        writer = await self.open_writer(max_bytes=max_bytes)
        try:
            async for chunk in chunks:
                await writer.write(chunk)
        except BaseException:
            await writer.abort()
            raise
        return await writer.commit()

    async def adopt(self, source: Path) -> StoredFile:
        key = secrets.token_hex(16)
        final = self.path(key)
        await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        stored = await anyio.to_thread.run_sync(_describe, source, key)
        await anyio.to_thread.run_sync(os.replace, source, final)
        return stored

    async def delete(self, key: str) -> None:
        await anyio.Path(self.path(key)).unlink(missing_ok=True)


def _describe(path: Path, key: str) -> StoredFile:
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            if not head:
                head = block[:HEAD_BYTES]
            size += len(block)
            digest.update(block)
        os.fsync(f.fileno())
    return StoredFile(key=key, size=size, sha256=digest.hexdigest(), head=head)
