"""Typed settings, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from captioning.engines import parse_engine_urls

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me-in-production"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = PLACEHOLDER_SECRET
    database_url: str = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'roundtable.db'}"
    redis_url: str | None = None
    # Back-pressure under bursts (docs/capacity.md): connections each process keeps, how
    # long a request waits for one before a 503 with Retry-After, how long a SQLite write
    # waits for another's; chat messages waiting for the writer, and how long a sender
    # waits for their message's commit.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    sqlite_busy_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    chat_queue_limit: int = Field(default=2000, ge=1, le=100_000)
    chat_wait_seconds: float = Field(default=10.0, gt=0, le=60)
    upload_dir: Path = PROJECT_ROOT / "var" / "uploads"
    vosk_model_path: Path = PROJECT_ROOT / "var" / "models" / "model-en-us"
    # Caption engines elsewhere (docs/scaling.md): comma-separated ws:// or wss:// URLs of
    # vosk-server-compatible engines; empty: speakers are captioned in this process. The
    # token is sent to them as `Authorization: Bearer` (alphacep's server ignores it).
    caption_engines: str = ""
    caption_engine_token: SecretStr | None = None
    caption_engine_check_seconds: float = Field(default=2.0, gt=0, le=60)
    # Speakers recognized at once (each in an utterance holds a recognizer); more wait
    # their turn (docs/captioning.md). Default: 10 per core.
    caption_recognizers_max: int = Field(
        default_factory=lambda: 10 * (os.cpu_count() or 2), ge=1, le=1000
    )
    static_vendor_dir: Path = PROJECT_ROOT / "node_modules"
    base_url: str = "http://127.0.0.1:8000"
    # Cookies are marked Secure when the public address is HTTPS.
    secure_cookies: bool | None = None
    session_max_age_days: int = Field(default=14, ge=1, le=365)
    invite_max_age_days: int = Field(default=30, ge=1, le=365)
    default_timezone: str = "Europe/London"
    max_upload_mb: int = Field(default=100, ge=1, le=10_000)
    # A request body that sends nothing for this long, or less than the minimum rate on
    # average over a window, is ended with 408 (app/bodylimits.py).
    upload_idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    upload_min_bytes_per_second: int = Field(default=1024, ge=0)
    upload_rate_window_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_uploads_per_person: int = Field(default=3, ge=1, le=100)
    # Transcribing one sound item may use this much CPU time per second of its audio, plus
    # the margin; past that the item fails instead of holding the queue.
    transcription_cpu_per_audio_second: float = Field(default=2.0, gt=0)
    transcription_cpu_margin_seconds: float = Field(default=60.0, ge=0)
    max_csv_rows: int = Field(default=5_000, ge=1)
    login_attempts_per_minute: int = Field(default=10, ge=1)
    # Wrong passwords from one address, whatever accounts they name, and from everyone.
    login_failures_per_address_per_minute: int = Field(default=30, ge=1)
    login_failures_per_minute: int = Field(default=300, ge=1)
    # Password checks (argon2) run in this many threads; at most this many more may wait.
    password_check_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1, le=64
    )
    password_check_queue: int = Field(default=16, ge=0, le=10_000)

    @field_validator("caption_engines")
    @classmethod
    def _check_caption_engines(cls, value: str) -> str:
        parse_engine_urls(value)  # a clear error at startup, not at the first speaker
        return value

    @property
    def caption_engine_urls(self) -> list[str]:
        return parse_engine_urls(self.caption_engines)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment == "production" and (
            self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32
        ):
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 32 characters in production"
            )
        return self

    @property
    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.base_url.startswith("https://")

    @property
    def async_database_url(self) -> str:
        return to_async_url(self.database_url)

    @property
    def sync_database_url(self) -> str:
        return to_sync_url(self.database_url)


def to_async_url(url: str) -> str:
    """Accept the common spellings of a database URL and pick the async driver."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def to_sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic)."""
    url = to_async_url(url)
    if url.startswith("sqlite+aiosqlite:///"):
        return "sqlite:///" + url.removeprefix("sqlite+aiosqlite:///")
    return url  # psycopg 3 serves both sync and async
