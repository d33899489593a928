"""Writing room messages in batches ("group commit").

Every message that arrives while the previous batch is being written goes into the next
one: one transaction, one insert of messages, one reservation of event ids per channel
and one commit for all of them. A busy session therefore costs a few statements per
batch instead of several per message, and a quiet one still writes each message at once.
The rules of the room (mutes, locks, rate limit, slow mode) are still checked for each
message, and a message is acknowledged only after its batch commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.live.channels import Seat
from app.live.chat import ChatRefused, check_may_send, message_payload
from app.live.models import ChatMessage
from realtime.publish import Live

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# Core statements built once, so SQLAlchemy compiles them once (the ORM's bulk path would
# compile again for each batch).
_messages = cast(Table, ChatMessage.__table__)
INSERT_MESSAGES = insert(_messages).returning(_messages.c.id, sort_by_parameter_order=True)


@dataclass
class _Pending:
    seat: Seat
    channel: str
    body: str
    client_id: str
    future: asyncio.Future[tuple[int, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> tuple[int, str]:
        return (self.seat.user_id, self.client_id)


class ChatWriter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], live: Live) -> None:
        self._sessionmaker = sessionmaker
        self._live = live
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

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
                    ChatRefused("The server is restarting; please send again.", status=503)
                )

    async def send(
        self, *, seat: Seat, channel: str, body: str, client_id: str
    ) -> tuple[int, bool]:
        """Queue a checked, cleaned message; returns its id and whether it is new once it
        is committed and published."""
        if self._task is None or self._task.done():
            raise ChatRefused("Chat is not available right now; please try again.", status=503)
        pending = _Pending(seat=seat, channel=channel, body=body, client_id=client_id)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            batch = [p for p in batch if not p.future.done()]  # the sender gave up
            if not batch:
                continue
            try:
                await self._write(batch)
            except Exception:
                logger.exception("writing a batch of %d chat messages failed", len(batch))
                if len(batch) > 1:
                    # Write them one by one, so one bad message fails only itself.
                    for pending in batch:
                        await self._write_alone(pending)
                else:
                    self._fail(batch[0], ChatRefused("Not sent; please try again.", status=503))

    async def _write_alone(self, pending: _Pending) -> None:
        try:
            await self._write([pending])
        except Exception:
            logger.exception("writing a chat message failed")
            self._fail(pending, ChatRefused("Not sent; please try again.", status=503))

    @staticmethod
    def _fail(pending: _Pending, exc: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        results: dict[int, tuple[int, bool] | Exception] = {}
        async with self._sessionmaker() as db:
            # Retried sends (the acknowledgement was lost) get the message stored before.
            known = dict(
                (
                    (author, client),
                    message_id,
                )
                for author, client, message_id in (
                    await db.execute(
                        select(ChatMessage.author_id, ChatMessage.client_id, ChatMessage.id).where(
                            tuple_(ChatMessage.author_id, ChatMessage.client_id).in_(
                                {p.key for p in batch}
                            )
                        )
                    )
                ).tuples()
            )
            accepted: list[_Pending] = []
            first_of: dict[tuple[int, str], _Pending] = {}
            sent_in_batch: Counter[int] = Counter()
            for index, pending in enumerate(batch):
                if pending.key in known:
                    results[index] = (known[pending.key], False)
                    continue
                if pending.key in first_of:
                    continue  # the same send twice in one batch: answered with the first
                try:
                    await check_may_send(
                        db,
                        seat=pending.seat,
                        channel=pending.channel,
                        also_sent=sent_in_batch[pending.seat.user_id],
                    )
                except ChatRefused as exc:
                    results[index] = exc
                    continue
                sent_in_batch[pending.seat.user_id] += 1
                first_of[pending.key] = pending
                accepted.append(pending)
            ids: dict[tuple[int, str], int] = {}
            if accepted:
                now = utcnow()
                rows = [
                    {
                        "session_id": p.seat.session.id,
                        "channel": p.channel,
                        "author_id": p.seat.user_id,
                        "body": p.body,
                        "client_id": p.client_id,
                        "created_at": now,
                    }
                    for p in accepted
                ]
                inserted = await db.execute(INSERT_MESSAGES, rows)
                message_ids = [row[0] for row in inserted]
                outbox = self._live.outbox(db)
                by_channel: dict[str, list[tuple[_Pending, int]]] = defaultdict(list)
                for pending, message_id in zip(accepted, message_ids, strict=True):
                    ids[pending.key] = message_id
                    by_channel[pending.channel].append((pending, message_id))
                for channel, items in by_channel.items():
                    await outbox.add_many(
                        channel,
                        "chat.message",
                        [
                            (
                                message_payload(
                                    p.seat,
                                    ChatMessage(id=message_id, body=p.body, created_at=now),
                                    p.seat.ctx.user,
                                ),
                                p.seat.user_id,
                                f"m{message_id}",
                            )
                            for p, message_id in items
                        ],
                    )
                try:
                    await outbox.commit()
                except IntegrityError:
                    # Another process stored one of these client ids at the same moment.
                    await db.rollback()
                    raise
        for index, pending in enumerate(batch):
            outcome = results.get(index)
            if outcome is None:
                outcome = (ids[pending.key], pending is first_of.get(pending.key))
            if pending.future.done():
                continue
            if isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
