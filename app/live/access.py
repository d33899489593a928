"""When what someone may see changes (moved to another room or group, made or no longer a
facilitator, a new role, signed out), their open live connections must know at once, not
when they next send something.

`access_changed` (called after the change commits) sends a recheck on each person's own
channel, through the broker, so it reaches their connections in every process. Each
connection then checks itself as it was opened (app/live/seats.py: SeatKeeper):
the session cookie it came with, then the person's seat in the session. If either is gone
it tells the page to load itself again and ends; otherwise it follows what the new seat
allows (`refollow`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.channels import Seat
from app.models import Group, GroupFacilitator, Membership
from realtime.publish import Live

logger = logging.getLogger(__name__)


async def access_changed(live: Live, *, user_ids: Iterable[int], reason: str) -> None:
    """Make every open live connection of these people check itself again now, in every
    process. Call it after the change is committed (a connection reads the database to
    check itself); `reason` is for the log."""
    people = sorted(set(user_ids))
    if not people:
        return
    logger.info(
        "access changed (%s) for %d people; their connections check again", reason, len(people)
    )
    for user_id in people:
        try:
            await live.recheck(channels.personal(user_id))
        except Exception:
            # Their connections still check themselves within SEAT_MAX_AGE_SECONDS.
            logger.exception("could not tell user %s's live connections to check again", user_id)


def refollow(before: Seat | None, after: Seat, cursors: Mapping[str, int]) -> dict[str, int | None]:
    """What a connection follows once its person's seat has changed: what it followed and
    may still follow; and where the room it followed was the person's room (or help desk)
    and that has changed, the new one instead, from now on (the page, told it moved,
    fetches the new room's panel and says hello with that panel's cursor)."""
    wanted: dict[str, int | None] = dict(cursors)
    if before is not None:
        for old, new in ((before.current, after.current), (before.help_desk, after.help_desk)):
            if old is not None and old != new and old in wanted:
                del wanted[old]
                if new is not None:
                    wanted.setdefault(new, None)
    allowed = after.followable()
    return {channel: cursor for channel, cursor in wanted.items() if channel in allowed}


# A member's role, group, and the groups they facilitate.
AccessRow = tuple[str, int | None, frozenset[int]]


async def programme_access(db: AsyncSession, *, programme_id: int) -> dict[int, AccessRow]:
    """What decides each member's access in the programme, to compare before and after a
    change made elsewhere that does not say whom it changed (a roster import)."""
    memberships = await db.execute(
        select(Membership.user_id, Membership.role, Membership.group_id).where(
            Membership.programme_id == programme_id
        )
    )
    links = await db.execute(
        select(GroupFacilitator.user_id, GroupFacilitator.group_id)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme_id)
    )
    facilitated: dict[int, set[int]] = {}
    for user_id, group_id in links.tuples():
        facilitated.setdefault(user_id, set()).add(group_id)
    rows = {
        user_id: (role, group_id, frozenset(facilitated.pop(user_id, ())))
        for user_id, role, group_id in memberships.tuples()
    }
    for user_id, groups in facilitated.items():  # facilitating without a membership
        rows[user_id] = ("", None, frozenset(groups))
    return rows


@asynccontextmanager
async def watching_access(
    db: AsyncSession, live: Live, *, programme_id: int, reason: str
) -> AsyncIterator[None]:
    """Around a change that commits: afterwards, the connections of everyone whose access
    in the programme it changed check themselves again. Nothing is sent if it raises."""
    before = await programme_access(db, programme_id=programme_id)
    yield
    after = await programme_access(db, programme_id=programme_id)
    changed = {uid for uid in before.keys() | after.keys() if before.get(uid) != after.get(uid)}
    await access_changed(live, user_ids=changed, reason=reason)
