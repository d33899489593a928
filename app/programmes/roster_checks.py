"""What a roster import will do, row by row, and every reason it may not: the programme as it
is (`RosterState`), a plan for each good row (`RowPlan`), and the rows that would break a
group's capacity or leave the programme without a host. Reads only; app.programmes.roster
writes the plans once nothing stands in the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Group,
    GroupFacilitator,
    Membership,
    MembershipStatus,
    Programme,
    Role,
    User,
)
from app.programmes.roster_csv import ParsedRoster, RosterRow, RowError

GROUPED_ROLES = (Role.PARTICIPANT, Role.FACILITATOR)
# Stay well under SQLite's limit on bound parameters.
_CHUNK = 500


@dataclass
class RowPlan:
    """What one good row will do."""

    row: RosterRow
    user: User | None  # None: a new account
    membership: Membership | None  # None: a new member
    role: Role
    group_key: str | None  # casefolded group name, None: leave as it is
    # A new membership for an account that must agree to it (see app.programmes.roster).
    needs_consent: bool = False


@dataclass
class RosterState:
    """The programme as the import finds it, and the accounts the file names."""

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
    ) -> RosterState:
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


def plan_rows(
    parsed: ParsedRoster, state: RosterState, *, actor: User
) -> tuple[list[RowPlan], list[RowError]]:
    plans: list[RowPlan] = []
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
            RowPlan(
                row=row,
                user=user,
                membership=membership,
                role=role,
                group_key=group_key,
                needs_consent=user is not None and membership is None and state.needs_consent(user),
            )
        )
    return plans, errors


def _final_group_key(plan: RowPlan, state: RosterState) -> str | None:
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


def capacity_errors(
    plans: list[RowPlan], state: RosterState, *, programme: Programme
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
    arrivals: list[tuple[RowPlan, str]] = []
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


def host_errors(plans: list[RowPlan], state: RosterState) -> list[RowError]:
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
