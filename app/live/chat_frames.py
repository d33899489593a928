"""Chat sent on the page's live WebSocket: the composer's message, checks and write path
(`send_message`, the chat writer), without an HTTP request for each message.

While its WebSocket is open the page sends `{"type": "chat.send", "text": …, "channel": …,
"client_id": …, "private": false}`; otherwise it posts the composer's form, which stays
the way in for every other transport and without JavaScript (docs/live.md). The answer
comes once the message is stored, after whatever the connection has queued by then:
`{"t": "ack", "client_id": …, "id": …}`, or `{"t": "error", "client_id": …, "code": …,
"message": …, "retry_after": …}` with the refusal a post would get (the same words). A
send repeated with the same client id (after a lost answer, on either path) is answered
with the message stored the first time.

The sender is the person the WebSocket was opened for, with the session cookie it was
opened with, checked (signature and age) for every message as a post's is; their seat is
the one the connection keeps while it can be trusted, else worked out from the database
(`seat_for_cookie`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.db import is_overloaded
from app.errors import NotSignedIn
from app.live.chat import send_message
from app.live.seats import SeatKeeper, seat_for_cookie
from app.refusals import Refused
from app.state import AppState
from realtime.events import control
from realtime.frames import FrameError
from realtime.live_connection import LiveConnection

logger = logging.getLogger(__name__)

CHAT_FRAME = "chat.send"
# Sends of one connection waiting for their answer at once; past it a send is refused
# (the pace rule, 5 in 5 seconds, is the writer's).
MAX_IN_FLIGHT = 5
MAX_TEXT = 10_000
MAX_FIELD = 100

SIGNED_OUT = "You have been signed out. Reload the page to sign in again."
FAILED = "Your message could not be sent. Try again in a moment."
TOO_MANY = "Several of your messages are still being sent; wait a moment."


def read_chat_frame(frame: dict[str, Any]) -> tuple[str, str, str, bool]:
    """The frame's text, channel ("" for the person's room), client id and private flag;
    FrameError when a field has the wrong type or size."""
    text, channel = frame.get("text", ""), frame.get("channel", "")
    client_id, private = frame.get("client_id", ""), frame.get("private", False)
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise FrameError("bad_chat", f"text must be a string of at most {MAX_TEXT} characters")
    for name, value in (("channel", channel), ("client_id", client_id)):
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise FrameError("bad_chat", f"{name} must be a string of at most {MAX_FIELD}")
    if not isinstance(private, bool):
        raise FrameError("bad_chat", "private must be true or false")
    return text, channel, client_id, private


class ChatFrames:
    """The action handler of one page's WebSocket (LiveConnection's `actions`)."""

    def __init__(
        self, state: AppState, keeper: SeatKeeper, programme_id: int, session_id: int
    ) -> None:
        self.state = state
        self.keeper = keeper
        self.where = (programme_id, session_id)
        self.live: LiveConnection | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, frame: dict[str, Any]) -> list[str]:
        if frame["type"] != CHAT_FRAME:
            raise FrameError("unknown_type", f"unknown frame type {str(frame['type'])[:40]!r}")
        text, channel, client_id, private = read_chat_frame(frame)
        if len(self._sending) >= MAX_IN_FLIGHT:
            return [refusal(client_id, Refused(TOO_MANY, code="busy", retry_after=2))]
        # The answer comes later (`reply`): the client goes on sending (pings) meanwhile.
        task = asyncio.create_task(self._send(text, channel, client_id, private))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return []

    async def _send(self, text: str, channel: str, client_id: str, private: bool) -> None:
        try:
            seat = await seat_for_cookie(self.state, self.keeper.cookie, *self.where)
            message_id, _new = await send_message(
                writer=self.state.chat_writer,
                seat=seat,
                channel=channel or seat.current,
                text=text,
                client_id=client_id,
                private=private,
            )
            answer = control("ack", client_id=client_id, id=message_id)
        except Refused as refused:
            answer = refusal(client_id, refused)
        except NotSignedIn:
            answer = refusal(client_id, Refused(SIGNED_OUT, code="signed_out"))
        except Exception as exc:  # noqa: BLE001 - the sender is told; a fault is logged
            if is_overloaded(exc):
                logger.warning("chat frame refused, the database is too busy: %s", exc)
                answer = refusal(client_id, Refused(FAILED, code="busy", retry_after=2))
            else:
                logger.exception("sending a chat frame failed")
                answer = refusal(client_id, Refused(FAILED, code="failed"))
        if self.live is not None:
            self.live.reply(answer)


def refusal(client_id: str, refused: Refused) -> str:
    return control(
        "error",
        client_id=client_id,
        code=refused.code,
        message=refused.message,
        retry_after=refused.retry_after,
    )
