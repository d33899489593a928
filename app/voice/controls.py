"""What the voice controls draw themselves from (templates/voice/): for a host, the
plenary's floor (raised hands, who has the floor, who speaks, open mic, each breakout
room's open mic); for a group's console, who is in the group's room to mute.

`from` names the page the controls are on ("live", "host", "console-{group}"), so that a
form sent without JavaScript goes back there, and one sent by htmx gets the controls
redrawn as that page shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.channels import Seat
from app.live.console import role_label, with_roles
from app.live.models import HelpRequest
from app.live.presence import Presence
from app.live.rooms import programme_groups
from app.live.speaking import Speaking
from app.live.web import base_url
from app.models import Group, Role, User
from app.numbers import is_digits
from app.voice.floor import active_grants, is_open_mic

FROM_PATTERN = re.compile(r"^(live|host|console-(\d{1,10}))$")

# What a page says after a form sent without JavaScript (?voice=...).
NOTICES = {
    "given": "Done: they have the floor.",
    "taken": "Done: the floor is taken back.",
    "open": "Done: open mic is on.",
    "closed": "Done: open mic is off.",
    "muted": "Done: they are muted, and can unmute themselves.",
    "muted-all": "Done: everyone else here is muted; each can unmute themselves.",
}


@dataclass
class VoicePerson:
    user_id: int
    name: str  # with pronouns
    role: str  # "" for participants
    may_mute: bool = True


def back_url(seat: Seat, origin: str | None) -> str:
    """The page a form came from (the live page if unknown)."""
    base = base_url(seat)
    match = FROM_PATTERN.match(origin or "")
    if match is None or match.group(1) == "live":
        return base
    if match.group(1) == "host":
        return base + "/host"
    return f"{base}/console/{match.group(2)}"


def present_ids(members: dict[str, str]) -> set[int]:
    return {int(member) for member in members if is_digits(member)}


async def here_in(channel: str, *, presence: Presence, speaking: Speaking) -> set[int]:
    """Everyone in a room now: present there, or speaking there."""
    here = present_ids(await presence.broker.presence_list(channel))
    return here | present_ids(await speaking.members(channel))


async def raised_plenary_hands(db: AsyncSession, *, session_id: int) -> list[User]:
    """People with a hand up in the plenary, oldest first."""
    rows = await db.scalars(
        select(User)
        .join(HelpRequest, HelpRequest.requester_id == User.id)
        .where(
            HelpRequest.session_id == session_id,
            HelpRequest.kind == "hand",
            HelpRequest.status != "resolved",
            HelpRequest.group_id.is_(None),
        )
        .order_by(HelpRequest.created_at, HelpRequest.id)
    )
    return list(rows.unique().all())


async def host_controls(
    db: AsyncSession, *, seat: Seat, presence: Presence, speaking: Speaking, origin: str
) -> dict[str, Any]:
    """A host's floor controls for the plenary, and open mic for each open breakout room."""
    sid = seat.session.id
    plenary = channels.plenary(sid)
    grants = await active_grants(db, session_id=sid, channel=plenary)
    holders = [(grant.user_id, grant.user.name_with_pronouns) for grant in grants]
    holding = {user_id for user_id, _name in holders}
    hands = [
        (user.id, user.name_with_pronouns)
        for user in await raised_plenary_hands(db, session_id=sid)
        if user.id not in holding
    ]
    speakers = await speaking.members(plenary)
    talking = [
        (int(member), name)
        for member, name in sorted(speakers.items(), key=lambda kv: kv[1].casefold())
        if is_digits(member) and int(member) != seat.user_id and int(member) not in holding
    ]
    rooms: list[tuple[Group, str, bool]] = []
    if seat.breakout is not None:
        for group in await programme_groups(db, seat.ctx.programme.id):
            channel = channels.room(sid, group.id)
            rooms.append((group, channel, await is_open_mic(db, session_id=sid, channel=channel)))
    return {
        "voice_notices": NOTICES,
        "voice_from": origin,
        "voice_base": base_url(seat),
        "plenary_channel": plenary,
        "plenary_open_mic": await is_open_mic(db, session_id=sid, channel=plenary),
        "floor_hands": hands,
        "floor_holders": holders,
        "floor_talking": talking,
        "voice_rooms": rooms,
    }


async def room_controls(
    db: AsyncSession,
    *,
    seat: Seat,
    group: Group,
    presence: Presence,
    speaking: Speaking,
) -> dict[str, Any]:
    """A group's console: everyone in the group's breakout room, each with "Mute" when the
    one looking may mute them."""
    channel = channels.room(seat.session.id, group.id)
    in_room = seat.breakout is not None
    people: list[VoicePerson] = []
    if in_room:
        ids = await here_in(channel, presence=presence, speaking=speaking)
        ids.discard(seat.user_id)
        rows = await with_roles(db, programme_id=seat.ctx.programme.id, ids=ids)
        for user, role, _home in rows:
            is_host = role is None or role == Role.HOST.value
            people.append(
                VoicePerson(
                    user_id=user.id,
                    name=user.name_with_pronouns,
                    role=role_label(role, facilitator=False),
                    may_mute=seat.is_host or not is_host,
                )
            )
        people.sort(key=lambda p: (p.name.casefold(), p.user_id))
    return {
        "voice_notices": NOTICES,
        "voice_from": f"console-{group.id}",
        "voice_base": base_url(seat),
        "voice_group": group,
        "voice_channel": channel,
        "voice_in_room": in_room,
        "voice_people": people,
        "voice_open_mic": await is_open_mic(db, session_id=seat.session.id, channel=channel),
    }


async def live_page_controls(
    db: AsyncSession, *, seat: Seat, presence: Presence, speaking: Speaking
) -> dict[str, Any]:
    """The live page shows the floor controls to a host in the plenary (`voice_host`)."""
    if not (seat.is_host and seat.current == channels.plenary(seat.session.id)):
        return {}
    context = await host_controls(
        db, seat=seat, presence=presence, speaking=speaking, origin="live"
    )
    return {**context, "voice_host": True}
