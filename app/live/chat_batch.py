"""One batch of the chat writer's (app/live/chat_writer.py), written as synchronous code
in one go: which of its messages are stored already, the rules for each, the insert of
the accepted ones and of their events, and the commit.

Synchronous, so that the whole batch is written in one go wherever the database is
driven: on SQLite the writer runs it on the event loop itself on a plain `sqlite3`
connection (app/db.py: LoopRunner), instead of the three or four hops to aiosqlite's
thread and back that each statement costs on the async engine (a thread wake-up and a GIL
hand-over each, about 15 per batch); on PostgreSQL it runs through
`AsyncSession.run_sync` on asyncpg, as before. The function
touches no asyncio object: the writer settles the senders' futures, and fans the events
out, on the event loop once it returns."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat
from app.live.chat import message_payload
from app.live.chat_rules import (
    ROOM_RULES,
    apply_rules,
    batch_facts,
    room_rules_params,
    rules_of,
)
from app.live.models import ChatMessage
from app.models import Group, GroupFacilitator, User
from app.refusals import NotAllowed, Refused
from realtime.publish import Live, store_in_channels

if TYPE_CHECKING:
    from app.live.chat_writer import _Pending

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
class Written:
    """What a batch came to: each message's id (stored now or before), the refusals by
    index in the batch, and the committed events to fan out (channel, message)."""

    ids: MessageIds = field(default_factory=dict)
    refused: dict[int, Refused] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)


def write_batch(db: Session, live: Live, batch: list[_Pending]) -> Written:
    """Check, insert and commit the batch (four statements however many messages and
    rooms it holds, plus two per private message); nothing is committed if it raises."""
    written = Written()
    for pending in batch:
        pending.new = False  # from an attempt that did not commit
    written.ids, accepted = _admit(db, batch, written.refused)
    if not accepted:
        return written
    now = utcnow()
    # Core statements on the session's connection: the ORM's execute adds nothing here.
    inserted = db.connection().execute(INSERT_MESSAGES, [p.row(now) for p in accepted])
    ids: MessageIds = {
        (author or 0, client): message_id for message_id, author, client in inserted.tuples()
    }
    written.events = _store_events(db, live, accepted, ids, now)
    try:
        db.commit()
    except IntegrityError:
        # Another process stored one of these client ids at the same moment.
        db.rollback()
        raise
    for pending in accepted:
        pending.new = True
    written.ids.update(ids)
    return written


def _admit(
    db: Session, batch: list[_Pending], refused: dict[int, Refused]
) -> tuple[MessageIds, list[_Pending]]:
    """The ids of the batch's messages stored before (retried sends), and the messages to
    store: each checked against the room's rules (counting what its author sends earlier
    in the batch), once; refusals go into `refused` by index. Which are stored, and the
    rules of every room message, are read in one statement (app/live/chat_rules.py)."""
    now = utcnow()
    room_sends = [(p.seat, p.channel) for p in batch if not p.private]
    stored, room_rules = batch_facts(db, {p.key for p in batch}, room_sends, now=now)
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
                pending.group, pending.to = _check_private(db, pending.seat, also_sent, now)
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


def _check_private(db: Session, seat: Seat, also_sent: int, now: Any) -> tuple[Group, list[User]]:
    """The rules for a private message to the facilitators of the person's room (those of
    the room they are in), and who receives it: the room's group and its facilitators."""
    group = seat.current_group
    if group is None:
        raise Refused(
            "Private messages go to your room's facilitator; you are not in a breakout room.",
            code="no_room",
        )
    channel = seat.current
    if not seat.may_post(channel):
        raise NotAllowed("You cannot send messages to that room.", code="not_allowed")
    rules = rules_of(db.execute(ROOM_RULES, room_rules_params(seat, channel, now)).one())
    apply_rules(seat, channel, rules, also_sent=also_sent, now=now)
    facilitators = list(
        db.scalars(
            select(User)
            .join(GroupFacilitator, GroupFacilitator.user_id == User.id)
            .where(GroupFacilitator.group_id == group.id)
        ).all()
    )
    if not facilitators:
        raise Refused("Your room has no facilitator to message yet.", code="no_facilitator")
    return group, facilitators


def _store_events(
    db: Session, live: Live, accepted: list[_Pending], ids: MessageIds, now: Any
) -> list[tuple[str, str]]:
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
        assert pending.group is not None  # found by _check_private
        payload = message_payload(
            seat, message, seat.ctx.user, private=True, to=f"{pending.group.name} facilitator"
        )
        for recipient in {seat.user_id, *(f.id for f in pending.to)}:
            by_channel[channels.personal(recipient)].append((payload, seat.user_id, ""))
        audit.record(
            db,
            actor=seat.ctx.user,
            action="chat.private",
            programme_id=seat.ctx.programme.id,
            target=f"message:{message_id}",
            to=", ".join(f.display_name for f in pending.to),
        )
    _, events = store_in_channels(live, db, "chat.message", by_channel)
    return events
