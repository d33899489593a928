"""A ZIP of a group's evidence, as the person asking may see it, with a manifest.

Names inside the archive are made here (item id, then a cleaned name), never taken as
given, so no entry can point outside the folder it is unpacked into. The archive is
written to a temporary file in a worker thread, reading stored files from disk one at a
time, so a large group's evidence is never held in memory."""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import GroupContext
from app.csv_export import to_csv
from app.evidence.models import EvidenceItem, EvidenceKind
from app.evidence.queries import list_items
from app.programmes.papers import safe_filename
from app.storage import Storage

MANIFEST = "manifest.csv"
MANIFEST_HEADER = (
    "id",
    "kind",
    "title",
    "description",
    "session",
    "uploader",
    "from_trio",
    "visibility",
    "hidden",
    "hidden_reason",
    "filename_in_zip",
    "transcript_in_zip",
    "link_url",
    "sha256",
    "size_bytes",
    "created_at",
    "alt_text",
)
# Already compressed: storing them again as they are is as small and much faster.
_STORED_PREFIXES = ("image/", "audio/", "video/", "application/vnd.openxmlformats")
NAME_MAX = 80
_WINDOWS_RESERVED = re.compile(r'[<>:"|?*]')


def zip_name(folder: str, item_id: int, name: str, *, ext: str = "") -> str:
    """`folder/<id>-<name><ext>`, where nothing in `name` can make a folder or climb out of
    one: a file's name keeps only its last part (as on download); a title's slashes become
    dashes, runs of dots one dot, and it is shortened. `safe_filename` drops control and
    direction characters; characters Windows refuses in names become dashes."""
    if ext:
        name = re.sub(r"\.{2,}", ".", re.sub(r"[\\/]+", "-", name))[:NAME_MAX]
    clean = _WINDOWS_RESERVED.sub("-", safe_filename(name, fallback="item")).strip(" .-")
    return f"{folder}/{item_id}-{clean or 'item'}{ext}"


@dataclass(frozen=True)
class Entry:
    """One item, read from the database before the worker thread starts."""

    row: tuple[object, ...]
    file_name: str
    file_path: Path | None
    compress: int
    text_name: str
    text: str
    transcript_name: str
    transcript: str
    created_at: datetime


def _entry(item: EvidenceItem, storage: Storage, *, organiser: bool) -> Entry:
    file_name = ""
    file_path: Path | None = None
    if item.has_file and item.storage_key:
        path = storage.path(item.storage_key)
        if path.is_file():  # a missing file leaves the manifest's name empty
            file_name = zip_name("files", item.id, item.filename or "file")
            file_path = path
    text_name = text = ""
    if item.kind == EvidenceKind.NOTE:
        text_name = zip_name("notes", item.id, item.title, ext=".md")
        text = f"# {item.title}\n\n{item.note_markdown}\n"
    transcript_name = transcript = ""
    if item.transcript.strip():
        transcript_name = zip_name("transcripts", item.id, item.title, ext=".txt")
        transcript = item.transcript.rstrip() + "\n"
    uploader = item.uploader.name_with_pronouns if item.uploader else ""
    row = (
        item.id,
        item.kind,
        item.title,
        item.description,
        item.session.title if item.session else "",
        uploader,
        "yes" if item.from_trio else "no",
        item.visibility,
        ("yes" if item.is_hidden else "no") if organiser else "",
        item.hidden_reason if organiser else "",
        file_name or text_name,
        transcript_name,
        item.link_url,
        item.sha256,
        item.size_bytes if item.has_file else "",
        item.created_at.isoformat(),
        item.alt_text,
    )
    compress = (
        zipfile.ZIP_STORED
        if item.content_type.startswith(_STORED_PREFIXES)
        else zipfile.ZIP_DEFLATED
    )
    return Entry(
        row=row,
        file_name=file_name,
        file_path=file_path,
        compress=compress,
        text_name=text_name,
        text=text,
        transcript_name=transcript_name,
        transcript=transcript,
        created_at=item.created_at,
    )


def _timestamp(when: datetime) -> tuple[int, int, int, int, int, int]:
    # ZIP dates start in 1980.
    return (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)


def _write_text(archive: zipfile.ZipFile, name: str, text: str, when: datetime) -> None:
    info = zipfile.ZipInfo(name, date_time=_timestamp(when))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, text.encode("utf-8"))


def _write_archive(entries: list[Entry], manifest: str, now: datetime) -> Path:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the response to delete
        prefix="evidence-", suffix=".zip", delete=False
    )
    path = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w", allowZip64=True) as archive:
            _write_text(archive, MANIFEST, manifest, now)
            for entry in entries:
                if entry.file_path is not None:
                    info = zipfile.ZipInfo(entry.file_name, date_time=_timestamp(entry.created_at))
                    info.compress_type = entry.compress
                    info.external_attr = 0o644 << 16
                    with (
                        entry.file_path.open("rb") as source,
                        archive.open(info, "w", force_zip64=True) as target,
                    ):
                        while chunk := source.read(1024 * 1024):
                            target.write(chunk)
                if entry.text_name:
                    _write_text(archive, entry.text_name, entry.text, entry.created_at)
                if entry.transcript_name:
                    _write_text(archive, entry.transcript_name, entry.transcript, entry.created_at)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def export_filename(group_name: str) -> str:
    return safe_filename(f"{group_name} evidence.zip".replace("/", "-"), fallback="evidence.zip")


async def build_export(
    db: AsyncSession, *, gctx: GroupContext, storage: Storage, now: datetime
) -> Path:
    """The archive's path; the caller deletes it once sent. Audited as `evidence.export`."""
    items = await list_items(db, gctx=gctx)
    organiser = gctx.can_moderate
    entries = [_entry(item, storage, organiser=organiser) for item in items]
    manifest = to_csv(MANIFEST_HEADER, [e.row for e in entries])
    audit.record(
        db,
        actor=gctx.ctx.user,
        action="evidence.export",
        programme_id=gctx.ctx.programme.id,
        target=f"group:{gctx.group.id}",
        items=len(entries),
    )
    await db.commit()
    return await anyio.to_thread.run_sync(_write_archive, entries, manifest, now)


def remove_file(path: Path) -> None:
    """For the response's background task, once the archive has been sent."""
    path.unlink(missing_ok=True)
