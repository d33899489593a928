"""Checking what people send for an evidence item: titles, descriptions, notes, links,
image descriptions, reasons, the session and who may see it. Every check raises
`EvidenceRejected` naming the form field; `clean_common` reports every problem at once."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import GroupContext
from app.evidence.errors import EvidenceRejected
from app.evidence.models import EvidenceKind, Visibility
from app.evidence.notes import NOTE_MAX
from app.models import ProgrammeSession
from app.numbers import is_digits

TITLE_MAX = 200
DESCRIPTION_MAX = 2_000
URL_MAX = 2_000
ALT_TEXT_MAX = 1_000
REASON_MAX = 500
IMAGE_KINDS = (EvidenceKind.IMAGE.value, EvidenceKind.POSTER.value)


@dataclass(frozen=True)
class CommonFields:
    """What every item has, checked."""

    title: str
    description: str
    session_id: int | None
    from_trio: bool
    visibility: str


def _single_line(raw: str) -> str:
    return " ".join(raw.split())


def _text_block(raw: str) -> str:
    """Line breaks as `\\n` (browsers send `\\r\\n`), no other control characters, trimmed."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    return text.strip()


def clean_title(raw: str) -> str:
    title = _single_line(raw)
    if not title:
        raise EvidenceRejected("title", "Enter a title.")
    if len(title) > TITLE_MAX:
        raise EvidenceRejected("title", f"The title must be at most {TITLE_MAX} characters.")
    return title


def clean_description(raw: str) -> str:
    description = _text_block(raw)
    if len(description) > DESCRIPTION_MAX:
        raise EvidenceRejected(
            "description", f"The description must be at most {DESCRIPTION_MAX:,} characters."
        )
    return description


def parse_session_id(raw: str) -> int | None:
    """A form's session choice: empty for none, otherwise a session id."""
    raw = raw.strip()
    if not raw:
        return None
    if not is_digits(raw) or len(raw) > 9:
        raise EvidenceRejected("session_id", "Choose a session from the list.")
    return int(raw)


def clean_visibility(raw: str) -> str:
    try:
        return Visibility(raw).value
    except ValueError:
        raise EvidenceRejected("visibility", "Choose who can see this.") from None


async def check_session(db: AsyncSession, *, programme_id: int, session_id: int | None) -> None:
    if session_id is None:
        return
    session = await db.get(ProgrammeSession, session_id)
    if session is None or session.programme_id != programme_id:
        raise EvidenceRejected("session_id", "Choose a session of this programme from the list.")


class _Problems:
    """Runs validators and keeps every form error instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def check(self, validate: Callable[[str], str], raw: str) -> str:
        try:
            return validate(raw)
        except EvidenceRejected as exc:
            self.errors.setdefault(exc.field, exc.message)
            return ""

    async def check_session(
        self, db: AsyncSession, *, programme_id: int, session_id: int | None
    ) -> None:
        try:
            await check_session(db, programme_id=programme_id, session_id=session_id)
        except EvidenceRejected as exc:
            self.errors.setdefault(exc.field, exc.message)

    def raise_any(self) -> None:
        if self.errors:
            field, message = next(iter(self.errors.items()))
            raise EvidenceRejected(field, message, errors=dict(self.errors))


async def clean_common(
    db: AsyncSession,
    *,
    gctx: GroupContext,
    title: str,
    description: str,
    session_id: int | None,
    from_trio: bool,
    visibility: str,
    extra: dict[str, tuple[Callable[[str], str], str]] | None = None,
) -> tuple[CommonFields, dict[str, str]]:
    """Every item's fields checked, and `extra` ones (name -> (validator, raw value)) with
    them; raises EvidenceRejected listing every problem."""
    problems = _Problems()
    fields = CommonFields(
        title=problems.check(clean_title, title),
        description=problems.check(clean_description, description),
        session_id=session_id,
        from_trio=bool(from_trio),
        visibility=problems.check(clean_visibility, visibility),
    )
    cleaned = {
        name: problems.check(validate, raw) for name, (validate, raw) in (extra or {}).items()
    }
    await problems.check_session(db, programme_id=gctx.ctx.programme.id, session_id=session_id)
    problems.raise_any()
    return fields, cleaned


def clean_note(raw: str) -> str:
    note = _text_block(raw)
    if not note:
        raise EvidenceRejected("markdown", "Write the note.")
    if len(note) > NOTE_MAX:
        raise EvidenceRejected(
            "markdown",
            f"The note must be at most {NOTE_MAX:,} characters; it has {len(note):,}. "
            "Split it into two notes.",
        )
    return note


def clean_url(raw: str) -> str:
    url = raw.strip()
    if not url:
        raise EvidenceRejected("url", "Enter the link's address.")
    if len(url) > URL_MAX:
        raise EvidenceRejected("url", f"The address must be at most {URL_MAX:,} characters.")
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url):
        raise EvidenceRejected("url", "The address cannot contain spaces or hidden characters.")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise EvidenceRejected("url", "Enter a web address starting with https:// (or http://).")
    return url


def clean_alt_text(raw: str) -> str:
    alt = _single_line(raw)
    if not alt:
        raise EvidenceRejected("alt_text", "Describe the image for people who cannot see it.")
    if len(alt) > ALT_TEXT_MAX:
        raise EvidenceRejected(
            "alt_text", f"The description must be at most {ALT_TEXT_MAX:,} characters."
        )
    return alt


def clean_reason(raw: str, *, required: bool) -> str:
    reason = _single_line(raw)
    if required and not reason:
        raise EvidenceRejected("reason", "Say why, for the record.")
    if len(reason) > REASON_MAX:
        raise EvidenceRejected("reason", f"The reason must be at most {REASON_MAX} characters.")
    return reason
