"""Files sent to a group's evidence: the form's fields checked together, then every file
checked (app/evidence/file_checks.py) and recorded all together. The files themselves
arrive through app/evidence/incoming.py, streamed to storage as they come.

A batch is all or nothing: when one file is refused, none is kept, and nothing is left on
disk or in the database; the message names the file and says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import GroupContext
from app.evidence.errors import EvidenceRejected
from app.evidence.fields import TITLE_MAX, clean_alt_text, clean_common, parse_session_id
from app.evidence.file_checks import Prepared, discard_prepared, prepare_file
from app.evidence.filetypes import KIND_FOR_FAMILY, Family, extension_of
from app.evidence.incoming import FILE_FIELD, Batch, IncomingFile
from app.evidence.models import EvidenceItem, EvidenceKind, TranscriptStatus, Visibility
from app.evidence.searchtext import refresh_search_text
from app.models import ProgrammeSession, User
from app.storage import Storage


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
            await _refuse_duplicate(db, group_id=gctx.group.id, incoming=incoming, seen=seen)
            prepared.append(await prepare_file(storage, incoming, options.poster))
    except BaseException:
        # Nothing was added to the session yet: no rollback, so the caller's objects stay
        # loaded for its error page.
        await discard_prepared(storage, prepared)
        await batch.discard()
        raise
    items = _make_items(gctx, actor, options, prepared)
    try:
        await _record(db, gctx=gctx, actor=actor, items=items)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.rollback()
        await discard_prepared(storage, prepared)
        await batch.discard()
        raise
    return items


async def _refuse_duplicate(
    db: AsyncSession, *, group_id: int, incoming: IncomingFile, seen: dict[str, str]
) -> None:
    """The same file twice in the batch (`seen`: name by digest so far), or a file already
    on the group's board."""
    assert incoming.stored is not None
    digest = incoming.stored.sha256
    if digest in seen:
        raise EvidenceRejected(
            FILE_FIELD,
            f"“{incoming.filename}” is the same file as “{seen[digest]}”; send it once.",
            409,
        )
    seen[digest] = incoming.filename
    duplicate = await find_duplicate(db, group_id=group_id, sha256=digest)
    if duplicate is not None:
        raise EvidenceRejected(
            FILE_FIELD,
            f"“{incoming.filename}” is already on this group's board, as "
            f"“{duplicate.title}” (item {duplicate.id}).",
            409,
        )


async def _record(
    db: AsyncSession, *, gctx: GroupContext, actor: User, items: list[EvidenceItem]
) -> None:
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


def _stem(filename: str) -> str:
    stem, dot, _ = filename.rpartition(".")
    return (stem if dot else filename) or filename
