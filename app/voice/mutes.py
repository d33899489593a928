"""Muting someone's voice: once, like pressing their mute button for them. Their
microphone pauses (it follows their own channel, where `voice.muted` arrives) and they
unmute themselves when they want to speak again; nobody can unmute someone else.

Facilitators mute people in the rooms they facilitate, hosts anyone; only a host mutes a
host. "Mute all" mutes everyone in a room except the one muting and those they may not
mute (in the plenary, the other hosts too). Each is audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.live import channels
from app.live.channels import Seat, member_seat
from app.live.console import with_roles
from app.live.events import VoiceMutedPayload
from app.live.moderation import check_room, require_moderator
from app.models import Role
from app.refusals import Conflict, NotAllowed, Refused
from app.voice.actions import room_label
from realtime.publish import Live, Outbox

UNMUTE_OTHERS = (
    "Nobody can turn someone else's microphone back on: they unmute themselves when they "
    "want to speak."
)


def mute_message(by: str) -> str:
    return f"{by} muted your microphone. Unmute it yourself when you want to speak again."


async def _tell(outbox: Outbox, *, seat: Seat, user_id: int) -> None:
    by = seat.ctx.user.display_name
    message = mute_message(by)
    await outbox.add(
        channels.personal(user_id),
        "voice.muted",
        VoiceMutedPayload(by=by, message=message),
        actor_id=seat.user_id,
        data={"by": by, "message": message},
    )


async def mute_voice(db: AsyncSession, live: Live, *, seat: Seat, user_id: int) -> str:
    """Mute one person's microphone, once. Returns a line for the one who muted."""
    require_moderator(seat)
    if user_id == seat.user_id:
        raise Conflict("To mute yourself, use your own microphone's Mute button.")
    person, where = await member_seat(db, seat=seat, user_id=user_id)
    if not seat.may_moderate(where.current):
        raise NotAllowed("You can only mute people in the rooms you facilitate.")
    if where.is_host and not seat.is_host:
        raise NotAllowed("Only a host can mute a host.")
    audit.record(
        db,
        actor=seat.ctx.user,
        action="voice.mute",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        channel=where.current,
    )
    outbox = live.outbox(db)
    await _tell(outbox, seat=seat, user_id=user_id)
    await outbox.commit()
    return f"{person.display_name} is muted. They can unmute themselves when they want to speak."


def refuse_unmute() -> None:
    raise NotAllowed(UNMUTE_OTHERS)


async def mute_all(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    channel: str,
    who_is_here: Callable[[str], Awaitable[set[int]]],
) -> str:
    """Mute everyone in a room (`who_is_here`: those present or speaking there), but the
    one muting and those they may not mute. Returns a line for the one who muted."""
    require_moderator(seat)
    if not channel:
        raise Refused("Choose the room to mute.")
    await check_room(db, seat=seat, channel=channel)
    plenary = channel == channels.plenary(seat.session.id)
    if not seat.may_moderate(channel):
        raise NotAllowed(
            "Only a host can mute everyone in the plenary."
            if plenary
            else "Only this room's facilitators and the hosts can mute everyone in it."
        )
    ids = await who_is_here(channel) - {seat.user_id}
    members = await with_roles(db, programme_id=seat.ctx.programme.id, ids=ids)
    muted = []
    for user, role, _group in members:
        # Members only (an administrator who is not one acts as a host, and is spared).
        is_host = role is None or role == Role.HOST.value
        if is_host and (plenary or not seat.is_host):
            continue
        muted.append(user)
    label = await room_label(db, channel=channel)
    audit.record(
        db,
        actor=seat.ctx.user,
        action="voice.mute_all",
        programme_id=seat.ctx.programme.id,
        target=channel,
        session_id=seat.session.id,
        muted=sorted(user.id for user in muted),
    )
    outbox = live.outbox(db)
    for user in sorted(muted, key=lambda u: u.id):
        await _tell(outbox, seat=seat, user_id=user.id)
    await outbox.commit()
    if not muted:
        return f"There was nobody else in {label} to mute."
    count = len(muted)
    return (
        f"Muted {count} {'person' if count == 1 else 'people'} in {label}. "
        "Each can unmute themselves."
    )
