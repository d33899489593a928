"""Alembic environment: the schema of `app.models`, on SQLite or PostgreSQL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.captions import asr_models  # noqa: F401
from app.captions import models as caption_models  # noqa: F401
from app.config import Settings
from app.db import Base, UTCDateTime
from app.evidence import models as evidence_models  # noqa: F401
from app.evidence import search_index
from app.live import models as live_models  # noqa: F401
from app.stage import models as stage_models  # noqa: F401
from app.voice import models as voice_models  # noqa: F401
from app.voice import recording_models as voice_recording_models  # noqa: F401
from realtime import log as live_log  # noqa: F401

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    explicit = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return (
        Settings(database_url=explicit).sync_database_url
        if explicit
        else Settings().sync_database_url
    )


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write our UTC column type as the plain timezone-aware DateTime it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the full-text index alone: the models do not describe it."""
    return not search_index.is_search_index(name)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = database_url()
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite alters tables by copying them
            compare_type=True,
            render_item=render_item,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
