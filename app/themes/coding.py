"""Coding evidence into themes: a whole item, or an excerpt of one of its texts.

Who coded what, when, and why (the memo) is kept on each coding and in the audit log.
The routes (app/themes/routes/codings.py) admit the item's group's facilitators and the
programme's hosts; the item page includes templates/themes/coding_panel.html with the
context from `coding_panel_context`."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import audit
from app.access import ProgrammeContext, facilitates
from app.evidence.excerpts import ExcerptProblem, locate_excerpt
from app.evidence.models import Coding, EvidenceItem, Theme
from app.models import User
from app.numbers import is_digits
from app.themes import themes as theme_service

MEMO_MAX = theme_service.MEMO_COLUMN_MAX
THEMES_PER_CODING_MAX = 50

# Which text of an item an excerpt comes from, in the order the panel offers them.
SOURCES: dict[str, str] = {
    "note": "The note",
    "transcript": "The transcript",
    "description": "The description",
    "title": "The title",
    "alt_text": "The image description",
}

# Errors travel back to the item page as a short code (?coding_error=...), never as text
# taken from the address, so nobody can put words on the page with a crafted link.
ERROR_MESSAGES: dict[str, str] = {
    "no_theme": "Choose at least one theme.",
    "too_many_themes": f"Choose at most {THEMES_PER_CODING_MAX} themes at once.",
    "unknown_theme": "One of the themes chosen is not in this programme's codebook. "
    "Reload the page and choose again.",
    "memo_too_long": f"The memo can be at most {MEMO_MAX} characters.",
    "unknown_source": "Choose which text the excerpt comes from.",
    "empty_source": "That text of the item is empty, so there is nothing to take an excerpt from.",
    "offsets": "The start and end positions must be whole numbers, with the start before "
    "the end, inside the chosen text.",
    "excerpt_blank": "The excerpt is only spaces. Highlight or paste some words.",
    "excerpt_not_found": "We could not find that excerpt in the chosen text. Copy the words "
    "exactly as they appear, or choose a different text.",
    "excerpt_needed": "Highlight or paste the excerpt, or choose “The whole item”.",
    "already_coded": "This is already coded with the themes chosen.",
    "hidden": "This item is hidden. Show it again before coding it.",
}
ERROR_FIELDS: dict[str, str] = {
    "no_theme": "theme_ids",
    "too_many_themes": "theme_ids",
    "unknown_theme": "theme_ids",
    "already_coded": "theme_ids",
    "memo_too_long": "memo",
    "unknown_source": "source",
    "empty_source": "source",
    "offsets": "start",
    "excerpt_blank": "excerpt",
    "excerpt_not_found": "excerpt",
    "excerpt_needed": "excerpt",
    "hidden": "theme_ids",
}
DONE_MESSAGES: dict[str, str] = {
    "added": "The coding has been added.",
    "removed": "The coding has been removed.",
}


class CodingRejected(ValueError):
    """A coding that cannot be made; `code` names the problem for the item page's address."""

    def __init__(self, field: str, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code

    @classmethod
    def of(cls, code: str) -> CodingRejected:
        return cls(ERROR_FIELDS[code], ERROR_MESSAGES[code], code=code)


def error_message(code: str) -> str:
    """The message for a ?coding_error= code; empty for anything unknown."""
    return ERROR_MESSAGES.get(code, "")


def source_text(item: EvidenceItem, source: str) -> str:
    texts = {
        "title": item.title,
        "description": item.description,
        "note": item.note_markdown,
        "transcript": item.transcript,
        "alt_text": item.alt_text,
    }
    return texts[source] or ""


def parse_ids(raw: Sequence[str]) -> list[int]:
    """Theme ids from a form, in order and without repeats."""
    ids: list[int] = []
    for value in raw:
        value = value.strip()
        if not value:
            continue
        if not is_digits(value) or len(value) > 10:
            raise CodingRejected.of("unknown_theme")
        if int(value) not in ids:
            ids.append(int(value))
    return ids


def parse_offset(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not is_digits(raw) or len(raw) > 10:
        raise CodingRejected.of("offsets")
    return int(raw)


def _clean_memo(memo: str) -> str:
    text = unicodedata.normalize("NFC", memo.replace("\r\n", "\n")).strip()
    if len(text) > MEMO_MAX:
        raise CodingRejected(
            "memo",
            f"The memo can be at most {MEMO_MAX} characters (it has {len(text)}).",
            code="memo_too_long",
        )
    return text


async def code_item(
    db: AsyncSession,
    *,
    item: EvidenceItem,
    actor: User,
    theme_ids: list[int],
    memo: str,
    source: str | None,
    start: int | None,
    end: int | None,
    excerpt: str = "",
) -> list[Coding]:
    """Code the item (source None) or an excerpt of one of its texts with each theme.

    The excerpt is given by offsets into the text, by its words (`excerpt`), or both.
    Codings the item already has (same theme, same passage) are not made twice."""
    if item.is_hidden:
        raise CodingRejected.of("hidden")
    if not theme_ids:
        raise CodingRejected.of("no_theme")
    if len(theme_ids) > THEMES_PER_CODING_MAX:
        raise CodingRejected.of("too_many_themes")
    memo = _clean_memo(memo)
    await _require_programme_themes(db, item=item, theme_ids=theme_ids)
    start, end, text_excerpt = _passage(item, source=source, start=start, end=end, excerpt=excerpt)
    existing = await _themes_on_passage(db, item_id=item.id, source=source, start=start, end=end)
    created = [
        Coding(
            item_id=item.id,
            theme_id=theme_id,
            coder_id=actor.id,
            source=source,
            start_offset=start,
            end_offset=end,
            excerpt=text_excerpt,
            memo=memo,
        )
        for theme_id in theme_ids
        if theme_id not in existing
    ]
    if not created:
        raise CodingRejected.of("already_coded")
    db.add_all(created)
    await db.flush()
    audit.record(
        db,
        actor=actor,
        action="coding.add",
        programme_id=item.programme_id,
        target=f"evidence:{item.id}",
        coding_ids=[c.id for c in created],
        theme_ids=[c.theme_id for c in created],
        source=source,
        start=start,
        end=end,
        excerpt=text_excerpt[:200],
        memo=bool(memo),
    )
    await db.commit()
    return created


async def _require_programme_themes(
    db: AsyncSession, *, item: EvidenceItem, theme_ids: list[int]
) -> None:
    themes = (
        await db.scalars(
            select(Theme).where(Theme.id.in_(theme_ids), Theme.programme_id == item.programme_id)
        )
    ).all()
    if len(themes) != len(set(theme_ids)):
        raise CodingRejected.of("unknown_theme")


def _passage(
    item: EvidenceItem, *, source: str | None, start: int | None, end: int | None, excerpt: str
) -> tuple[int | None, int | None, str]:
    """The coded passage: (start, end, its text), or (None, None, "") for the whole item."""
    if source is None:
        if start is not None or end is not None or excerpt.strip():
            raise CodingRejected.of("unknown_source")
        return None, None, ""
    if source not in SOURCES:
        raise CodingRejected.of("unknown_source")
    text = source_text(item, source)
    if not text.strip():
        raise CodingRejected.of("empty_source")
    try:
        start, end = locate_excerpt(text, excerpt=excerpt, start=start, end=end)
    except ExcerptProblem as problem:
        message = problem.message or ERROR_MESSAGES[problem.code]
        raise CodingRejected(ERROR_FIELDS[problem.code], message, code=problem.code) from None
    return start, end, text[start:end]


async def _themes_on_passage(
    db: AsyncSession, *, item_id: int, source: str | None, start: int | None, end: int | None
) -> set[int]:
    """The themes the item already has for exactly this passage."""
    rows = await db.scalars(
        select(Coding.theme_id).where(
            Coding.item_id == item_id,
            Coding.source.is_(None) if source is None else Coding.source == source,
            Coding.start_offset.is_(None) if start is None else Coding.start_offset == start,
            Coding.end_offset.is_(None) if end is None else Coding.end_offset == end,
        )
    )
    return set(rows.all())


async def remove_coding(
    db: AsyncSession, *, item: EvidenceItem, coding_id: int, actor: User
) -> Coding | None:
    """Remove one of the item's codings; None when the item has no such coding."""
    coding = await db.get(Coding, coding_id)
    if coding is None or coding.item_id != item.id:
        return None
    audit.record(
        db,
        actor=actor,
        action="coding.remove",
        programme_id=item.programme_id,
        target=f"evidence:{item.id}",
        coding_id=coding.id,
        theme_id=coding.theme_id,
        coder_id=coding.coder_id,
        source=coding.source,
        excerpt=coding.excerpt[:200],
    )
    await db.delete(coding)
    await db.commit()
    return coding


async def item_codings(db: AsyncSession, *, item_id: int) -> list[Coding]:
    """The item's codings, oldest first, with their theme (and its parent) and coder."""
    rows = await db.scalars(
        select(Coding)
        .where(Coding.item_id == item_id)
        .options(
            selectinload(Coding.theme).selectinload(Theme.parent),
            selectinload(Coding.coder),
        )
        .order_by(Coding.created_at, Coding.id)
    )
    return list(rows.all())


@dataclass
class CodingView:
    """One coding as the panel shows it."""

    coding: Coding
    label: str
    colour: theme_service.Colour
    coder_name: str
    source_label: str


def view_of(coding: Coding) -> CodingView:
    theme = coding.theme
    return CodingView(
        coding=coding,
        label=theme_service.theme_label(theme, theme.parent),
        colour=theme_service.colour_of(theme.colour),
        coder_name=coding.coder.display_name if coding.coder else "A former member",
        source_label=SOURCES.get(coding.source or "", "The whole item"),
    )


async def coding_panel_context(
    db: AsyncSession,
    *,
    item: EvidenceItem,
    ctx: ProgrammeContext,
    error_code: str = "",
    done_code: str = "",
) -> dict[str, object]:
    """What templates/themes/coding_panel.html needs besides `item` and `csrf_token`.

    `error_code` and `done_code` are the item page's ?coding_error= and ?coding_done=."""
    can_code = ctx.is_host or await facilitates(db, user_id=ctx.user.id, group_id=item.group_id)
    base = f"/programmes/{item.programme_id}/groups/{item.group_id}/evidence/{item.id}/codings"
    themes = await theme_service.list_themes(db, programme_id=item.programme_id)
    return {
        "coding_can_code": can_code,
        "coding_theme_tree": theme_service.build_tree(themes),
        "coding_colours": {t.id: theme_service.colour_of(t.colour) for t in themes},
        "coding_sources": [
            (value, label) for value, label in SOURCES.items() if source_text(item, value).strip()
        ],
        # Codings and memos are the organisers' working notes, never shown to participants.
        "codings": [view_of(c) for c in await item_codings(db, item_id=item.id)]
        if can_code
        else [],
        "coding_action": base,
        "coding_codebook_url": f"/programmes/{item.programme_id}/themes",
        "coding_error": error_message(error_code),
        "coding_error_field": ERROR_FIELDS.get(error_code, ""),
        "coding_done": DONE_MESSAGES.get(done_code, ""),
        "coding_blocked": ERROR_MESSAGES["hidden"] if item.is_hidden else "",
        "coding_memo_max": MEMO_MAX,
        "coding_timezone": ctx.programme.timezone,
    }
