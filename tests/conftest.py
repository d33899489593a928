"""Shared fixtures: a migrated database per test, a fresh app, and a browser-like client;
a watch on every server the suite runs, which fails the run if any of them logged an
unhandled exception; figures that tests report (the burst test's p99) at the end."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import PROJECT_ROOT, Settings, to_sync_url
from app.factory import create_app
from app.models import User
from app.security import CSRF_COOKIE, SESSION_COOKIE, SessionClaims, Signer
from app.state import STATE_KEY, AppState

TEST_SECRET = "test-secret-key-that-is-long-enough-for-tests"
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")


# What uvicorn logs when an exception escapes the app (any route, any transport).
ASGI_FAILURE = "Exception in ASGI application"


class ServerLogWatch:
    """Collects every ASGI_FAILURE of the suite: in-process servers (uvicorn's "uvicorn.error"
    logger, watched by a filter, which survives the logging set-up each uvicorn.Config
    does, unlike a handler) and server processes (tests/procs.py registers their logs).
    Clients of in-process apps without a server (httpx.ASGITransport) get the exception
    raised into the test itself."""

    def __init__(self) -> None:
        self.test = "(outside any test)"
        self.seen: list[str] = []
        self.process_logs: dict[Path, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if ASGI_FAILURE in record.getMessage():
            error = record.exc_info[1] if record.exc_info else None
            self.seen.append(f"{self.test}: {type(error).__name__}: {str(error)[:200]}")
        return True

    def watch_process_log(self, path: Path) -> None:
        self.process_logs.setdefault(path, self.test)

    def failures(self) -> list[str]:
        found = list(self.seen)
        for path, test in self.process_logs.items():
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if ASGI_FAILURE in text:
                tail = text[text.index(ASGI_FAILURE) :].splitlines()
                error = next((line for line in tail if "Error" in line), tail[-1])
                found.append(f"{test} (server process, {path.name}): {error.strip()[:200]}")
        return found


SERVER_LOG = ServerLogWatch()
FIGURES: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("uvicorn.error").addFilter(SERVER_LOG.filter)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    SERVER_LOG.test = item.nodeid


@pytest.fixture(scope="session", autouse=True)
def server_logs_are_clean() -> Iterator[None]:
    """Fails the run (an error at the end) if any server of the suite logged an unhandled
    exception, whatever test or route it came from, and even if that test passed."""
    yield
    failures = SERVER_LOG.failures()
    if failures:
        listed = "\n  ".join(failures[:20])
        pytest.fail(
            f"{len(failures)} unhandled exception(s) in the servers' logs "
            f"({ASGI_FAILURE!r}):\n  {listed}",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def report_figure() -> Any:
    """A line of figures for the end of the run (and the test's own output)."""

    def report(line: str) -> None:
        print(line)
        FIGURES.append(line)

    return report


def alembic_upgrade(database_url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    alembic_upgrade(f"sqlite:///{path}")
    return path


# Under pytest-xdist each worker (gw0, gw1 …) has a PostgreSQL database and a Redis
# database of its own (scripts/start-services makes them), since tests reset them.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_NUMBER = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else None


def for_this_worker_postgres(url: str) -> str:
    if WORKER_NUMBER is None:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path}_{WORKER}"))


def for_this_worker_redis(url: str) -> str:
    if WORKER_NUMBER is None:
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + WORKER_NUMBER
    return urlunsplit(parts._replace(path=f"/{database % 16}"))


def postgres_url_or_skip() -> str:
    if POSTGRES_URL:
        return for_this_worker_postgres(POSTGRES_URL)
    if IN_CI:
        pytest.fail("CI=true but TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
    pytest.skip("TEST_POSTGRES_URL is not set")


def reset_postgres(url: str) -> None:
    engine = create_engine(to_sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    alembic_upgrade(url)


@pytest.fixture(params=["sqlite"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite_template: Path
) -> str:
    """The database for one test. Tests (or modules) that must also run on PostgreSQL
    parametrize this fixture indirectly with ["sqlite", "postgres"]."""
    if request.param == "postgres":
        url = postgres_url_or_skip()
        reset_postgres(url)
        return url
    path = tmp_path / "roundtable.db"
    shutil.copy(migrated_sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        secret_key=TEST_SECRET,
        database_url=database_url,
        upload_dir=tmp_path / "uploads",
        # No model, so apps start fast; caption tests point this at the real one
        # (tests/audio_fixtures.py: vosk_model_path, from VOSK_MODEL_PATH or var/models).
        vosk_model_path=tmp_path / "no-model",
        base_url="http://testserver",
    )


@pytest.fixture
async def app_and_state(settings: Settings) -> AsyncIterator[tuple[Any, AppState]]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        yield manager.app, manager._state[STATE_KEY]


@pytest.fixture
async def db(app_and_state: tuple[Any, AppState]) -> AsyncIterator[AsyncSession]:
    async with app_and_state[1].sessionmaker() as session:
        yield session


class Browser(httpx.AsyncClient):
    """An HTTP client that behaves like a browser: keeps cookies, sends the CSRF token
    with forms, and can be signed in as somebody directly."""

    signer: Signer

    def csrf_token(self) -> str:
        cookie = self.cookies.get(CSRF_COOKIE)
        if cookie is None:
            cookie = "test-csrf-cookie"
            self.cookies.set(CSRF_COOKIE, cookie, domain="testserver.local")
        return self.signer.csrf_token(cookie)

    def sign_in_as(self, user: User) -> Browser:
        claims = SessionClaims(user_id=user.id, epoch=user.auth_epoch)
        self.cookies.set(
            SESSION_COOKIE, self.signer.session_cookie(claims), domain="testserver.local"
        )
        return self

    async def submit(
        self, url: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST a form as the page would, with its CSRF token."""
        form = {"csrf_token": self.csrf_token(), **(data or {})}
        return await self.post(url, data=form, **kwargs)

    async def api(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Call the JSON API as the page's scripts would, with the CSRF header."""
        headers = {"X-CSRF-Token": self.csrf_token(), **kwargs.pop("headers", {})}
        return await self.request(method, url, headers=headers, **kwargs)


@pytest.fixture
async def browser_factory(
    app_and_state: tuple[Any, AppState],
) -> AsyncIterator[Any]:
    app, _state = app_and_state
    clients: list[Browser] = []

    def make(user: User | None = None) -> Browser:
        client = Browser(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            follow_redirects=False,
        )
        client.signer = Signer(TEST_SECRET)
        if user is not None:
            client.sign_in_as(user)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def browser(browser_factory: Any) -> Browser:
    return browser_factory()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project_root() -> Iterator[Path]:
    yield PROJECT_ROOT


class LiveServer:
    """The app served by uvicorn on a free loopback port, for WebSocket, SSE and
    long-poll tests that need a real server."""

    def __init__(self, server: Any, signer: Signer) -> None:
        self.server = server
        self.signer = signer
        sock = server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"

    @property
    def app_state(self) -> AppState:
        """The running app's resources (its lifespan's AppState)."""
        state: AppState = self.server.lifespan.state[STATE_KEY]
        return state

    def cookie_header(self, user: User) -> str:
        claims = SessionClaims(user_id=user.id, epoch=user.auth_epoch)
        return f"{SESSION_COOKIE}={self.signer.session_cookie(claims)}; {CSRF_COOKIE}=live-test"

    def csrf_token(self) -> str:
        return self.signer.csrf_token("live-test")

    def client(self, user: User | None = None) -> httpx.AsyncClient:
        headers = {"X-CSRF-Token": self.csrf_token()}
        if user is not None:
            headers["Cookie"] = self.cookie_header(user)
        return httpx.AsyncClient(base_url=self.http, headers=headers, timeout=30)


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    import asyncio

    import uvicorn

    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the test server did not start"
    yield LiveServer(server, Signer(TEST_SECRET))
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def redis_url_or_skip() -> str:
    """The Redis server for broker and scale-out tests (like postgres_url_or_skip)."""
    if REDIS_URL:
        return for_this_worker_redis(REDIS_URL)
    if IN_CI:
        pytest.fail("CI=true but TEST_REDIS_URL is not set: Redis tests must run in CI")
    pytest.skip("TEST_REDIS_URL is not set")
