"""Importing a roster into a programme: all or nothing, idempotent, every problem reported.

The file is read by `app.programmes.roster_csv`; `app.programmes.roster_checks` matches each
row to an existing account (by e-mail, ignoring case) and checks it against the programme
(roles, group capacity after the import); only when every row is good does this module
write anything.

An import changes this programme's memberships only. A row naming an account that already
belongs to someone who signs in with a password, an administrator, or a member of another
programme does not make them a member: it asks them to join (a membership with status
"invited"), and they accept, signed in as themselves. So a host can never gain power over
an account by naming it in a file.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.live.access import watching_access
from app.models import Group, GroupFacilitator, Membership, MembershipStatus, Programme, Role, User
from app.programmes.roster_checks import (
    RosterState,
    RowPlan,
    capacity_errors,
    host_errors,
    plan_rows,
)
from app.programmes.roster_csv import (
    MAX_ROSTER_BYTES,
    ParsedRoster,
    RosterRejected,
    RowError,
    name_from_email,
    parse_roster,
)
from realtime.publish import Live

__all__ = ["ImportSummary", "RosterRejected", "RowError", "import_roster", "MAX_ROSTER_BYTES"]


@dataclass
class ImportSummary:
    format: str
    rows: int
    created: int = 0  # people added to the programme
    updated: int = 0  # members whose role, group or facilitation changed
    unchanged: int = 0
    new_accounts: int = 0  # of `created`, people who had no account before
    # Of `created`, people with an account of their own elsewhere, asked to join: they become
    # members when they accept.
    requested: int = 0
    groups_created: list[str] = field(default_factory=list)


async def import_roster(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    data: bytes,
    max_rows: int,
    max_bytes: int = MAX_ROSTER_BYTES,
    live: Live | None = None,
) -> ImportSummary:
    """Import `data` (the uploaded file) into `programme` and commit, or raise RosterRejected
    listing every problem, having changed nothing. Every route passes `live`: afterwards the
    open live connections of everyone whose role, group or facilitation changed check
    themselves again. The rows do not say whose changed, so the programme is compared before
    and after; None is for the tests of the import itself, where nobody is connected."""
    watching: AbstractAsyncContextManager[None] = (
        watching_access(db, live, programme_id=programme.id, reason="roster")
        if live is not None
        else nullcontext()
    )
    async with watching:
        return await _import(
            db, programme=programme, actor=actor, data=data, max_rows=max_rows, max_bytes=max_bytes
        )


async def _import(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    data: bytes,
    max_rows: int,
    max_bytes: int,
) -> ImportSummary:
    parsed = parse_roster(data, max_rows=max_rows, max_bytes=max_bytes)
    state = await RosterState.load(db, programme=programme, rows=parsed.rows)
    plans, errors = plan_rows(parsed, state, actor=actor)
    errors += capacity_errors(plans, state, programme=programme)
    errors += host_errors(plans, state)
    if parsed.errors or errors:
        raise RosterRejected(parsed.errors + errors)
    summary = await _apply(db, plans, state, programme=programme, parsed=parsed)
    audit.record(
        db,
        actor=actor,
        action="roster.import",
        programme_id=programme.id,
        target=f"programme:{programme.id}",
        format=summary.format,
        rows=summary.rows,
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        groups_created=summary.groups_created,
    )
    await db.commit()
    return summary


async def _apply(
    db: AsyncSession,
    plans: list[RowPlan],
    state: RosterState,
    *,
    programme: Programme,
    parsed: ParsedRoster,
) -> ImportSummary:
    summary = ImportSummary(format=parsed.format, rows=len(parsed.rows))
    position = max((g.position for g in state.groups.values()), default=0)
    for plan in plans:
        if plan.group_key is not None and plan.group_key not in state.groups:
            position += 1
            group = Group(programme_id=programme.id, name=plan.row.group, position=position)
            db.add(group)
            state.groups[plan.group_key] = group
            summary.groups_created.append(group.name)
    new_users: list[User] = []
    for plan in plans:
        if plan.user is None:
            plan.user = User(
                email=plan.row.email,
                display_name=plan.row.name or name_from_email(plan.row.email),
                pronouns=plan.row.pronouns,
            )
            db.add(plan.user)
            new_users.append(plan.user)
    await db.flush()
    summary.new_accounts = len(new_users)
    for plan in plans:
        assert plan.user is not None
        changed = await _apply_row(db, plan, state, programme=programme)
        if plan.membership is None:
            summary.created += 1
            summary.requested += plan.needs_consent
        elif changed:
            summary.updated += 1
        else:
            summary.unchanged += 1
    await db.flush()
    return summary


async def _apply_row(
    db: AsyncSession, plan: RowPlan, state: RosterState, *, programme: Programme
) -> bool:
    """Make the membership say what the row says; True when something changed."""
    assert plan.user is not None
    user_id = plan.user.id
    membership = plan.membership
    if membership is None:
        membership = Membership(
            user_id=user_id,
            programme_id=programme.id,
            role=plan.role.value,
            status=(
                MembershipStatus.INVITED.value
                if plan.needs_consent
                else MembershipStatus.ACTIVE.value
            ),
        )
        db.add(membership)
        state.memberships[user_id] = membership
    changed = False
    if membership.role != plan.role.value:
        membership.role = plan.role.value
        changed = True
    group = state.groups[plan.group_key] if plan.group_key is not None else None
    if plan.role is Role.PARTICIPANT:
        if group is not None and membership.group_id != group.id:
            membership.group_id = group.id
            changed = True
    elif membership.group_id is not None:
        membership.group_id = None  # only participants are placed in groups
        changed = True
    if plan.role not in (Role.FACILITATOR, Role.HOST):
        # Only facilitators and hosts facilitate groups.
        dropped = [link for link in state.facilitations if link[1] == user_id]
        if dropped:
            await db.execute(
                delete(GroupFacilitator).where(
                    GroupFacilitator.user_id == user_id,
                    GroupFacilitator.group_id.in_([g for g, _ in dropped]),
                )
            )
            state.facilitations.difference_update(dropped)
            changed = True
    if (
        plan.role is Role.FACILITATOR
        and group is not None
        and (group.id, user_id) not in state.facilitations
    ):
        db.add(GroupFacilitator(group_id=group.id, user_id=user_id))
        state.facilitations.add((group.id, user_id))
        changed = True
    return changed
