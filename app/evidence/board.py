"""The group's board as people see it: items grouped by session, then by kind, each with
what its card shows (a note's text, a document's type, a search snippet)."""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from app.evidence.filetypes import ALL_TYPES, extension_of
from app.evidence.models import EvidenceItem, EvidenceKind
from app.evidence.notes import note_preview
from app.evidence.search import snippet, snippet_source
from app.models import ProgrammeSession

_TYPE_NAMES = {t.content_type: t.name for t in ALL_TYPES}
KIND_ORDER = list(EvidenceKind)
KIND_HEADINGS = {
    EvidenceKind.NOTE: "Typed notes",
    EvidenceKind.IMAGE: "Photos and images",
    EvidenceKind.AUDIO: "Sound",
    EvidenceKind.POSTER: "Posters",
    EvidenceKind.DOCUMENT: "Documents",
    EvidenceKind.LINK: "Links",
}
THUMBNAIL_BOX = 480  # app/evidence/images.py makes thumbnails that fit 480 x 480


def file_type_name(item: EvidenceItem) -> str:
    """ "PDF", "Word document", …; the extension when the type is not one we know."""
    name = _TYPE_NAMES.get(item.content_type.split(";", 1)[0].strip())
    if name:
        return name
    ext = extension_of(item.filename)
    return f"{ext.upper()} file" if ext else "File"


def file_badge(item: EvidenceItem) -> str:
    """The few letters on a document's icon."""
    ext = extension_of(item.filename)
    return ext.upper()[:4] if ext else "FILE"


@dataclass
class Card:
    item: EvidenceItem
    note_html: Markup | None = None
    note_shortened: bool = False
    snippet: Markup | None = None
    type_name: str = ""
    badge: str = ""

    @property
    def thumbnail_size(self) -> tuple[int, int] | None:
        """The thumbnail's width and height (for the page's layout before it loads)."""
        width, height = self.item.width, self.item.height
        if not self.item.thumbnail_key or not width or not height:
            return None
        scale = min(1.0, THUMBNAIL_BOX / width, THUMBNAIL_BOX / height)
        return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class KindSection:
    kind: EvidenceKind
    cards: list[Card] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return KIND_HEADINGS[self.kind]


@dataclass
class SessionSection:
    session: ProgrammeSession | None
    kinds: list[KindSection] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"session-{self.session.id}" if self.session else "session-none"

    @property
    def count(self) -> int:
        return sum(len(k.cards) for k in self.kinds)


def card_for(item: EvidenceItem, query: str = "") -> Card:
    card = Card(item=item)
    if item.kind == EvidenceKind.NOTE:
        card.note_html, card.note_shortened = note_preview(item.note_markdown)
    if item.has_file:
        card.type_name = file_type_name(item)
        card.badge = file_badge(item)
    if query:
        card.snippet = snippet(snippet_source(item), query)
    return card


def sections(items: list[EvidenceItem], sessions: list[ProgrammeSession]) -> list[SessionSection]:
    """Sessions in programme order, then items with no session; kinds in a fixed order;
    items keep the order they came in (newest first)."""
    order = {s.id: i for i, s in enumerate(sessions)}
    by_session: dict[int | None, dict[str, list[Card]]] = {}
    for item in items:
        by_session.setdefault(item.session_id, {}).setdefault(item.kind, []).append(card_for(item))
    session_of = {s.id: s for s in sessions}
    keys = sorted(by_session, key=lambda k: (k is None, order.get(k, len(order)) if k else 0))
    result = []
    for key in keys:
        kinds = by_session[key]
        section = SessionSection(session=session_of.get(key) if key is not None else None)
        section.kinds = [
            KindSection(kind, kinds[kind.value]) for kind in KIND_ORDER if kind in kinds
        ]
        result.append(section)
    return result
