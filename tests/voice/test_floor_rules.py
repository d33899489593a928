"""Who may be heard where: the rules table of app/voice/floor.py: may_speak.

Each row: a situation of the session, a person, whether they may speak in the room they
are in, and a word the reason they are given must contain."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.live import channels
from app.live.models import RoomAssignment
from app.voice.floor import may_speak
from app.voice.models import FloorGrant, OpenMic
from tests.factories import World, make_world
from tests.voice.helpers import open_breakout, seat_of

# Situations:
#   plenary          no breakouts; the plenary is as the session starts (not open mic)
#   open mic         the host has made the plenary open mic
#   floor            the host has given the person the floor in the plenary
#   another's floor  the host has given participant A the floor in the plenary
#   room             breakouts open: people in their groups' rooms (open mic by default)
#   limited room     the host has limited group A's room to the floor
#   limited + floor  ... and given the person the floor there
#   plenary floor    breakouts open, group A's room limited, the person's floor is in the plenary
RULES = [
    ("plenary", "host", True, "speak"),
    ("plenary", "admin", True, "speak"),
    ("plenary", "facilitator_a", True, "speak"),
    ("plenary", "facilitator_b", True, "speak"),
    ("plenary", "participant_a", False, "Raise your hand"),
    ("plenary", "participant_b", False, "Raise your hand"),
    ("plenary", "it_support", False, "Raise your hand"),
    ("plenary", "observer", False, "observing"),
    ("open mic", "participant_a", True, "Open mic"),
    ("open mic", "it_support", True, "Open mic"),
    ("open mic", "host", True, "speak"),
    ("open mic", "observer", False, "observing"),
    ("floor", "participant_a", True, "floor"),
    ("floor", "it_support", True, "floor"),
    ("another's floor", "participant_b", False, "Raise your hand"),
    ("floor", "observer", False, "observing"),  # even with a grant written in
    ("room", "participant_a", True, "Open mic"),
    ("room", "participant_b", True, "Open mic"),
    ("room", "facilitator_a", True, "speak"),
    ("room", "observer", False, "observing"),  # moved into group A's room
    ("room", "it_support", False, "Raise your hand"),  # in the plenary while rooms are open
    ("room", "host", True, "speak"),
    ("limited room", "participant_a", False, "limited"),
    ("limited room", "facilitator_a", True, "speak"),
    ("limited room", "participant_b", True, "Open mic"),  # group B's room is not limited
    ("limited + floor", "participant_a", True, "floor"),
    ("plenary floor", "participant_a", False, "limited"),
]


async def arrange(db: AsyncSession, w: World, situation: str, person_id: int) -> None:
    sid = w.session.id
    plenary = channels.plenary(sid)
    room_a = channels.room(sid, w.group_a.id)
    if situation == "another's floor":
        db.add(FloorGrant(session_id=sid, channel=plenary, user_id=w.participant_a.id))
    if situation == "open mic":
        db.add(OpenMic(session_id=sid, channel=plenary, open=True))
    if situation == "floor":
        db.add(FloorGrant(session_id=sid, channel=plenary, user_id=person_id))
    if situation in ("room", "limited room", "limited + floor", "plenary floor"):
        await open_breakout(db, w)
        db.add(RoomAssignment(session_id=sid, user_id=w.observer.id, group_id=w.group_a.id))
    if situation in ("limited room", "limited + floor", "plenary floor"):
        db.add(OpenMic(session_id=sid, channel=room_a, open=False))
    if situation == "limited + floor":
        db.add(FloorGrant(session_id=sid, channel=room_a, user_id=person_id))
    if situation == "plenary floor":
        db.add(FloorGrant(session_id=sid, channel=plenary, user_id=person_id))
    await db.commit()


@pytest.mark.parametrize(
    ("situation", "who", "heard", "reason"), RULES, ids=[f"{s}-{w}" for s, w, _h, _r in RULES]
)
async def test_who_may_speak(
    db: AsyncSession, situation: str, who: str, heard: bool, reason: str
) -> None:
    w = await make_world(db)
    person = getattr(w, who)
    await arrange(db, w, situation, person.id)
    allowed, message = await may_speak(db, await seat_of(db, w, person))
    assert (allowed, reason in message) == (heard, True), message


async def test_a_floor_taken_back_no_longer_counts(db: AsyncSession) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    grant = FloorGrant(session_id=w.session.id, channel=plenary, user_id=w.participant_a.id)
    db.add(grant)
    await db.commit()
    seat = await seat_of(db, w, w.participant_a)
    assert (await may_speak(db, seat))[0] is True
    grant.taken_at = utcnow()
    await db.commit()
    assert (await may_speak(db, seat))[0] is False
