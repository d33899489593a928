"""Searching evidence: what a person typed, turned into a query that cannot fail, and a
highlighted snippet of where it matched.

SQLite's FTS5 has its own query language, in which `"`, `*`, `(`, `AND`, `NEAR(` and
column filters mean something; a person's words are never passed to it as they are. Each
word becomes a quoted prefix phrase (`"word"*`), and the phrases must all match.
PostgreSQL's `websearch_to_tsquery` accepts anything people type, by design."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import Select, column, func, literal_column, table, text

from app.evidence.models import EvidenceItem
from app.evidence.notes import note_plain_text
from app.evidence.search_index import FTS_TABLE

QUERY_MAX = 200
TERMS_MAX = 12
SNIPPET_CHARS = 180
_WORD = re.compile(r"\w+")

_fts = table(FTS_TABLE, column("rowid"))


def normalise_query(raw: str) -> str:
    """Without control characters (PostgreSQL refuses NUL), single-spaced, at most
    QUERY_MAX characters."""
    cleaned = "".join(" " if unicodedata.category(c) == "Cc" else c for c in raw)
    return " ".join(cleaned.split())[:QUERY_MAX]


def search_terms(query: str) -> list[str]:
    return _WORD.findall(query)[:TERMS_MAX]


def fts5_query(query: str) -> str | None:
    """`"word"* "other"*`: only word characters inside quotes, so nothing is syntax."""
    terms = search_terms(query)
    return " ".join(f'"{t}"*' for t in terms) or None


def apply_search(stmt: Select[Any], *, dialect: str, query: str) -> Select[Any] | None:
    """The statement narrowed to matches and ordered best first; None when the query has
    no words to look for (it can match nothing)."""
    if dialect == "sqlite":
        match = fts5_query(query)
        if match is None:
            return None
        return (
            stmt.join(_fts, _fts.c.rowid == EvidenceItem.id)
            .where(text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=match))
            .order_by(func.bm25(literal_column(FTS_TABLE)), EvidenceItem.id.desc())
        )
    if not search_terms(query):
        return None
    vector = func.to_tsvector("english", EvidenceItem.search_text)
    tsquery = func.websearch_to_tsquery("english", query)
    return stmt.where(vector.op("@@")(tsquery)).order_by(
        func.ts_rank(vector, tsquery).desc(), EvidenceItem.id.desc()
    )


def snippet_source(item: EvidenceItem) -> str:
    """The item's text beyond its title, as a reader sees it (notes without Markdown)."""
    parts = (item.description, note_plain_text(item.note_markdown), item.alt_text, item.transcript)
    return " · ".join(" ".join(p.split()) for p in parts if p and p.strip())


def snippet(source: str, query: str, width: int = SNIPPET_CHARS) -> Markup | None:
    """Up to `width` characters around the first place a search word starts, with each
    such word start marked. Built from plain text and escaped piece by piece, so nothing
    people wrote is ever taken as markup. None when no word is found as typed (the
    search also matches other forms of a word and letters without accents)."""
    terms = sorted({t.lower() for t in search_terms(query)}, key=len, reverse=True)
    if not terms or not source:
        return None
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + ")", re.IGNORECASE)
    first = pattern.search(source)
    if first is None:
        return None
    start = max(0, first.start() - width // 3)
    if start > 0:
        space = source.find(" ", start)
        start = space + 1 if 0 <= space < first.start() else start
    end = min(len(source), start + width)
    if end < len(source):
        space = source.rfind(" ", first.end(), end)
        end = space if space > 0 else end
    window = source[start:end]
    pieces: list[Markup] = [Markup("…")] if start > 0 else []
    position = 0
    for match in pattern.finditer(window):
        pieces.append(escape(window[position : match.start()]))
        pieces.append(Markup("<mark>{}</mark>").format(match.group(0)))
        position = match.end()
    pieces.append(escape(window[position:]))
    if end < len(source):
        pieces.append(Markup("…"))
    return Markup("").join(pieces)
