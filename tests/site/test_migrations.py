"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and can be undone and redone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from app import models  # noqa: F401 - registers every table on Base.metadata
from app.config import PROJECT_ROOT, to_sync_url
from app.db import Base
from app.evidence.search_index import is_search_index
from tests.conftest import postgres_url_or_skip, reset_postgres


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def schema_differences(database_url: str) -> list[Any]:
    """What autogenerate would still want to change: empty when the schema matches."""
    engine = create_engine(to_sync_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "target_metadata": Base.metadata,
                    "include_name": lambda name, type_, parents: not is_search_index(name),
                },
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(database_url: str) -> set[str]:
    engine = create_engine(to_sync_url(database_url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    engine = create_engine(to_sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "postgres":
        url = postgres_url_or_skip()
        reset_postgres(url)  # leaves it migrated: undo that for a truly empty start
        command.downgrade(alembic_config(url), "base")
        engine = create_engine(to_sync_url(url))
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
        return url
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def test_upgrade_head_gives_the_models_schema(fresh_database: str) -> None:
    assert table_names(fresh_database) == set()
    command.upgrade(alembic_config(fresh_database), "head")

    head = ScriptDirectory.from_config(alembic_config(fresh_database)).get_current_head()
    assert current_revision(fresh_database) == head
    assert set(Base.metadata.tables) <= table_names(fresh_database)
    assert schema_differences(fresh_database) == []


def test_downgrade_to_base_then_upgrade_again(fresh_database: str) -> None:
    config = alembic_config(fresh_database)
    command.upgrade(config, "head")

    command.downgrade(config, "base")
    assert table_names(fresh_database) <= {"alembic_version"}
    assert current_revision(fresh_database) is None

    command.upgrade(config, "head")
    assert schema_differences(fresh_database) == []


def test_the_comparison_notices_a_schema_that_differs(tmp_path: Path) -> None:
    """Guard against a comparison that always finds nothing."""
    url = f"sqlite:///{tmp_path / 'drifted.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE users ADD COLUMN shoe_size INTEGER"))
        connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    engine.dispose()

    kinds = {diff[0] for diff in schema_differences(url) if isinstance(diff, tuple)}
    assert {"remove_column", "remove_table"} <= kinds


@pytest.mark.postgres
def test_the_comparison_notices_a_timestamp_without_time_zone() -> None:
    """Our UTC timestamps must be stored with their time zone on PostgreSQL."""
    url = postgres_url_or_skip()
    reset_postgres(url)
    engine = create_engine(to_sync_url(url))
    with engine.begin() as connection:
        connection.execute(
            text("ALTER TABLE users ALTER COLUMN created_at TYPE timestamp without time zone")
        )
    engine.dispose()

    changed = [
        (diff[0][0], diff[0][2], diff[0][3])
        for diff in schema_differences(url)
        if isinstance(diff, list)
    ]
    assert changed == [("modify_type", "users", "created_at")]
    reset_postgres(url)
