"""File storage behind a small interface; a local folder by default."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

CHUNK = 1024 * 1024


class UploadTooLarge(Exception):
    pass


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str
    head: bytes  # the first bytes, for sniffing the type from content


class Storage(Protocol):
    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile: ...

    def path(self, key: str) -> Path: ...

    async def delete(self, key: str) -> None: ...


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

    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile:
        key = secrets.token_hex(16)
        final = self.path(key)
        await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{key}.part")
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLarge()
                    if len(head) < 4096:
                        head += chunk[: 4096 - len(head)]
                    digest.update(chunk)
                    await out.write(chunk)
                await out.flush()
                await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
            await anyio.Path(partial).rename(final)
        except BaseException:
            await anyio.Path(partial).unlink(missing_ok=True)
            raise
        return StoredFile(key=key, size=size, sha256=digest.hexdigest(), head=head)

    async def delete(self, key: str) -> None:
        await anyio.Path(self.path(key)).unlink(missing_ok=True)
