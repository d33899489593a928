"""The files of an upload form as they arrive: each streamed to storage, its type judged
by its first bytes before anything is written, its size limit enforced on every piece.
A `Batch` holds one request's files, so that a refusal can discard them all."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from app.evidence.errors import EvidenceRejected
from app.evidence.filetypes import SNIFF_BYTES, FileType, TypeRefused, identify
from app.evidence.multipart import FilePart
from app.programmes.papers import safe_filename
from app.storage import Storage, StorageWriter, StoredFile, UploadTooLarge

MB = 1024 * 1024
FILE_FIELD = "files"
NAME_MAX = 255


class IncomingFile:
    """One file of the form, written to storage as it arrives. Its first bytes decide its
    type before anything is written; the size limit is enforced on every piece."""

    def __init__(self, storage: Storage, part: FilePart, *, max_bytes: int) -> None:
        self.storage = storage
        raw = part.filename
        if "/" in raw or "\\" in raw or raw.startswith("."):
            raise EvidenceRejected(
                FILE_FIELD,
                "A file name must not contain folders (“/” or “\\”) or start with a dot: "
                "rename the file and try again.",
            )
        if len(raw) > NAME_MAX:
            raise EvidenceRejected(
                FILE_FIELD,
                f"A file name is too long ({len(raw)} characters; at most {NAME_MAX}). "
                "Rename the file and try again.",
            )
        self.filename = safe_filename(raw, fallback="")
        self.max_bytes = max_bytes
        self.file_type: FileType | None = None
        self.stored: StoredFile | None = None
        self._buffer = b""
        self._writer: StorageWriter | None = None
        if not self.filename:
            raise EvidenceRejected(FILE_FIELD, "Choose a file to upload (one had no name).")

    async def write(self, data: bytes) -> None:
        if self._writer is not None:
            await self._write(data)
            return
        self._buffer += data
        if len(self._buffer) >= SNIFF_BYTES:
            await self._start()

    async def _start(self) -> None:
        try:
            self.file_type = identify(self._buffer, self.filename)
        except TypeRefused as exc:
            raise EvidenceRejected(FILE_FIELD, str(exc), 415) from None
        self._writer = await self.storage.open_writer(max_bytes=self.max_bytes)
        buffered, self._buffer = self._buffer, b""
        await self._write(buffered)

    async def _write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            await self._writer.write(data)
        except UploadTooLarge:
            raise EvidenceRejected(
                FILE_FIELD,
                f"“{self.filename}” is larger than the {self.max_bytes // MB} MB limit. "
                "Make it smaller (for sound, a shorter recording) and try again.",
                413,
            ) from None

    async def finish(self) -> None:
        if self._writer is None:
            if not self._buffer:
                raise EvidenceRejected(FILE_FIELD, f"“{self.filename}” is empty (0 bytes).")
            await self._start()
        assert self._writer is not None
        self.stored = await self._writer.commit()

    async def abort(self) -> None:
        if self._writer is not None:
            await self._writer.abort()


@dataclass
class Batch:
    """The files of one request, as they arrive."""

    storage: Storage
    max_bytes: int
    files: list[IncomingFile] = field(default_factory=list)

    async def open_file(self, part: FilePart, fields: dict[str, list[str]]) -> IncomingFile:
        if part.field != FILE_FIELD:
            raise EvidenceRejected(FILE_FIELD, "Send files in the form's file field.")
        incoming = IncomingFile(self.storage, part, max_bytes=self.max_bytes)
        self.files.append(incoming)
        return incoming

    async def discard(self) -> None:
        with anyio.CancelScope(shield=True):
            for incoming in self.files:
                await incoming.abort()
                if incoming.stored is not None:
                    await self.storage.delete(incoming.stored.key)
