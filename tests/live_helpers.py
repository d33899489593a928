"""Clients for live tests: a WebSocket client that keeps what it receives, and sends chat
as the page does (a frame on its WebSocket, or the composer's form post)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets

from tests.conftest import LiveServer


class LiveClient:
    def __init__(self, ws: Any, server: LiveServer, user: Any, path: str) -> None:
        self.ws = ws
        self.server = server
        self.user = user
        self.path = path
        self.received: list[dict[str, Any]] = []
        # The page's cookies: its WebSocket and its posts carry the same session cookie.
        self.cookie = ""
        # Received but not yet taken by wait_for.
        self.inbox: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls, server: LiveServer, user: Any, path: str, cursors: dict[str, int | None]
    ) -> LiveClient:
        cookie = server.cookie_header(user)
        ws = await websockets.connect(
            server.ws + path + "/ws", additional_headers={"Cookie": cookie}, open_timeout=10
        )
        client = cls(ws, server, user, path)
        client.cookie = cookie
        await client.send({"type": "hello", "cursors": cursors})
        hello = await client.next()
        assert hello["t"] == "hello", hello
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message = json.loads(raw)
        message["_bytes"] = len(raw.encode() if isinstance(raw, str) else raw)
        self.received.append(message)
        return message

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        for index, waiting in enumerate(self.inbox):
            if predicate(waiting):
                return self.inbox.pop(index)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("the expected live event did not arrive")
            message = await self.next(left)
            if predicate(message):
                return message
            self.inbox.append(message)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (expected: nothing of interest)."""
        got, self.inbox = self.inbox, []
        try:
            while True:
                got.append(await self.next(seconds))
        except TimeoutError:
            return got

    async def chat(
        self, channel: str, text: str, client_id: str, *, private: bool = False
    ) -> dict[str, Any]:
        """Post a message as the page's composer does (htmx): an `ack` with the stored
        message's id, or an `error` with the answer's status, text and Retry-After."""
        form = {"text": text, "channel": channel, "client_id": client_id}
        if private:
            form["private"] = "on"
        async with self.server.client() as http:
            answer = await http.post(
                self.path + "/chat",
                data=form,
                headers={"HX-Request": "true", "Cookie": self.cookie},
            )
        if answer.status_code == 204:
            return {"t": "ack", "client_id": client_id, "id": int(answer.headers["x-message-id"])}
        return {
            "t": "error",
            "client_id": client_id,
            "status": answer.status_code,
            "message": answer.text,
            "retry_after": answer.headers.get("retry-after"),
        }

    async def chat_frame(
        self, channel: str, text: str, client_id: str, *, private: bool = False
    ) -> dict[str, Any]:
        """Send a message as the page does while its WebSocket is open (a `chat.send`
        frame): the `ack` or `error` frame that answers it."""
        await self.send(
            {
                "type": "chat.send",
                "channel": channel,
                "text": text,
                "client_id": client_id,
                "private": private,
            }
        )
        return await self.wait_for(
            lambda m: m["t"] in ("ack", "error") and m.get("client_id") == client_id
        )

    async def close(self) -> None:
        await self.ws.close()


def chat_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["h"] for m in messages if m.get("t") == "chat.message"]
