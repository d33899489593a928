"""The chat writer's SQLite connection (app/db.py: LoopRunner) waits for another
connection's write lock by trying again every few milliseconds, so a message that meets a
lock (a caption being stored, a hand raised) is written as soon as the lock is free; and it
still gives up, as too busy, once the busy timeout has passed."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import LoopRunner, is_overloaded


def make_database(tmp_path: Path) -> str:
    path = tmp_path / "lock.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE notes (body TEXT)")
    return str(path)


def hold_write_lock(path: str, seconds: float) -> tuple[threading.Thread, list[float]]:
    """Another connection takes the write lock, holds it for `seconds`, and lets go; the
    moment it let go is put in the returned list."""
    released: list[float] = []
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        released.append(time.monotonic())
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    return thread, released


def write_note(session: Session) -> float:
    session.execute(text("INSERT INTO notes (body) VALUES ('hello')"))
    session.commit()
    return time.monotonic()


async def test_a_batch_is_written_as_soon_as_the_lock_is_free(tmp_path: Path) -> None:
    path = make_database(tmp_path)
    runner = LoopRunner(f"sqlite+aiosqlite:///{path}", sqlite_busy_seconds=5)
    try:
        await runner.run(write_note)  # connected, pragmas set
        # Held 250 ms: SQLite's own busy handler tries at 228 ms, then sleeps 100 ms (about
        # 80 ms late); trying every few milliseconds, the batch follows the release closely.
        thread, released = hold_write_lock(path, 0.25)
        written = await runner.run(write_note)
        thread.join()
        late = written - released[0]
        assert 0 <= late < 0.04, f"written {late * 1000:.0f} ms after the lock was free"
    finally:
        await runner.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (2,)


async def test_a_lock_held_past_the_busy_timeout_is_too_busy(tmp_path: Path) -> None:
    path = make_database(tmp_path)
    runner = LoopRunner(f"sqlite+aiosqlite:///{path}", sqlite_busy_seconds=0.2)
    try:
        thread, _ = hold_write_lock(path, 0.6)
        started = time.monotonic()
        with pytest.raises(Exception) as refused:
            await runner.run(write_note)
        waited = time.monotonic() - started
        thread.join()
        assert is_overloaded(refused.value), refused.value
        assert 0.15 <= waited < 0.5, waited
    finally:
        await runner.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (0,)


async def test_the_log_is_checkpointed_in_a_thread_not_by_the_writer(tmp_path: Path) -> None:
    """The writer's connection never checkpoints on the loop (an fsync of tens of
    milliseconds); a thread copies the log into the database now and then."""
    path = make_database(tmp_path)
    runner = LoopRunner(f"sqlite+aiosqlite:///{path}", sqlite_busy_seconds=5)
    runner.CHECKPOINT_EVERY_SECONDS = 3600.0

    def write_a_lot(session: Session) -> None:
        for _ in range(2000):
            session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "x" * 2000})
        session.commit()

    try:
        for _ in range(3):
            await runner.run(write_a_lot)
        # Past SQLite's 1,000 pages, and still all in the log: the writer did not copy it.
        assert Path(path + "-wal").stat().st_size > 10_000_000
        assert Path(path).stat().st_size < 100_000
        runner.CHECKPOINT_EVERY_SECONDS = 0.0
        await runner.run(write_note)
        assert runner._checkpoint is not None
        await runner._checkpoint
        assert Path(path).stat().st_size > 10_000_000
    finally:
        await runner.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (6001,)
