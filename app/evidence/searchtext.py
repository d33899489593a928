"""The text of an item that search looks through."""

from __future__ import annotations

from app.evidence.models import EvidenceItem


def refresh_search_text(item: EvidenceItem) -> None:
    """Call after changing the title, description, note, alt text or transcript: the
    full-text index follows `search_text` (triggers on SQLite, an index on PostgreSQL)."""
    parts = (item.title, item.description, item.note_markdown, item.alt_text, item.transcript)
    item.search_text = "\n".join(p for p in parts if p)
