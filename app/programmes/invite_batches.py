"""Issuing personal invitation links to many people at once, and the mail-merge CSV.

Links are secrets: only a hash of each is stored, so they can be shown (or downloaded) once,
right after they are made. Making a new link for someone revokes their earlier ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.csv_export import to_csv
from app.live.access import access_changed
from app.models import Membership, Programme, User
from app.people.invitations import (
    InvitationRefused,
    IssuedInvite,
    issue_invitation,
    link_refusal,
)
from app.programmes.roster_views import MemberView, list_members
from app.security import Signer
from app.templating import local_time
from realtime.publish import Live

CSV_HEADER = ("name", "email", "group", "link", "expires")


@dataclass(frozen=True)
class IssuedLink:
    membership_id: int
    user_id: int
    name: str
    email: str
    group: str  # a participant's group, or the groups a facilitator looks after
    link: str
    expires_at: datetime


async def issue_links(
    db: AsyncSession,
    live: Live,
    *,
    programme: Programme,
    actor: User,
    signer: Signer,
    base_url: str,
    valid_days: int,
    membership_ids: Sequence[int] | None = None,
) -> list[IssuedLink]:
    """New links for the given members of `programme` (ids of other programmes' members are
    ignored: check them first), or, when `membership_ids` is None, for every member except
    `actor` who has no live link and whom a link may sign in (people with a password, or in
    other programmes, sign in their own way). Commits.

    Raises InvitationRefused, having made no link, when a member named in `membership_ids`
    is someone a link may not sign in."""
    members = await list_members(db, programme=programme, with_invitations=True)
    chosen = _chosen(members, actor=actor, membership_ids=membership_ids)
    if not chosen:
        return []
    users = {
        u.id: u
        for u in await db.scalars(
            select(User).where(User.id.in_([m.person.user_id for m in chosen]))
        )
    }
    if membership_ids is not None:
        # All or nothing: check everyone named before making any link.
        await _check_links_may_sign_in(db, [users[m.person.user_id] for m in chosen], programme)
    issued = []
    for member in chosen:
        try:
            invite = await issue_invitation(
                db,
                signer=signer,
                base_url=base_url,
                user=users[member.person.user_id],
                programme_id=programme.id,
                created_by=actor,
                valid_days=valid_days,
            )
        except InvitationRefused:
            continue  # nothing was written for this person: they sign in their own way
        issued.append(_issued_link(member, invite))
    if not issued:
        return []
    _record(db, actor=actor, programme=programme, issued=issued)
    await db.commit()
    # The replaced links' sessions have ended: their open live connections close now.
    await access_changed(live, user_ids=[link.user_id for link in issued], reason="new link")
    return issued


def _chosen(
    members: list[MemberView], *, actor: User, membership_ids: Sequence[int] | None
) -> list[MemberView]:
    """The members named, or (None) everyone but `actor` who has no live link."""
    if membership_ids is None:
        return [m for m in members if m.invite_expires_at is None and m.person.user_id != actor.id]
    wanted = set(membership_ids)
    return [m for m in members if m.membership_id in wanted]


async def _check_links_may_sign_in(
    db: AsyncSession, users: list[User], programme: Programme
) -> None:
    """Raises InvitationRefused for the first of `users` a link may not sign in."""
    for user in users:
        refusal = await link_refusal(db, user=user, programme_id=programme.id)
        if refusal is not None:
            raise InvitationRefused(refusal, refusal.for_host(user.display_name))


def _issued_link(member: MemberView, invite: IssuedInvite) -> IssuedLink:
    return IssuedLink(
        membership_id=member.membership_id,
        user_id=member.person.user_id,
        name=member.person.name,
        email=member.email,
        group=member.group_name or "; ".join(name for _, name in member.facilitator_of),
        link=invite.link,
        expires_at=datetime.fromisoformat(invite.expires_at_iso),
    )


def _record(
    db: AsyncSession, *, actor: User, programme: Programme, issued: list[IssuedLink]
) -> None:
    audit.record(
        db,
        actor=actor,
        action="invitations.issue",
        programme_id=programme.id,
        target=f"programme:{programme.id}",
        count=len(issued),
        user_ids=[link.user_id for link in issued][:500],
    )


async def unknown_membership_ids(
    db: AsyncSession, *, programme: Programme, membership_ids: Sequence[int]
) -> list[int]:
    """The ids that are not memberships of `programme`."""
    known = set(
        await db.scalars(
            select(Membership.id).where(
                Membership.programme_id == programme.id, Membership.id.in_(set(membership_ids))
            )
        )
    )
    return sorted(set(membership_ids) - known)


def links_csv(links: Sequence[IssuedLink], *, timezone: str) -> str:
    """The links for a mail merge: name, email, group, link, expires (in the programme's time
    zone). Cells are escaped against formula injection."""
    return to_csv(
        CSV_HEADER,
        (
            (
                link.name,
                link.email,
                link.group,
                link.link,
                local_time(link.expires_at, timezone, "%Y-%m-%d %H:%M %Z"),
            )
            for link in links
        ),
    )
