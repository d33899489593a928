"""Who may open a console, and what the consoles show: a facilitator's view of their
group's room (who is here, with the access needs they share with their facilitator; who is
speaking; hands and help requests) and the host's view across rooms (how many people are
in each, who speaks where, open hands and requests).

Who is here comes from presence and who is speaking from the speaking marks, both kept in
the broker, so every process gives the same answer. Access needs are shown as the group
page shows them (templates/groups/detail.html): to the facilitators of the person's own
group and to the programme's hosts, and only what the person chose in their profile."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.channels import Seat
from app.live.controls import Person, occupancy, people
from app.live.events import HelpPayload, PresencePayload, SpeakingPayload
from app.live.help_queries import open_help
from app.live.models import HelpRequest
from app.live.presence import Presence
from app.live.rooms import programme_groups
from app.live.speaking import Speaking
from app.models import Group, GroupFacilitator, Membership, Role, User
from app.numbers import is_digits
from app.programmes.roster_views import AccessNeeds
from app.refusals import NotAllowed, NotFound


def meeting_channel(seat: Seat, group: Group) -> str:
    """Where the group is now: its room while breakouts are open, else the plenary."""
    if seat.breakout is None:
        return channels.plenary(seat.session.id)
    return channels.room(seat.session.id, group.id)


async def open_console(db: AsyncSession, *, seat: Seat, group_id: int) -> Group:
    """The group whose console the person opens: its facilitators and the programme's
    hosts may."""
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != seat.ctx.programme.id:
        raise NotFound("We could not find that group.")
    if not (seat.is_host or group.id in seat.facilitated):
        raise NotAllowed(
            "Only this group's facilitators and the programme's hosts can open its console."
        )
    return group


async def console_groups(db: AsyncSession, *, seat: Seat) -> list[Group]:
    """The groups whose consoles the person may open: every one for a host."""
    groups = await programme_groups(db, seat.ctx.programme.id)
    mine = [g for g in groups if seat.is_host or g.id in seat.facilitated]
    if not mine:
        raise NotAllowed("The console is for the groups' facilitators and the programme's hosts.")
    return mine


def require_host_console(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed("Only the programme's hosts can open the host console.")


@dataclass
class PresentPerson:
    user_id: int
    name: str  # with pronouns
    name_pronunciation: str
    role: str  # "" for participants
    # None when this person's needs are not shared with the one looking.
    access: AccessNeeds | None
    speaking: bool
    hand_raised: bool


@dataclass
class RoomPeople:
    channel: str
    in_room: bool  # False: the group is in the plenary (no breakout open)
    present: list[PresentPerson]
    # The group's members (or those moved into its room) who are not here.
    missing: list[Person]
    presence: PresencePayload
    speaking: SpeakingPayload


async def room_people(
    db: AsyncSession, *, seat: Seat, group: Group, presence: Presence, speaking: Speaking
) -> RoomPeople:
    channel = meeting_channel(seat, group)
    in_room = channel != channels.plenary(seat.session.id)
    here = await presence.broker.presence_list(channel)
    speakers = await speaking.members(channel)
    expected = await people(db, seat=seat, channel=channels.room(seat.session.id, group.id))
    facilitators = await facilitator_ids(db, group_id=group.id)
    ids = {int(member) for member in here if is_digits(member)}
    if not in_room:
        # Everyone is in the plenary: the group's people are its members and facilitators.
        ids &= {p.id for p in expected} | facilitators | {seat.user_id}
    hands = await raised_hands(db, session_id=seat.session.id)
    present = []
    for user, role, home in await with_roles(db, programme_id=seat.ctx.programme.id, ids=ids):
        shared = seat.is_host or (home is not None and home in seat.facilitated)
        access = AccessNeeds.of(user)
        present.append(
            PresentPerson(
                user_id=user.id,
                name=user.name_with_pronouns,
                name_pronunciation=user.name_pronunciation,
                role=role_label(role, facilitator=user.id in facilitators),
                access=access if shared and access.any else None,
                speaking=str(user.id) in speakers,
                hand_raised=user.id in hands,
            )
        )
    present.sort(key=lambda p: (p.role != "Facilitator", p.name.casefold(), p.user_id))
    return RoomPeople(
        channel=channel,
        in_room=in_room,
        present=present,
        missing=[p for p in expected if p.id not in ids],
        presence=await presence.payload(channel),
        speaking=SpeakingPayload(
            channel=channel, names=sorted(speakers.values(), key=str.casefold)
        ),
    )


async def facilitator_ids(db: AsyncSession, *, group_id: int) -> set[int]:
    rows = await db.scalars(
        select(GroupFacilitator.user_id).where(GroupFacilitator.group_id == group_id)
    )
    return set(rows.all())


async def raised_hands(db: AsyncSession, *, session_id: int) -> set[int]:
    """Who has a hand up in the session."""
    rows = await db.scalars(
        select(HelpRequest.requester_id).where(
            HelpRequest.session_id == session_id,
            HelpRequest.kind == "hand",
            HelpRequest.status != "resolved",
        )
    )
    return set(rows.all())


async def with_roles(
    db: AsyncSession, *, programme_id: int, ids: set[int]
) -> list[tuple[User, str | None, int | None]]:
    """These people, each with their role and group in the programme (None for an
    administrator who is not a member)."""
    rows = await db.execute(
        select(User, Membership.role, Membership.group_id)
        .outerjoin(
            Membership,
            (Membership.user_id == User.id) & (Membership.programme_id == programme_id),
        )
        .where(User.id.in_(ids or {0}))
    )
    return list(rows.tuples().all())


def role_label(role: str | None, *, facilitator: bool) -> str:
    """The role shown beside a name ("" for participants)."""
    if facilitator:
        return "Facilitator"
    if role is None:
        return Role.HOST.label  # an administrator, who acts as a host
    return "" if role == Role.PARTICIPANT.value else Role(role).label


@dataclass
class RoomRequests:
    hands: list[HelpPayload] = field(default_factory=list)
    help: list[HelpPayload] = field(default_factory=list)


async def room_requests(db: AsyncSession, *, seat: Seat, group: Group) -> RoomRequests:
    """The group's open hands and help requests, oldest first."""
    requests = RoomRequests()
    for item in await open_help(db, seat=seat, group_id=group.id):
        (requests.hands if item.kind == "hand" else requests.help).append(item)
    return requests


@dataclass
class RoomRow:
    name: str
    channel: str
    group_id: int | None
    presence: PresencePayload
    speaking: list[str]
    hands: int = 0
    help: int = 0


async def rooms_overview(
    db: AsyncSession, *, seat: Seat, presence: Presence, speaking: Speaking, groups: list[Group]
) -> list[RoomRow]:
    """Every room (the plenary, and each group's room while breakouts are open): who is
    there, who is speaking, and how many hands and requests are open. Requests from a room
    that is not open now are counted in the plenary, where those people are."""
    rows = []
    for name, here in await occupancy(seat=seat, presence=presence, groups=groups):
        names = sorted((await speaking.members(here.channel)).values(), key=str.casefold)
        group_id = channels.room_group_id(here.channel)
        rows.append(RoomRow(name, here.channel, group_id, here, names))
    by_group = {row.group_id: row for row in rows}
    counts = await db.execute(
        select(HelpRequest.group_id, HelpRequest.kind, func.count())
        .where(HelpRequest.session_id == seat.session.id, HelpRequest.status != "resolved")
        .group_by(HelpRequest.group_id, HelpRequest.kind)
    )
    tally: Counter[tuple[int | None, str]] = Counter()
    for group_id, kind, count in counts.tuples():
        tally[(group_id if group_id in by_group else None, kind)] += count
    for (group_id, kind), count in tally.items():
        row = by_group[group_id]
        if kind == "hand":
            row.hands += count
        else:
            row.help += count
    return rows
