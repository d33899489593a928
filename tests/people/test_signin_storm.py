"""Sign-ins under attack: wrong passwords are slow to check on purpose, so they are checked
off the event loop, bounded, and limited per account, per address and for everyone; live chat
keeps flowing meanwhile. X-Forwarded-For is believed only from configured proxies."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.config import PROJECT_ROOT, Settings, to_async_url
from app.db import make_engine, make_sessionmaker
from app.live import channels
from app.ratelimit import SignInLimits
from tests.factories import PASSWORD, World, make_user, make_world
from tests.procs import AppProcess

STORM = 40


class ServedProcess(AppProcess):
    """The app started exactly as deployments start it: scripts/run-server."""

    def __init__(self, *, forwarded_allow_ips: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.env["PYTHON"] = os.environ.get("PYTHON", str(Path(os.sys.executable)))
        self.env["HOST"] = "127.0.0.1"
        self.env["PORT"] = str(self.port)
        self.env.pop("FORWARDED_ALLOW_IPS", None)
        if forwarded_allow_ips is not None:
            self.env["FORWARDED_ALLOW_IPS"] = forwarded_allow_ips

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own script
                [str(PROJECT_ROOT / "scripts" / "run-server")],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


async def seed(database_url: str, *, staff: int = 0) -> World:
    """The usual world, and `staff` more people who sign in with a password."""
    engine = make_engine(to_async_url(database_url))
    try:
        async with make_sessionmaker(engine)() as db:
            world = await make_world(db)
            for n in range(staff):
                await make_user(db, email=f"staff{n}@example.org", password=PASSWORD)
            await db.commit()
    finally:
        await engine.dispose()
    return world


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[ServedProcess]:
    process = ServedProcess(database_url=database_url, workdir=tmp_path, name="served")
    yield process
    await process.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def wrong_sign_in(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    form = {"csrf_token": client.headers["X-CSRF-Token"], "email": email, "password": "not it"}
    return await client.post("/signin", data=form, headers=headers)


async def test_live_chat_keeps_flowing_while_forty_wrong_sign_ins_are_answered(
    database_url: str, served: ServedProcess
) -> None:
    world = await seed(database_url, staff=STORM)
    await served.start_and_wait()
    path = f"/programmes/{world.programme.id}/sessions/{world.session.id}/live/ws"
    plenary = channels.plenary(world.session.id)
    # (Observers only watch: they do not post.)
    senders = [world.participant_a, world.participant_b, world.facilitator_a, world.it_support]

    async def connect(user: Any) -> Any:
        ws = await websockets.connect(
            served.ws + path, additional_headers={"Cookie": served.cookie_header(user)}
        )
        await ws.send(json.dumps({"type": "hello", "cursors": {plenary: None}}))
        assert json.loads(await ws.recv())["t"] == "hello"
        return ws

    listener = await connect(world.host)
    sockets = [await connect(user) for user in senders]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def listen() -> None:
        async for raw in listener:
            message = json.loads(raw)
            if message.get("t") == "chat.message":
                for text, at in list(sent_at.items()):
                    if text in message["h"]:
                        latencies.append(time.perf_counter() - at)
                        del sent_at[text]

    async def chat(n: int, user: Any, stop: asyncio.Event) -> None:
        count = 0
        async with served.client(user) as http:  # the composer's form post, as the page
            while not stop.is_set():
                count += 1
                text = f"storm-line-{n}-{count}"
                sent_at[text] = time.perf_counter()
                form = {"channel": plenary, "text": text, "client_id": text}
                chat_url = path.removesuffix("/ws") + "/chat"
                await http.post(chat_url, data=form, headers={"HX-Request": "true"})
                # The chat allows five messages in five seconds each.
                await asyncio.sleep(1.1)

    async def drain(ws: Any) -> None:  # senders' acknowledgements and the room's messages
        async for _ in ws:
            pass

    reading = asyncio.create_task(listen())
    draining = [asyncio.create_task(drain(ws)) for ws in sockets]
    stop = asyncio.Event()
    chatting = [asyncio.create_task(chat(n, user, stop)) for n, user in enumerate(senders)]
    await asyncio.sleep(1.0)
    async with served.client() as client:
        await client.get("/signin")  # a CSRF cookie, as a browser has
        client.headers["X-CSRF-Token"] = served.signer.csrf_token("live-test")
        client.cookies.set("rt_csrf", "live-test")
        started = time.perf_counter()
        answers = await asyncio.gather(
            # Forty accounts that exist, each with a wrong password: forty real checks.
            *(wrong_sign_in(client, f"staff{n}@example.org") for n in range(STORM)),
            *(wrong_sign_in(client, f"nobody{n}@example.org") for n in range(STORM // 4)),
        )
        storm_seconds = time.perf_counter() - started
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.gather(*chatting)
    await asyncio.sleep(1.0)
    for ws in [listener, *sockets]:
        await ws.close()
    await asyncio.gather(reading, *draining)

    statuses = sorted({a.status_code for a in answers})
    print(
        f"\n{len(answers)} wrong sign-ins answered in {storm_seconds:.2f} s with {statuses}; "
        f"chat during the storm: {len(latencies)} messages, delivery p50 "
        f"{statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms,"
        f" max {max(latencies) * 1000:.0f} ms"
    )
    assert set(statuses) <= {400, 429, 503}, statuses
    for answer in answers:
        if answer.status_code in (429, 503):
            assert int(answer.headers["Retry-After"]) > 0
            assert "try again" in answer.text
    assert not sent_at, f"chat messages never delivered: {sorted(sent_at)}"
    # Before, the server froze for the whole storm (ten seconds here): nothing was delivered.
    assert max(latencies) < 2.0


async def test_forwarded_for_is_believed_only_from_a_configured_proxy(
    database_url: str, tmp_path: Path
) -> None:
    world = await seed(database_url)
    email = world.host.email or ""
    for proxies, expect_limit in ((None, True), ("127.0.0.1", False)):
        server = ServedProcess(
            database_url=database_url,
            workdir=tmp_path,
            name=f"proxy-{proxies}",
            forwarded_allow_ips=proxies,
        )
        await server.start_and_wait()
        try:
            async with server.client() as client:
                client.cookies.set("rt_csrf", "live-test")
                answers = [
                    await wrong_sign_in(client, email, **{"X-Forwarded-For": f"203.0.113.{n}"})
                    for n in range(12)
                ]
        finally:
            await server.stop()
        codes = [a.status_code for a in answers]
        if expect_limit:
            # A new made-up address each time changes nothing: the limit is per real address.
            assert codes[:10] == [400] * 10 and codes[10:] == [429, 429], codes
        else:
            # Behind a configured proxy, its header names the visitor, who differs each time.
            assert codes == [400] * 12, codes


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        secret_key="test-secret-key-that-is-long-enough-for-tests",
        database_url=database_url,
        upload_dir=tmp_path / "uploads",
        vosk_model_path=tmp_path / "no-model",
        base_url="http://testserver",
        login_failures_per_address_per_minute=5,
        password_check_threads=1,
        password_check_queue=1,
    )


async def test_one_address_cannot_guess_across_many_accounts(browser: Any) -> None:
    codes = []
    for n in range(7):
        answer = await browser.submit(
            "/signin", {"email": f"person{n}@example.org", "password": "guess"}
        )
        codes.append(answer.status_code)
    assert codes == [400] * 5 + [429, 429]
    assert "Too many sign-in attempts" in answer.text
    assert int(answer.headers["Retry-After"]) > 0


async def test_too_many_password_checks_at_once_are_refused_politely(
    browser_factory: Any, db: Any
) -> None:
    await make_user(db, email="busy@example.org", password=PASSWORD)
    await db.commit()
    answers = await asyncio.gather(
        *(
            browser_factory().submit("/signin", {"email": "busy@example.org", "password": "wrong"})
            for _ in range(6)
        )
    )
    codes = sorted(a.status_code for a in answers)
    # One check runs and one waits; the others are told at once to try again shortly.
    assert codes.count(400) == 2 and codes.count(503) == 4, codes
    busy = next(a for a in answers if a.status_code == 503)
    assert "try again in a few seconds" in busy.text
    assert busy.headers["Retry-After"] == "5"


def test_wrong_passwords_from_everyone_have_a_ceiling() -> None:
    limits = SignInLimits(per_account=10, per_address=30, everyone=50)
    for n in range(50):
        assert limits.refuse(f"10.0.{n}.1", f"p{n}@example.org") == 0
        limits.failed(f"10.0.{n}.1")
    # The 51st wrong password within the minute waits, from whichever address.
    assert limits.refuse("10.9.9.9", "someone@example.org") > 0


async def test_password_changes_beyond_the_queue_are_refused_politely(
    browser_factory: Any, db: Any
) -> None:
    person = await make_user(db, email="changer@example.org", password=PASSWORD)
    await db.commit()
    form = {
        "current_password": "not the password",
        "new_password": "a new long password",
        "confirm_password": "a new long password",
    }
    answers = await asyncio.gather(
        *(browser_factory(person).submit("/profile/password", form) for _ in range(6))
    )
    codes = sorted(a.status_code for a in answers)
    assert 503 in codes and set(codes) <= {400, 503}, codes  # 400: "not your password"
    busy = next(a for a in answers if a.status_code == 503)
    assert "try again in a few seconds" in busy.text and int(busy.headers["Retry-After"]) > 0
