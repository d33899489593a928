"""Each received file looked at inside, before anything is recorded: a poster must be an
image, a PDF or slides; office files and PDFs must be complete; images are replaced by
their cleaned copy (app/evidence/images.py); sound must be whole, playable sound
(app/evidence/audio/)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import anyio

from app.evidence import images
from app.evidence.audio.limits import AudioRejected
from app.evidence.audio.probe import probe_audio
from app.evidence.errors import EvidenceRejected
from app.evidence.filetypes import (
    PDF,
    POSTER_FAMILIES,
    Family,
    FileType,
    pdf_complete,
    zip_structure_ok,
)
from app.evidence.incoming import FILE_FIELD, IncomingFile
from app.storage import Storage, StoredFile


@dataclass
class Prepared:
    incoming: IncomingFile
    file_type: FileType
    stored: StoredFile  # the file kept (a cleaned copy for images)
    original_sha256: str
    thumbnail: StoredFile | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None


async def prepare_file(storage: Storage, incoming: IncomingFile, poster: bool) -> Prepared:
    """Look inside the stored file; images are replaced by their cleaned copy."""
    stored, file_type = incoming.stored, incoming.file_type
    assert stored is not None and file_type is not None
    path = storage.path(stored.key)
    name = incoming.filename
    if poster and file_type.family not in POSTER_FAMILIES:
        raise EvidenceRejected(
            "kind", f"“{name}” is a sound file; a poster is an image, a PDF or slides.", 415
        )
    needs_zip_check = bool(file_type.zip_member or file_type.odf_mimetype)
    if needs_zip_check and not await anyio.to_thread.run_sync(zip_structure_ok, path, file_type):
        raise EvidenceRejected(
            FILE_FIELD,
            f"“{name}” is not a complete {file_type.name}: it may be damaged, or be "
            "another kind of file. Save it again in that format.",
            415,
        )
    if file_type is PDF and not await anyio.to_thread.run_sync(pdf_complete, path):
        raise EvidenceRejected(
            FILE_FIELD, f"“{name}” is an incomplete PDF (its end is missing). Save it again."
        )
    prepared = Prepared(incoming, file_type, stored, stored.sha256)
    if file_type.family is Family.IMAGE:
        try:
            clean = await anyio.to_thread.run_sync(
                lambda: images.clean_image(path, file_type, filename=name)
            )
        except images.ImageRefused as exc:
            raise EvidenceRejected(FILE_FIELD, str(exc)) from None
        cleaned = await storage.adopt(clean.path)
        prepared.thumbnail = await storage.adopt(clean.thumbnail)
        await storage.delete(stored.key)
        incoming.stored = None  # the original is gone; the cleaned copy is `prepared.stored`
        prepared.stored, prepared.file_type = cleaned, clean.file_type
        prepared.width, prepared.height = clean.width, clean.height
    elif file_type.family is Family.AUDIO:
        try:
            info = await anyio.to_thread.run_sync(probe_audio, path)
        except AudioRejected as exc:
            raise EvidenceRejected(FILE_FIELD, f"“{name}”: {exc}") from None
        prepared.duration = info.duration_seconds
    return prepared


async def discard_prepared(storage: Storage, prepared: list[Prepared]) -> None:
    with anyio.CancelScope(shield=True):
        for p in prepared:
            for stored in (p.stored, p.thumbnail):
                if stored is not None:
                    with contextlib.suppress(OSError):
                        await storage.delete(stored.key)
