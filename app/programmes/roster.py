"""Importing a roster into a programme: all or nothing, idempotent, every problem reported.

The file is read by `app.programmes.roster_csv`; here each row is matched to an existing account
(by e-mail, ignoring case), checked against the programme (roles, group capacity after the
import), and only when every row is good is anything written.

An import changes this programme's memberships only. A row naming an account that already
belongs to someone who signs in with a password, an administrator, or a member of another
programme does not make them a member: it asks them to join (a membership with status
"invited"), and they accept, signed in as themselves. So a host can never gain power over
an account by naming it in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import (
    Group,
    GroupFacilitator,
    Membership,
    MembershipStatus,
    Programme,
    Role,
    User,
)
from app.programmes.roster_csv import (
    MAX_ROSTER_BYTES,
    ParsedRoster,
    RosterRejected,
    RosterRow,
    RowError,
    name_from_email,
    parse_roster,
)

__all__ = ["ImportSummary", "RosterRejected", "RowError", "import_roster", "MAX_ROSTER_BYTES"]

GROUPED_ROLES = (Role.PARTICIPANT, Role.FACILITATOR)
# Stay well under SQLite's limit on bound parameters.
_CHUNK = 500


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


@dataclass
class _Plan:
    """What one good row will do."""

    row: RosterRow
    user: User | None  # None: a new account
    membership: Membership | None  # None: a new member
    role: Role
    group_key: str | None  # casefolded group name, None: leave as it is
    # A new membership for an account that must agree to it (see the module's docstring).
    needs_consent: bool = False


async def import_roster(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    data: bytes,
    max_rows: int,
    max_bytes: int = MAX_ROSTER_BYTES,
) -> ImportSummary:
    """Import `data` (the uploaded file) into `programme` and commit, or raise RosterRejected
    listing every problem, having changed nothing."""
    parsed = parse_roster(data, max_rows=max_rows, max_bytes=max_bytes)
    state = await _ProgrammeState.load(db, programme=programme, rows=parsed.rows)
    plans, errors = _plan_rows(parsed, state, actor=actor)
    errors += _capacity_errors(plans, state, programme=programme)
    errors += _host_errors(plans, state)
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


@dataclass
class _ProgrammeState:
    users: dict[str, User]  # lower-case e-mail -> account
    memberships: dict[int, Membership]  # user id -> membership in this programme
    groups: dict[str, Group]  # casefolded name -> group
    facilitations: set[tuple[int, int]]  # (group id, user id) in this programme
    # Accounts in the file that are active members of another programme.
    members_elsewhere: set[int] = field(default_factory=set)

    @property
    def group_keys(self) -> dict[int, str]:
        """Group id -> casefolded name, for the groups that existed before the import."""
        return {g.id: key for key, g in self.groups.items() if g.id is not None}

    @classmethod
    async def load(
        cls, db: AsyncSession, *, programme: Programme, rows: Sequence[RosterRow]
    ) -> _ProgrammeState:
        emails = sorted({r.email for r in rows})
        users: dict[str, User] = {}
        for start in range(0, len(emails), _CHUNK):
            chunk = emails[start : start + _CHUNK]
            found = await db.scalars(
                select(User).where(func.lower(User.email).in_(chunk)).order_by(User.id)
            )
            for user in found:
                users.setdefault((user.email or "").lower(), user)
        memberships = {
            m.user_id: m
            for m in await db.scalars(
                select(Membership).where(Membership.programme_id == programme.id)
            )
        }
        groups = {
            g.name.casefold(): g
            for g in await db.scalars(
                select(Group).where(Group.programme_id == programme.id).order_by(Group.position)
            )
        }
        links = await db.execute(
            select(GroupFacilitator.group_id, GroupFacilitator.user_id)
            .join(Group, Group.id == GroupFacilitator.group_id)
            .where(Group.programme_id == programme.id)
        )
        user_ids = sorted(u.id for u in users.values())
        elsewhere: set[int] = set()
        for start in range(0, len(user_ids), _CHUNK):
            elsewhere.update(
                await db.scalars(
                    select(Membership.user_id).where(
                        Membership.user_id.in_(user_ids[start : start + _CHUNK]),
                        Membership.programme_id != programme.id,
                        Membership.status == MembershipStatus.ACTIVE.value,
                    )
                )
            )
        return cls(
            users=users,
            memberships=memberships,
            groups=groups,
            facilitations={(g, u) for g, u in links.tuples()},
            members_elsewhere=elsewhere,
        )

    def needs_consent(self, user: User) -> bool:
        """Whether adding this existing account must wait for its owner to accept."""
        return bool(user.password_hash) or user.is_admin or user.id in self.members_elsewhere


def _plan_rows(
    parsed: ParsedRoster, state: _ProgrammeState, *, actor: User
) -> tuple[list[_Plan], list[RowError]]:
    plans: list[_Plan] = []
    errors: list[RowError] = []
    for row in parsed.rows:
        user = state.users.get(row.email)
        membership = state.memberships.get(user.id) if user else None
        current = Role(membership.role) if membership else None
        role = row.role or current or Role.PARTICIPANT
        if row.group and role not in GROUPED_ROLES:
            who = (
                f"A {role.label.lower()}"
                if row.role
                else f"This person is already a {role.label.lower()} in this programme, and a "
                f"{role.label.lower()}"
            )
            errors.append(
                RowError(
                    row.line,
                    "group",
                    f"{who} is not placed in a group: only participants and facilitators have "
                    "one. Leave the group empty for this row.",
                )
            )
            continue
        if user is not None and user.id == actor.id and current is not None and role != current:
            errors.append(
                RowError(
                    row.line,
                    "role",
                    f"This is you; you cannot change your own role (from {current.label.lower()} "
                    f"to {role.label.lower()}) by importing a file.",
                )
            )
            continue
        group_key = row.group.casefold() if row.group else None
        plans.append(
            _Plan(
                row=row,
                user=user,
                membership=membership,
                role=role,
                group_key=group_key,
                needs_consent=user is not None and membership is None and state.needs_consent(user),
            )
        )
    return plans, errors


def _final_group_key(plan: _Plan, state: _ProgrammeState) -> str | None:
    """The group a participant will be in after the import (None: no group)."""
    if plan.role is not Role.PARTICIPANT:
        return None
    if plan.group_key is not None:
        return plan.group_key
    if plan.membership is None or plan.membership.group_id is None:
        return None
    if plan.membership.role != Role.PARTICIPANT.value:
        return None
    return state.group_keys.get(plan.membership.group_id)


def _capacity_errors(
    plans: list[_Plan], state: _ProgrammeState, *, programme: Programme
) -> list[RowError]:
    """Rows that would take a group past its capacity, in file order: the rows to remove."""
    in_file = {p.membership.id for p in plans if p.membership is not None}
    occupancy: dict[str, int] = {}
    for membership in state.memberships.values():
        if membership.id in in_file or membership.role != Role.PARTICIPANT.value:
            continue
        if membership.group_id is not None:
            key = state.group_keys.get(membership.group_id)
            if key is not None:
                occupancy[key] = occupancy.get(key, 0) + 1
    arrivals: list[tuple[_Plan, str]] = []
    for plan in plans:
        key = _final_group_key(plan, state)
        if key is None:
            continue
        staying = (
            plan.membership is not None
            and plan.membership.role == Role.PARTICIPANT.value
            and plan.membership.group_id is not None
            and state.group_keys.get(plan.membership.group_id) == key
        )
        if staying:
            occupancy[key] = occupancy.get(key, 0) + 1
        else:
            arrivals.append((plan, key))
    errors = []
    for plan, key in arrivals:
        occupancy[key] = occupancy.get(key, 0) + 1
        group = state.groups.get(key)
        capacity = group.effective_capacity(programme) if group else programme.group_capacity
        if occupancy[key] > capacity:
            name = group.name if group else plan.row.group
            errors.append(
                RowError(
                    plan.row.line,
                    "group",
                    f'Group "{name}" would be over its capacity of {capacity}: this would be '
                    f"person {occupancy[key]}. Put this person in another group, or leave the "
                    "group empty and use auto-assign after the import.",
                )
            )
    return errors


def _host_errors(plans: list[_Plan], state: _ProgrammeState) -> list[RowError]:
    """A programme that had a host keeps one."""
    hosts = {uid for uid, m in state.memberships.items() if m.role == Role.HOST.value}
    if not hosts:
        return []
    remaining = set(hosts)
    demotions = []
    for plan in plans:
        if plan.user is None:
            continue
        if plan.role is Role.HOST:
            remaining.add(plan.user.id)
        elif plan.user.id in hosts:
            remaining.discard(plan.user.id)
            demotions.append(plan)
    if remaining:
        return []
    return [
        RowError(p.row.line, "role", "This would leave the programme without a host.")
        for p in demotions
    ]


async def _apply(
    db: AsyncSession,
    plans: list[_Plan],
    state: _ProgrammeState,
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
    db: AsyncSession, plan: _Plan, state: _ProgrammeState, *, programme: Programme
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
