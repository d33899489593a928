"""Uploads that trickle or stall: against a real uvicorn server, several clients send their
files a few bytes at a time. None of them may hold a database connection while its body
arrives, so the health check and other people's uploads go on; each is ended with a clear
408 and its partial file removed; and one person cannot open more than a few at once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.models import Role, User
from tests import evidence_files as ef
from tests.conftest import LiveServer
from tests.factories import add_member, make_user, make_world

UPLOADS_PER_PERSON = 2
# Well above the trickle's 0.2 s between drips, even on a loaded machine, so the trickling
# uploads are ended for their rate and only the stalled one for silence (before the rate
# window is over).
IDLE_SECONDS = 1.5
RATE_WINDOW_SECONDS = 2.5
MIN_BYTES_PER_SECOND = 1000
BOUNDARY = "----roundtable-slow-upload"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "upload_idle_timeout_seconds": IDLE_SECONDS,
            "upload_rate_window_seconds": RATE_WINDOW_SECONDS,
            "upload_min_bytes_per_second": MIN_BYTES_PER_SECOND,
            "max_uploads_per_person": UPLOADS_PER_PERSON,
        }
    )


def multipart(
    fields: dict[str, str], field_name: str, filename: str, payload: bytes
) -> tuple[bytes, bytes]:
    """The form's bytes up to the end of the file part's headers, and the rest."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name={json.dumps(field_name)}; "
        f"filename={json.dumps(filename)}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, payload + f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def detail(self) -> str:
        detail: str = json.loads(self.body)["detail"]
        return detail


@dataclass
class SlowUpload:
    """One upload over a raw socket: the request's head and `first` bytes of the body at
    once, then `drip` bytes every `every` seconds (with drip=0, nothing more: stalled). It
    stops sending as soon as an answer arrives, as a browser does."""

    server: LiveServer
    user: User
    path: str
    fields: dict[str, str]
    field_name: str
    filename: str
    payload: bytes
    first: int = 300
    drip: int = 2
    every: float = 0.2
    accept_json: bool = True
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _answer: asyncio.Future[Answer] | None = None

    async def start(self) -> SlowUpload:
        head, rest = multipart(self.fields, self.field_name, self.filename, self.payload)
        body = head + rest
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        request = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n"
            f"Cookie: {self.server.cookie_header(self.user)}\r\n"
            f"X-CSRF-Token: {self.server.csrf_token()}\r\n"
            f"Accept: {'application/json' if self.accept_json else 'text/html'}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        start = len(head) + self.first
        writer.write(request + body[:start])
        await writer.drain()
        self._answer = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read(reader, writer)),
            asyncio.create_task(self._send(writer, body[start:])),
        ]
        return self

    async def _send(self, writer: asyncio.StreamWriter, rest: bytes) -> None:
        assert self._answer is not None
        try:
            while rest and not self._answer.done():
                await asyncio.sleep(self.every)
                if self.drip == 0 or self._answer.done():
                    continue
                writer.write(rest[: self.drip])
                rest = rest[self.drip :]
                await writer.drain()
        except ConnectionError:
            pass  # the server ended the upload

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._answer is not None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self._answer.set_result(
                Answer(int(lines[0].split()[1]), headers, body.decode("utf-8", "replace"))
            )
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._answer.set_exception(AssertionError(f"no answer: {exc!r}"))
        finally:
            writer.close()

    async def answer(self, timeout: float) -> Answer:
        assert self._answer is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._answer), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.filename}: no answer within {timeout} s") from None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def no_database_connection_held(server: LiveServer) -> bool:
    """Whether the server's pool has every connection back (within a second: background
    workers take one for a moment now and then)."""
    pool = server.app_state.engine.pool
    for _ in range(50):
        if pool.checkedout() == 0:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_trickling_uploads_hold_no_database_connection_and_are_ended_clearly(
    db: Any, live_server: LiveServer, settings: Settings
) -> None:
    w = await make_world(db)
    people = [w.participant_a]
    for n in range(9):
        person = await make_user(db, name=f"Trickling Person {n}")
        await add_member(db, w.programme, person, Role.PARTICIPANT, w.group_a)
        people.append(person)
    await db.commit()
    evidence = f"/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence/upload"
    papers = f"/programmes/{w.programme.id}/sessions/{w.session.id}/papers"
    roster = f"/programmes/{w.programme.id}/roster/import"
    sound = ef.wav(rate=8000, data_bytes=32_000)  # 2 s

    def trickle(
        user: User, path: str, name: str, payload: bytes = sound, **options: Any
    ) -> SlowUpload:
        fields = {"kind": "pre_reading"} if path == papers else {}
        field_name = "files" if path == evidence else "file"
        return SlowUpload(live_server, user, path, fields, field_name, name, payload, **options)

    # Nine people send two sound files each, and the host a paper and a roster, all at
    # 10 bytes a second; one more person's upload stalls outright. That is 21 uploads at
    # once, more than a process's database pool holds.
    trickling = [
        trickle(person, evidence, f"note-{n}-{k}.wav")
        for n, person in enumerate(people[:9])
        for k in range(UPLOADS_PER_PERSON)
    ]
    trickling.append(trickle(w.host, papers, "agenda.txt", accept_json=False))
    trickling.append(trickle(w.host, roster, "roster.csv", accept_json=False))
    stalled = trickle(people[9], evidence, "stalled.wav", drip=0)
    uploads = [*trickling, stalled]
    try:
        for upload in uploads:
            await upload.start()
        await asyncio.sleep(0.3)  # the server has begun them all
        # A third upload from someone with two under way is refused at once.
        third = await trickle(people[0], evidence, "third.wav").start()
        uploads.append(third)
        busy = await third.answer(timeout=2)
        assert busy.status == 429, busy.body
        assert int(busy.headers["retry-after"]) >= 1
        assert busy.detail().startswith(f"You are already sending {UPLOADS_PER_PERSON} files."), (
            busy.detail()
        )

        await asyncio.sleep(0.3)  # every body is arriving now
        assert await no_database_connection_held(live_server)
        async with live_server.client() as anyone:
            health = await anyone.get("/healthz", timeout=3)
        assert health.status_code == 200, health.text
        assert health.headers.get("connection") != "close"  # only unfinished bodies close
        # Somebody else's ordinary upload goes through meanwhile,
        async with live_server.client(w.participant_b) as pat:
            done = await pat.post(
                f"/programmes/{w.programme.id}/groups/{w.group_b.id}/evidence/upload",
                files=[("files", ("flipchart.png", ef.png(), "image/png"))],
                headers={"Accept": "application/json"},
                timeout=5,
            )
        assert done.status_code == 201, done.text
        # and so does a slow one that keeps above the minimum rate (3,000 bytes a second).
        document = ef.PDF[:-6] + b"\n" * 5000 + b"%%EOF\n"
        steady = trickle(w.facilitator_a, evidence, "steady.pdf", document, drip=300, every=0.1)
        uploads.append(await steady.start())
        assert (await steady.answer(timeout=8)).status == 201

        for upload in trickling:
            answer = await upload.answer(timeout=5)
            assert answer.status == 408, (upload.filename, answer.status, answer.body)
            assert answer.headers.get("connection") == "close"
            text = answer.detail() if upload.accept_json else answer.body
            assert "arriving too slowly" in text, text
            assert "nothing was kept" in text.lower(), text
        answer = await stalled.answer(timeout=5)
        assert answer.status == 408
        assert answer.detail().startswith("Your upload stopped arriving"), answer.detail()
        assert await no_database_connection_held(live_server)
    finally:
        for upload in uploads:
            await upload.close()
    # Nothing is left of the ended uploads: only Pat's picture (and its thumbnail) and the
    # steady document are stored.
    kept = files_in(settings.upload_dir)
    assert len(kept) == 3, kept
    assert not [p for p in kept if p.name.endswith(".part")]


async def test_a_trickling_tech_check_sample_holds_no_database_connection(
    db: Any, live_server: LiveServer
) -> None:
    w = await make_world(db)
    sample = ef.wav(rate=16000, data_bytes=64_000)  # 2 s
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    head = (
        f"POST /tech-check/caption HTTP/1.1\r\nHost: 127.0.0.1:{live_server.port}\r\n"
        f"Cookie: {live_server.cookie_header(w.participant_a)}\r\n"
        f"X-CSRF-Token: {live_server.csrf_token()}\r\n"
        f"Content-Type: audio/wav\r\nContent-Length: {len(sample)}\r\n\r\n"
    ).encode()
    try:
        writer.write(head + sample[:100])
        await writer.drain()
        # Sampled while the body is still arriving (it is cut off after 1.5 s of nothing):
        # once the sign-in is checked (however long a loaded machine takes), the route
        # gives its connection back; background workers may take one for a moment.
        pool = live_server.app_state.engine.pool
        released_by = asyncio.get_running_loop().time() + 0.9
        while pool.checkedout() and asyncio.get_running_loop().time() < released_by:
            await asyncio.sleep(0.01)
        samples = []
        for _ in range(8):
            samples.append(pool.checkedout())
            await asyncio.sleep(0.03)
        assert samples.count(0) >= 6, samples
        # It is cut off as the uploads are (the tech check has its own small sample).
        status = (await asyncio.wait_for(reader.readline(), 5)).split()[1]
        assert status == b"408"
    finally:
        writer.close()
