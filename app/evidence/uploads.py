"""Files sent to a group's evidence: streamed to storage as they arrive, judged by their
content, cleaned (images) or checked (sound, documents), then recorded all together.

A batch is all or nothing: when one file is refused, none is kept, and nothing is left on
disk or in the database; the message names the file and says why."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.deps import GroupContext
from app.evidence import images
from app.evidence.audio.limits import AudioRejected
from app.evidence.audio.probe import probe_audio
from app.evidence.errors import EvidenceRejected
from app.evidence.fields import TITLE_MAX, clean_alt_text, clean_common, parse_session_id
from app.evidence.filetypes import (
    KIND_FOR_FAMILY,
    PDF,
    POSTER_FAMILIES,
    SNIFF_BYTES,
    Family,
    FileType,
    TypeRefused,
    extension_of,
    identify,
    pdf_complete,
    zip_structure_ok,
)
from app.evidence.models import EvidenceItem, EvidenceKind, TranscriptStatus, Visibility
from app.evidence.multipart import FilePart
from app.evidence.searchtext import refresh_search_text
from app.models import ProgrammeSession, User
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
class UploadOptions:
    """The form's fields, checked."""

    session: ProgrammeSession | None
    poster: bool
    title: str
    description: str
    from_trio: bool
    visibility: Visibility
    alt_text: str


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


def _last(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[-1] if values else ""


async def read_options(
    db: AsyncSession, gctx: GroupContext, fields: dict[str, list[str]]
) -> UploadOptions:
    """The form's fields checked together (every problem reported at once). The title is
    optional here: without one, each file's name is used."""
    title = " ".join(_last(fields, "title").split())
    alt_text = " ".join(_last(fields, "alt_text").split())
    extra: dict[str, tuple[Callable[[str], str], str]] = {
        "kind": (_clean_kind, _last(fields, "kind")),
    }
    if alt_text:
        extra["alt_text"] = (clean_alt_text, alt_text)
    session_id: int | None = None
    try:
        session_id = parse_session_id(_last(fields, "session_id"))
    except EvidenceRejected as exc:
        extra["session_id"] = (_refuse(exc), "")
    common, cleaned = await clean_common(
        db,
        gctx=gctx,
        title=title or "untitled",  # checked for length only
        description=_last(fields, "description"),
        session_id=session_id,
        from_trio=_last(fields, "from_trio") in ("1", "on", "true", "yes"),
        visibility=_last(fields, "visibility") or Visibility.GROUP.value,
        extra=extra,
    )
    return UploadOptions(
        session=await db.get(ProgrammeSession, session_id) if session_id else None,
        poster=cleaned["kind"] == "poster",
        title=common.title if title else "",
        description=common.description,
        from_trio=common.from_trio,
        visibility=Visibility(common.visibility),
        alt_text=cleaned.get("alt_text", ""),
    )


def _clean_kind(raw: str) -> str:
    kind = raw or "auto"
    if kind not in ("auto", "poster"):
        raise EvidenceRejected("kind", "Choose whether this is a poster, or leave it to us.")
    return kind


def _refuse(exc: EvidenceRejected) -> Callable[[str], str]:
    def validate(_raw: str) -> str:
        raise exc

    return validate


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


async def _prepare(storage: Storage, incoming: IncomingFile, poster: bool) -> Prepared:
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


async def _discard_prepared(storage: Storage, prepared: list[Prepared]) -> None:
    with anyio.CancelScope(shield=True):
        for p in prepared:
            for stored in (p.stored, p.thumbnail):
                if stored is not None:
                    with contextlib.suppress(OSError):
                        await storage.delete(stored.key)


def _stem(filename: str) -> str:
    stem, dot, _ = filename.rpartition(".")
    return (stem if dot else filename) or filename


async def find_duplicate(db: AsyncSession, *, group_id: int, sha256: str) -> EvidenceItem | None:
    return await db.scalar(
        select(EvidenceItem)
        .where(EvidenceItem.group_id == group_id, EvidenceItem.sha256 == sha256)
        .limit(1)
    )


async def record_batch(
    db: AsyncSession,
    *,
    storage: Storage,
    gctx: GroupContext,
    actor: User,
    batch: Batch,
    options: UploadOptions,
) -> list[EvidenceItem]:
    """Check every received file, then record them all in one transaction."""
    incoming_files = [f for f in batch.files if f.stored is not None]
    if not incoming_files:
        raise EvidenceRejected(FILE_FIELD, "Choose at least one file to upload.")
    prepared: list[Prepared] = []
    try:
        seen: dict[str, str] = {}
        for incoming in incoming_files:
            assert incoming.stored is not None
            digest = incoming.stored.sha256
            if digest in seen:
                raise EvidenceRejected(
                    FILE_FIELD,
                    f"“{incoming.filename}” is the same file as “{seen[digest]}”; send it once.",
                    409,
                )
            seen[digest] = incoming.filename
            duplicate = await find_duplicate(db, group_id=gctx.group.id, sha256=digest)
            if duplicate is not None:
                raise EvidenceRejected(
                    FILE_FIELD,
                    f"“{incoming.filename}” is already on this group's board, as "
                    f"“{duplicate.title}” (item {duplicate.id}).",
                    409,
                )
            prepared.append(await _prepare(storage, incoming, options.poster))
    except BaseException:
        # Nothing was added to the session yet: no rollback, so the caller's objects stay
        # loaded for its error page.
        await _discard_prepared(storage, prepared)
        await batch.discard()
        raise
    items = _make_items(gctx, actor, options, prepared)
    try:
        db.add_all(items)
        await db.flush()
        for item in items:
            audit.record(
                db,
                actor=actor,
                action="evidence.upload",
                programme_id=gctx.ctx.programme.id,
                target=f"evidence:{item.id}",
                group_id=gctx.group.id,
                kind=item.kind,
                filename=item.filename,
                size_bytes=item.size_bytes,
                sha256=item.sha256,
            )
        await db.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.rollback()
        await _discard_prepared(storage, prepared)
        await batch.discard()
        raise
    return items


def _make_items(
    gctx: GroupContext, actor: User, options: UploadOptions, prepared: list[Prepared]
) -> list[EvidenceItem]:
    items = []
    count = len(prepared)
    for number, p in enumerate(prepared, start=1):
        family = p.file_type.family
        kind = EvidenceKind.POSTER if options.poster else KIND_FOR_FAMILY[family]
        filename = p.incoming.filename
        if extension_of(filename) not in p.file_type.extensions:
            # A HEIC photo is kept as JPEG: offer it under a name that says so.
            filename = f"{_stem(filename)}.{p.file_type.extensions[0]}"
        if options.title:
            title = options.title if count == 1 else f"{options.title} ({number} of {count})"
        else:
            title = _stem(p.incoming.filename)[:TITLE_MAX]
        is_picture = family is Family.IMAGE
        item = EvidenceItem(
            programme_id=gctx.ctx.programme.id,
            group_id=gctx.group.id,
            session_id=options.session.id if options.session else None,
            uploader_id=actor.id,
            kind=kind.value,
            title=title,
            description=options.description,
            from_trio=options.from_trio,
            visibility=options.visibility.value,
            filename=filename,
            content_type=p.file_type.content_type,
            size_bytes=p.stored.size,
            sha256=p.original_sha256,
            storage_key=p.stored.key,
            thumbnail_key=p.thumbnail.key if p.thumbnail else None,
            width=p.width,
            height=p.height,
            duration_seconds=p.duration,
            # One description fits one picture; several pictures are described one by one.
            alt_text=options.alt_text if is_picture and count == 1 else "",
            transcript_status=(
                TranscriptStatus.QUEUED.value
                if family is Family.AUDIO
                else TranscriptStatus.NONE.value
            ),
        )
        refresh_search_text(item)
        items.append(item)
    return items
