"""Real app server processes for scale-out and crash tests: `python -m uvicorn app.main:app`
in a subprocess, configured through the environment as in production."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from app.config import PROJECT_ROOT
from app.models import User
from app.security import CSRF_COOKIE, SESSION_COOKIE, SessionClaims, Signer
from tests.conftest import SERVER_LOG, TEST_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppProcess:
    """One app server process on a fixed port; it can be stopped, killed and started
    again on the same port. Offers what tests.live_helpers.LiveClient needs (`ws`,
    `cookie_header`), like the in-process `live_server` fixture."""

    def __init__(
        self,
        *,
        database_url: str,
        workdir: Path,
        redis_url: str | None = None,
        port: int | None = None,
        name: str = "app",
    ) -> None:
        self.port = port or free_port()
        self.name = name
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.signer = Signer(TEST_SECRET)
        self.log_path = workdir / f"{name}-{self.port}.log"
        # Read at the end of the run: no unhandled exception may be in it.
        SERVER_LOG.watch_process_log(self.log_path)
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            # Empty means the in-process broker (and overrides any .env file).
            "REDIS_URL": redis_url or "",
            "BASE_URL": self.http,
            "UPLOAD_DIR": str(workdir / "uploads"),
            "VOSK_MODEL_PATH": str(workdir / "no-model"),
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and app
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "app.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--ws",
                    "websockets-sansio",
                    "--log-level",
                    "warning",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /healthz answers; fails at once, with the server's output, if it exits."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.http, timeout=2) as client:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited while starting:\n{self.output()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name} did not start in time:\n{self.output()}")
                await asyncio.sleep(0.1)

    async def start_and_wait(self) -> None:
        self.start()
        await self.wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as in a crash or an out-of-memory kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        for _ in range(int(timeout * 10)):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.kill()

    def output(self, last: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-last:]
        except FileNotFoundError:
            return ""

    def cookie_header(self, user: User) -> str:
        claims = SessionClaims(user_id=user.id, epoch=user.auth_epoch)
        return f"{SESSION_COOKIE}={self.signer.session_cookie(claims)}; {CSRF_COOKIE}=live-test"

    def client(self, user: User | None = None) -> httpx.AsyncClient:
        headers = {"X-CSRF-Token": self.signer.csrf_token("live-test")}
        if user is not None:
            headers["Cookie"] = self.cookie_header(user)
        return httpx.AsyncClient(base_url=self.http, headers=headers, timeout=30)
