"""Recording and publishing events: stored with the change that caused them, fanned out
only after that change commits (so nobody sees what then rolls back)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from jinja2 import Environment
from pydantic import BaseModel
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from realtime import log as event_log
from realtime.broker import Broker
from realtime.db import utcnow
from realtime.events import EventRegistry, render_fragment, wire
from realtime.hub import RECHECK

logger = logging.getLogger(__name__)

# Built once so that SQLAlchemy compiles it once.
INSERT_EVENTS = insert(cast(Table, event_log.LiveEvent.__table__))


@dataclass
class Live:
    """What domain actions use to send events; made once in the app's lifespan."""

    registry: EventRegistry
    broker: Broker
    env: Environment

    def outbox(self, db: AsyncSession) -> Outbox:
        return Outbox(live=self, db=db)

    async def publish_transient(
        self, channel: str, type_name: str, payload: BaseModel | dict[str, Any], **kw: Any
    ) -> None:
        """An event nobody needs later (presence): not stored, not resumed."""
        event_type = self.registry[type_name]
        if event_type.persist:
            raise ValueError(f"{type_name} is a stored event; send it through an outbox")
        model = event_type.schema.model_validate(payload)
        html = render_fragment(self.env, event_type, model)
        message = wire(channel=channel, seq=0, event_type=event_type, html=html, **kw)
        await self.broker.publish(channel, f"0|{message}")

    async def publish_committed(self, events: list[tuple[str, str]]) -> None:
        """Fan out stored events (channel, message) once their transaction has committed."""
        for channel, message in events:
            try:
                await self.broker.publish(channel, message)
            except Exception:
                # Stored events are not lost: connections notice the gap at the next event
                # or on reconnect, and fetch it from the log.
                logger.exception("could not publish an event on %s", channel)

    async def recheck(self, channel: str) -> None:
        """Ask every connection listening on `channel`, in every process, to check itself
        again now (what it may follow, whether it may go on); nothing reaches the client."""
        await self.broker.publish(channel, RECHECK)


@dataclass
class Outbox:
    live: Live
    db: AsyncSession
    pending: list[tuple[str, str]] = field(default_factory=list)

    async def add(
        self,
        channel: str,
        type_name: str,
        payload: BaseModel | dict[str, Any],
        *,
        actor_id: int | None = None,
        target: str = "",
        data: dict[str, Any] | None = None,
    ) -> int:
        """Store an event in the current transaction; returns its id in the channel."""
        event_type = self.live.registry[type_name]
        model = event_type.schema.model_validate(payload)
        html = render_fragment(self.live.env, event_type, model)
        seq = 0
        if event_type.persist:
            seq = await event_log.next_id(self.db, channel)
        message = wire(
            channel=channel, seq=seq, event_type=event_type, html=html, target=target, data=data
        )
        if event_type.persist:
            self.db.add(
                event_log.LiveEvent(
                    channel=channel, seq=seq, type=type_name, wire=message, actor_id=actor_id
                )
            )
        self.pending.append((channel, f"{seq}|{message}"))
        return seq

    async def add_many(
        self, channel: str, type_name: str, items: list[tuple[BaseModel, int | None, str]]
    ) -> list[int]:
        """Store several events of one type in one channel, as one reservation of ids and
        one insert; `items` are (payload, actor id, target). Returns their ids."""
        return (await self.add_in_channels(type_name, {channel: items}))[channel]

    async def add_in_channels(
        self, type_name: str, by_channel: dict[str, list[tuple[BaseModel, int | None, str]]]
    ) -> dict[str, list[int]]:
        """Store events of one type in several channels (`by_channel`: each channel's items,
        as for `add_many`), as one reservation of ids and one insert for all of them: a
        batch of chat messages to many rooms costs two statements, not two per room."""
        ids, pending = await self.db.run_sync(
            lambda session: store_in_channels(self.live, session, type_name, by_channel)
        )
        self.pending.extend(pending)
        return ids

    async def commit(self) -> None:
        """Commit the transaction, then fan the events out."""
        await self.db.commit()
        pending, self.pending = self.pending, []
        await self.live.publish_committed(pending)


def store_in_channels(
    live: Live,
    db: Session,
    type_name: str,
    by_channel: dict[str, list[tuple[BaseModel, int | None, str]]],
) -> tuple[dict[str, list[int]], list[tuple[str, str]]]:
    """`Outbox.add_in_channels` as synchronous code, for a transaction driven in one go
    (the chat writer's batch, app/live/chat_batch.py): returns the events' ids by channel
    and the events to fan out once the transaction commits (`Live.publish_committed`)."""
    event_type = live.registry[type_name]
    if not event_type.persist:
        raise ValueError(f"{type_name} is not a stored event")
    by_channel = {channel: items for channel, items in by_channel.items() if items}
    firsts = event_log.reserve_ids_many_sync(
        db, {channel: len(items) for channel, items in by_channel.items()}
    )
    rows = []
    pending: list[tuple[str, str]] = []
    ids: dict[str, list[int]] = {}
    now = utcnow()
    for channel, items in by_channel.items():
        first = firsts[channel]
        ids[channel] = list(range(first, first + len(items)))
        for seq, (payload, actor_id, target) in zip(ids[channel], items, strict=True):
            model = event_type.schema.model_validate(payload)
            html = render_fragment(live.env, event_type, model)
            message = wire(
                channel=channel, seq=seq, event_type=event_type, html=html, target=target
            )
            rows.append(
                {
                    "channel": channel,
                    "seq": seq,
                    "type": type_name,
                    "wire": message,
                    "actor_id": actor_id,
                    "created_at": now,
                }
            )
            pending.append((channel, f"{seq}|{message}"))
    if rows:
        db.connection().execute(INSERT_EVENTS, rows)
    return ids, pending
