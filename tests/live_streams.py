"""Clients of the fallback transports for live tests: a Server-Sent Events stream read in
the background, and long-polls (one, or one after another as the page does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx

from app.models import User


def cursor_text(cursors: dict[str, int | None]) -> str:
    return ",".join(f"{c}={'' if i is None else i}" for c, i in cursors.items())


class SseReader:
    """A Server-Sent Events stream read in the background, as EventSource would."""

    def __init__(self, server: Any, user: User, path: str, cursors: dict[str, int | None]):
        self.events: list[dict[str, Any]] = []
        self.last_id = ""
        self.ended = asyncio.Event()
        self._arrived = asyncio.Event()
        self._http = server.client(user)
        self._url = path + "/sse"
        self._cursors = cursor_text(cursors)
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> SseReader:
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda event: event.get("t") == "hello")
        return self

    async def _read(self) -> None:
        try:
            async with self._http.stream(
                "GET", self._url, params={"cursors": self._cursors}
            ) as response:
                assert response.status_code == 200, response.status_code
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        self.last_id = line.removeprefix("id: ")
                    elif line.startswith("data: "):
                        self.events.append(json.loads(line.removeprefix("data: ")))
                        self._arrived.set()
        finally:
            self.ended.set()
            self._arrived.set()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                if self.ended.is_set():
                    raise AssertionError(f"the stream ended first: {self.events}")
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._http.aclose()


async def poll(
    http: httpx.AsyncClient, path: str, cursors: dict[str, int | None], wait: float = 10
) -> dict[str, Any]:
    params = {"cursors": cursor_text(cursors), "wait": str(wait)}
    response = await http.get(path + "/poll", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Poller:
    """Long-polls in the background as a client would, each poll with the cursors the last
    one answered, until told to stop or told to reload."""

    def __init__(self, server: Any, user: User, path: str, cursors: dict[str, int | None]):
        # One client, so every poll carries the cookie the person has now.
        self._http = server.client(user)
        self.path = path
        self.cursors = cursors
        self.events: list[dict[str, Any]] = []
        self.answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Poller:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            answer = await poll(self._http, self.path, self.cursors)
            self.events.extend(answer["events"])
            self.cursors = answer["cursors"]
            self.answered.set()
            if any(e["t"] == "reload" for e in answer["events"]):
                return

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.answered.clear()
                await self.answered.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()
