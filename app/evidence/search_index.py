"""The full-text index over evidence: SQLite FTS5 on the embedded default, PostgreSQL's
full-text search otherwise. Both index `evidence_items.search_text`.

On SQLite the index is an external-content FTS5 table kept in step by triggers, so every
write path (the service, a migration, a hand-run UPDATE) updates it. On PostgreSQL it is a
GIN index on the column's English tsvector. Neither is described by the models (SQLAlchemy
has no notion of either), so the migrations create them and schema comparison ignores them.
"""

from __future__ import annotations

FTS_TABLE = "evidence_fts"
PG_INDEX = "ix_evidence_items_search"

SQLITE_CREATE = [
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(search_text, content='evidence_items', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER {FTS_TABLE}_ai AFTER INSERT ON evidence_items BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (new.id, new.search_text); END",
    f"CREATE TRIGGER {FTS_TABLE}_ad AFTER DELETE ON evidence_items BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    f"CREATE TRIGGER {FTS_TABLE}_au AFTER UPDATE OF search_text ON evidence_items BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (new.id, new.search_text); END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_au",
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_ad",
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_ai",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]
POSTGRES_CREATE = [
    f"CREATE INDEX {PG_INDEX} ON evidence_items USING gin (to_tsvector('english', search_text))",
]
POSTGRES_DROP = [f"DROP INDEX IF EXISTS {PG_INDEX}"]


def create_statements(dialect: str) -> list[str]:
    return SQLITE_CREATE if dialect == "sqlite" else POSTGRES_CREATE


def drop_statements(dialect: str) -> list[str]:
    return SQLITE_DROP if dialect == "sqlite" else POSTGRES_DROP


def is_search_index(name: str | None) -> bool:
    """For schema comparison: objects of the index, which the models do not describe."""
    return name is not None and (name.startswith(FTS_TABLE) or name == PG_INDEX)
