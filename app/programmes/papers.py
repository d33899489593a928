"""Files attached to a session: pre-reading papers before it, recordings after it.

An upload is accepted only when its content matches its extension (we sniff the first
bytes, and look inside office files), and it streams to storage with a size limit, so
nothing oversized or disguised is ever left on disk."""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app import audit
from app.bodylimits import release_connection
from app.evidence.filetypes import zip_structure_ok
from app.models import Paper, ProgrammeSession, User
from app.storage import CHUNK, Storage, StoredFile, UploadTooLarge

MB = 1024 * 1024
PAPER_MAX_BYTES = 25 * MB
FILENAME_MAX = 150
TITLE_MAX = 200


class PaperKind(StrEnum):
    PRE_READING = "pre_reading"
    RECORDING = "recording"

    @property
    def label(self) -> str:
        return "Pre-reading" if self is PaperKind.PRE_READING else "Recording"


class PaperRejected(ValueError):
    """An upload we refuse, with the form field to blame and an HTTP status."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


def _is_pdf(head: bytes) -> bool:
    return head.startswith(b"%PDF-")


def _is_zip(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04")


def _is_png(head: bytes) -> bool:
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def _is_jpeg(head: bytes) -> bool:
    return head.startswith(b"\xff\xd8\xff")


def _is_iso_media(head: bytes) -> bool:
    """MP4 and M4A: an ISO base media file starts with an `ftyp` box."""
    return len(head) >= 12 and head[4:8] == b"ftyp"


def _is_webm(head: bytes) -> bool:
    return head.startswith(b"\x1a\x45\xdf\xa3")  # EBML


def _is_ogg(head: bytes) -> bool:
    return head.startswith(b"OggS")


def _is_mp3(head: bytes) -> bool:
    if head.startswith(b"ID3"):
        return True
    # An MPEG audio frame: 11 sync bits, then a layer that is not "reserved".
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0


def _is_text(head: bytes) -> bool:
    return True  # checked as a whole while streaming; see _TextCheck


@dataclass(frozen=True)
class FileType:
    label: str
    content_type: str
    sniff: Callable[[bytes], bool]
    # For ZIP-based formats: a member that must exist, or the exact `mimetype` member (ODF).
    zip_member: str | None = None
    odf_mimetype: str | None = None


_OOXML = "application/vnd.openxmlformats-officedocument"
_ODT = "application/vnd.oasis.opendocument.text"

PAPER_TYPES: dict[str, FileType] = {
    "pdf": FileType("PDF", "application/pdf", _is_pdf),
    "docx": FileType(
        "Word document", f"{_OOXML}.wordprocessingml.document", _is_zip, "word/document.xml"
    ),
    "pptx": FileType(
        "PowerPoint slides",
        f"{_OOXML}.presentationml.presentation",
        _is_zip,
        "ppt/presentation.xml",
    ),
    "xlsx": FileType(
        "Excel spreadsheet", f"{_OOXML}.spreadsheetml.sheet", _is_zip, "xl/workbook.xml"
    ),
    "odt": FileType("OpenDocument text", _ODT, _is_zip, odf_mimetype=_ODT),
    "txt": FileType("Plain text", "text/plain; charset=utf-8", _is_text),
    "png": FileType("PNG image", "image/png", _is_png),
    "jpg": FileType("JPEG image", "image/jpeg", _is_jpeg),
    "jpeg": FileType("JPEG image", "image/jpeg", _is_jpeg),
}
RECORDING_TYPES: dict[str, FileType] = {
    "mp4": FileType("MP4 video", "video/mp4", _is_iso_media),
    "m4a": FileType("M4A audio", "audio/mp4", _is_iso_media),
    "webm": FileType("WebM video", "video/webm", _is_webm),
    "mp3": FileType("MP3 audio", "audio/mpeg", _is_mp3),
    # Rooms recorded in Roundtable itself are Ogg/Opus (app/voice/recording.py).
    "ogg": FileType("Ogg audio", "audio/ogg", _is_ogg),
}
TYPES_BY_KIND = {PaperKind.PRE_READING: PAPER_TYPES, PaperKind.RECORDING: RECORDING_TYPES}
# Everything we ever serve; a download never gets a type outside this set (never text/html).
SAFE_CONTENT_TYPES = frozenset(
    t.content_type for t in (*PAPER_TYPES.values(), *RECORDING_TYPES.values())
)


def max_bytes_for(kind: PaperKind, max_upload_mb: int) -> int:
    """Papers: 25 MB. Recordings: the server's upload limit (they are larger by nature)."""
    server_limit = max_upload_mb * MB
    return server_limit if kind is PaperKind.RECORDING else min(PAPER_MAX_BYTES, server_limit)


def accepted_extensions(kind: PaperKind) -> str:
    """For hints and the file input's `accept` attribute."""
    return ",".join(f".{ext}" for ext in TYPES_BY_KIND[kind])


def type_names(kind: PaperKind) -> str:
    """For people: "PDF, DOCX, …" (JPG and JPEG once)."""
    return ", ".join(
        dict.fromkeys("JPEG" if e == "jpg" else e.upper() for e in TYPES_BY_KIND[kind])
    )


def safe_filename(raw: str, *, fallback: str = "file") -> str:
    """The name to show and offer on download: no folders, no control or direction-changing
    characters, at most FILENAME_MAX characters with the extension kept."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    name = " ".join(name.split()).strip(" .")
    if not name:
        return fallback
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: FILENAME_MAX - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:FILENAME_MAX]
    return name


def extension_of(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot else ""


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the real name per RFC 5987/6266."""
    ascii_name = (
        "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename)
        or "download"
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_content_type(paper: Paper) -> str:
    return (
        paper.content_type
        if paper.content_type in SAFE_CONTENT_TYPES
        else "application/octet-stream"
    )


class _TextCheck:
    """Plain text must be UTF-8 throughout, without NUL or other binary control bytes."""

    ALLOWED_CONTROLS = frozenset("\t\n\r\f")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes, *, final: bool = False) -> bool:
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            return False
        return not any(
            unicodedata.category(c) == "Cc" and c not in self.ALLOWED_CONTROLS for c in text
        )


def _mismatch(filename: str, file_type: FileType) -> PaperRejected:
    return PaperRejected(
        "file",
        f"“{filename}” does not contain what its name says: it is not a {file_type.label} "
        "file. Save it again in that format, or give it the right extension.",
        status=415,
    )


async def _checked_chunks(
    upload: UploadFile, *, filename: str, file_type: FileType
) -> AsyncIterator[bytes]:
    """Read the upload in 1 MB chunks, refusing it as soon as its content gives it away."""
    text_check = _TextCheck() if file_type.sniff is _is_text else None
    first = True
    while chunk := await upload.read(CHUNK):
        if first:
            first = False
            if not file_type.sniff(chunk):
                raise _mismatch(filename, file_type)
        if text_check is not None and not text_check.feed(chunk):
            raise _mismatch(filename, file_type)
        yield chunk
    if first:
        raise PaperRejected("file", f"“{filename}” is empty.")
    if text_check is not None and not text_check.feed(b"", final=True):
        raise _mismatch(filename, file_type)


async def upload_paper(
    db: AsyncSession,
    *,
    storage: Storage,
    session: ProgrammeSession,
    actor: User,
    upload: UploadFile,
    kind: PaperKind,
    title: str,
    max_bytes: int = PAPER_MAX_BYTES,
) -> Paper:
    filename, title, file_type = _check_upload(upload, kind=kind, title=title)
    # Copying a large recording to storage takes a while: no connection is held meanwhile.
    await release_connection(db)
    stored = await _store(
        storage, upload, filename=filename, file_type=file_type, max_bytes=max_bytes
    )
    paper = Paper(
        session_id=session.id,
        kind=kind.value,
        title=title or filename.rpartition(".")[0] or filename,
        filename=filename,
        content_type=file_type.content_type,
        size_bytes=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        uploaded_by_id=actor.id,
    )
    try:
        db.add(paper)
        await db.flush()
        audit.record(
            db,
            actor=actor,
            action="paper.upload",
            programme_id=session.programme_id,
            target=f"paper:{paper.id}",
            session_id=session.id,
            kind=kind.value,
            filename=filename,
            size_bytes=stored.size,
            sha256=stored.sha256,
        )
        await db.commit()
    except BaseException:
        await db.rollback()
        await storage.delete(stored.key)
        raise
    return paper


def _check_upload(upload: UploadFile, *, kind: PaperKind, title: str) -> tuple[str, str, FileType]:
    """The upload's safe file name, its cleaned title and its type by extension; refused
    before anything is read when the title is too long, no file was chosen or the extension
    is not one we accept for this kind."""
    types = TYPES_BY_KIND[kind]
    filename = safe_filename(upload.filename or "")
    title = " ".join(title.split())
    if len(title) > TITLE_MAX:
        raise PaperRejected("paper_title", f"The title must be at most {TITLE_MAX} characters.")
    if not upload.filename:
        raise PaperRejected("file", "Choose a file to upload.")
    file_type = types.get(extension_of(filename))
    if file_type is None:
        names = ", ".join(ext.upper() for ext in types)
        raise PaperRejected(
            "file", f"“{filename}” is not a file type we accept here. Accepted: {names}.", 415
        )
    return filename, title, file_type


async def _store(
    storage: Storage, upload: UploadFile, *, filename: str, file_type: FileType, max_bytes: int
) -> StoredFile:
    """Stream the upload to storage, checking its content as it goes and, for office files,
    what is inside once it is all there; nothing refused is left in storage."""
    try:
        stored = await storage.save(
            _checked_chunks(upload, filename=filename, file_type=file_type), max_bytes=max_bytes
        )
    except UploadTooLarge:
        raise PaperRejected(
            "file", f"“{filename}” is larger than the {max_bytes // MB} MB limit.", 413
        ) from None
    try:
        needs_zip_check = file_type.zip_member or file_type.odf_mimetype
        if needs_zip_check and not await anyio.to_thread.run_sync(
            zip_structure_ok, storage.path(stored.key), file_type
        ):
            raise _mismatch(filename, file_type)
    except BaseException:
        await storage.delete(stored.key)
        raise
    return stored


async def list_papers(db: AsyncSession, *, session_id: int) -> list[Paper]:
    rows = await db.scalars(
        select(Paper).where(Paper.session_id == session_id).order_by(Paper.kind, Paper.id)
    )
    return list(rows.all())


async def get_paper(db: AsyncSession, *, session: ProgrammeSession, paper_id: int) -> Paper | None:
    """The paper, only if it belongs to this session."""
    paper = await db.get(Paper, paper_id)
    if paper is None or paper.session_id != session.id:
        return None
    return paper


async def delete_paper(db: AsyncSession, *, storage: Storage, paper: Paper, actor: User) -> None:
    session = await db.get(ProgrammeSession, paper.session_id)
    audit.record(
        db,
        actor=actor,
        action="paper.delete",
        programme_id=session.programme_id if session else None,
        target=f"paper:{paper.id}",
        session_id=paper.session_id,
        filename=paper.filename,
        sha256=paper.sha256,
    )
    key = paper.storage_key
    await db.delete(paper)
    await db.commit()
    # After the commit: a failed commit must not leave a row pointing at a missing file.
    await storage.delete(key)


def stored_path(storage: Storage, paper: Paper) -> Path | None:
    path = storage.path(paper.storage_key)
    return path if path.is_file() else None
