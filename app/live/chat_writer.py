"""Writing chat messages in batches ("group commit"): the one write path for every
message, to a room or privately to the room's facilitators.

Every message that arrives while the previous batch is being written goes into the next
one: one transaction, one insert of messages, one reservation of event ids per channel
and one commit for all of them. A busy session therefore costs a few statements per
batch instead of several per message, and a quiet one still writes each message at once.
The rules of the room (mutes, locks, rate limit, slow mode) are still checked for each
message, and a message is acknowledged only after its batch commits.

Back-pressure: the writer has a database connection of its own (app/db.py), so it never
waits behind the requests that wait for it. At most `queue_limit` messages wait; past that
a message is refused at once with 503 and Retry-After. A sender waits at most
`wait_seconds` for the commit; past that they are told it is still on its way (503), and
the page's retry, with the same client id, gets the message once it is stored. A batch the
database is too busy for is tried again a few times before its senders are told so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import audit
from app.db import RETRY_AFTER_SECONDS, is_overloaded, utcnow
from app.live import channels
from app.live.channels import Seat
from app.live.chat import busy, check_may_send_private, message_payload
from app.live.chat_rules import apply_rules, batch_facts
from app.live.models import ChatMessage
from app.live.seats import HeldSeats
from app.models import Group, User
from app.refusals import Busy, Refused
from realtime.publish import Live, Outbox

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# A batch the database is too busy for is tried again after these pauses (seconds).
BUSY_RETRY_PAUSES = (0.05, 0.2, 0.5)
STILL_SENDING = "Your message is taking a while to send; it has not been lost."


def not_sent() -> Refused:
    return Busy("Not sent.", retry_after=RETRY_AFTER_SECONDS)


# Core statements built once, so SQLAlchemy compiles them once (the ORM's bulk path would
# compile again for each batch).
_messages = cast(Table, ChatMessage.__table__)
# Rows come back as (id, author, client id), matched by that key rather than by order: asked
# to keep the parameters' order, SQLAlchemy inserts one row per statement on SQLite.
INSERT_MESSAGES = insert(_messages).returning(
    _messages.c.id, _messages.c.author_id, _messages.c.client_id
)


# Stored messages' ids by (author id, client id).
MessageIds = dict[tuple[int, str], int]


@dataclass
class _Pending:
    seat: Seat
    channel: str
    body: str
    client_id: str
    # A private message: stored on its author's own channel, sent to the facilitators of
    # their room (`group`, `to`, found when its rules are checked) and to the author.
    private: bool = False
    group: Group | None = None
    to: list[User] = field(default_factory=list)
    # Stored by this send (not found stored before, nor the same send twice in a batch).
    new: bool = False
    future: asyncio.Future[tuple[int, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> tuple[int, str]:
        return (self.seat.user_id, self.client_id)

    def row(self, now: Any) -> dict[str, Any]:
        return {
            "session_id": self.seat.session.id,
            "channel": self.channel,
            "author_id": self.seat.user_id,
            "private_to_group_id": self.group.id if self.group is not None else None,
            "body": self.body,
            "client_id": self.client_id,
            "created_at": now,
        }


def _retrieve(future: asyncio.Future[tuple[int, bool]]) -> None:
    """A sender who stopped waiting never reads the outcome; reading it here keeps asyncio
    from logging a refusal nobody retrieved."""
    if not future.cancelled():
        future.exception()


class ChatWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        live: Live,
        *,
        queue_limit: int = 2000,
        wait_seconds: float = 10.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._live = live
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.queue_limit = queue_limit
        self.wait_seconds = wait_seconds
        # The seats this process's open live connections keep, for their people's posts.
        self.seats = HeldSeats()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(
                    Busy("The server is restarting.", retry_after=RETRY_AFTER_SECONDS)
                )

    async def send(
        self, *, seat: Seat, channel: str, body: str, client_id: str, private: bool = False
    ) -> tuple[int, bool]:
        """Queue a checked, cleaned message; returns its id and whether it is new once it
        is committed and published. A private message's `channel` is its author's own."""
        if self._task is None or self._task.done():
            raise Busy("Chat is not available right now.", retry_after=RETRY_AFTER_SECONDS)
        if self._queue.qsize() >= self.queue_limit:
            raise busy()
        pending = _Pending(
            seat=seat, channel=channel, body=body, client_id=client_id, private=private
        )
        pending.future.add_done_callback(_retrieve)
        self._queue.put_nowait(pending)
        try:
            # Shielded: a sender who stops waiting (or leaves) does not take the message
            # out of its batch; a retry with the same client id finds it stored.
            return await asyncio.wait_for(asyncio.shield(pending.future), self.wait_seconds)
        except TimeoutError:
            raise busy(STILL_SENDING) from None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            batch = [p for p in batch if not p.future.done()]  # refused while it waited
            if not batch:
                continue
            try:
                await self._write_when_possible(batch)
            except Exception:
                logger.exception("writing a batch of %d chat messages failed", len(batch))
                if len(batch) > 1:
                    # Write them one by one, so one bad message fails only itself.
                    for pending in batch:
                        await self._write_alone(pending)
                else:
                    self._fail(batch[0], not_sent())

    async def _write_when_possible(self, batch: list[_Pending]) -> None:
        """Write the batch, trying again while the database is only too busy; then its
        senders are told to try again themselves."""
        for pause in (*BUSY_RETRY_PAUSES, None):
            try:
                await self._write(batch)
                return
            except Exception as exc:
                if not is_overloaded(exc):
                    raise
                if pause is None:
                    logger.warning(
                        "the database stayed too busy for %d chat messages: %s",
                        len(batch),
                        type(exc).__name__,
                    )
                    for pending in batch:
                        self._fail(pending, busy())
                    return
                await asyncio.sleep(pause)

    async def _write_alone(self, pending: _Pending) -> None:
        try:
            await self._write_when_possible([pending])
        except Exception:
            logger.exception("writing a chat message failed")
            self._fail(pending, not_sent())

    @staticmethod
    def _fail(pending: _Pending, exc: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        refused: dict[int, Refused] = {}
        for pending in batch:
            pending.new = False  # from an attempt that did not commit
        async with self._sessionmaker() as db:
            # Retried sends (the acknowledgement was lost) get the message stored before.
            ids, accepted = await _admit(db, batch, refused)
            if accepted:
                ids.update(await self._store(db, accepted))
        for index, pending in enumerate(batch):
            if pending.future.done():
                continue
            if index in refused:
                pending.future.set_exception(refused[index])
            else:
                pending.future.set_result((ids[pending.key], pending.new))

    async def _store(self, db: AsyncSession, accepted: list[_Pending]) -> MessageIds:
        """Insert the accepted messages and their events, and commit: one statement each."""
        now = utcnow()
        inserted = await db.execute(INSERT_MESSAGES, [p.row(now) for p in accepted])
        ids: MessageIds = {
            (author or 0, client): message_id for message_id, author, client in inserted.tuples()
        }
        for pending in accepted:
            pending.new = True
        outbox = self._live.outbox(db)
        await _publish(outbox, accepted, ids, now)
        try:
            await outbox.commit()
        except IntegrityError:
            # Another process stored one of these client ids at the same moment.
            await db.rollback()
            raise
        return ids


async def _admit(
    db: AsyncSession, batch: list[_Pending], refused: dict[int, Refused]
) -> tuple[MessageIds, list[_Pending]]:
    """The ids of the batch's messages stored before (retried sends), and the messages to
    store: each checked against the room's rules (counting what its author sends earlier
    in the batch), once; refusals go into `refused` by index. Which are stored, and the
    rules of every room message, are read in one statement (app/live/chat_rules.py)."""
    now = utcnow()
    room_sends = [(p.seat, p.channel) for p in batch if not p.private]
    stored, room_rules = await batch_facts(db, {p.key for p in batch}, room_sends, now=now)
    rules_of = dict(zip((i for i, p in enumerate(batch) if not p.private), room_rules, strict=True))
    first_of: dict[tuple[int, str], int] = {}
    fresh: list[tuple[int, _Pending]] = []
    repeats: list[tuple[int, int]] = []
    for index, pending in enumerate(batch):
        if pending.key in stored:
            continue  # stored before: answered with its id
        if pending.key in first_of:
            # The same send twice in one batch: the first's outcome.
            repeats.append((index, first_of[pending.key]))
            continue
        first_of[pending.key] = index
        fresh.append((index, pending))
    sent_in_batch: Counter[int] = Counter()
    accepted: list[_Pending] = []
    for index, pending in fresh:
        also_sent = sent_in_batch[pending.seat.user_id]
        try:
            if pending.private:
                pending.group, pending.to = await check_may_send_private(
                    db, seat=pending.seat, also_sent=also_sent
                )
            else:
                apply_rules(
                    pending.seat, pending.channel, rules_of[index], also_sent=also_sent, now=now
                )
        except Refused as exc:
            refused[index] = exc
            continue
        sent_in_batch[pending.seat.user_id] += 1
        accepted.append(pending)
    for index, first in repeats:
        if first in refused:
            refused[index] = refused[first]
    return stored, accepted


async def _publish(outbox: Outbox, accepted: list[_Pending], ids: MessageIds, now: Any) -> None:
    """A room message to its room; a private one to its author and the facilitators they
    wrote to (with an audit record, as it is not in any room's log)."""
    by_channel: dict[str, list[tuple[Any, int | None, str]]] = defaultdict(list)
    for pending in accepted:
        seat, message_id = pending.seat, ids[pending.key]
        message = ChatMessage(id=message_id, body=pending.body, created_at=now)
        if not pending.private:
            payload = message_payload(seat, message, seat.ctx.user)
            by_channel[pending.channel].append((payload, seat.user_id, f"m{message_id}"))
            continue
        assert pending.group is not None  # found by check_may_send_private
        payload = message_payload(
            seat, message, seat.ctx.user, private=True, to=f"{pending.group.name} facilitator"
        )
        for recipient in {seat.user_id, *(f.id for f in pending.to)}:
            by_channel[channels.personal(recipient)].append((payload, seat.user_id, ""))
        audit.record(
            outbox.db,
            actor=seat.ctx.user,
            action="chat.private",
            programme_id=seat.ctx.programme.id,
            target=f"message:{message_id}",
            to=", ".join(f.display_name for f in pending.to),
        )
    await outbox.add_in_channels("chat.message", by_channel)
