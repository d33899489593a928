"""Who may see and do what with evidence.

A group's evidence is seen by the group's members, the group's facilitators and the
programme's hosts; never by other groups (their members or their facilitators), observers
or IT support. Items marked for the organisers only are hidden from the group's members
(except whoever uploaded them). Hidden items stay visible to facilitators and hosts only.
An image waiting for its description is seen by its uploader and the organisers only.

Coding (themes) is organisers' work: hosts across the programme, facilitators for the
groups they facilitate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import GroupContext, ProgrammeContext
from app.deps import GroupOf, MemberOf, SessionDep
from app.evidence.models import EvidenceItem, Visibility
from app.models import GroupFacilitator, Role
from app.refusals import NotAllowed, NotFound

ItemIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Evidence item id")]
ThemeIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Theme id")]
CodingIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Coding id")]

ITEM_NOT_FOUND = "We could not find that piece of evidence, or it is not shared with you."


def is_organiser(gctx: GroupContext) -> bool:
    """The group's facilitators and the programme's hosts."""
    return gctx.can_moderate


def can_see(item: EvidenceItem, gctx: GroupContext) -> bool:
    if item.group_id != gctx.group.id:
        return False
    if is_organiser(gctx):
        return True
    if item.uploader_id == gctx.ctx.user.id:
        return not item.is_hidden
    return (
        not item.is_hidden and item.visibility == Visibility.GROUP.value and not item.needs_alt_text
    )


@dataclass
class ItemContext:
    gctx: GroupContext
    item: EvidenceItem

    @property
    def user_id(self) -> int:
        return self.gctx.ctx.user.id

    @property
    def is_organiser(self) -> bool:
        return is_organiser(self.gctx)

    @property
    def is_uploader(self) -> bool:
        return self.item.uploader_id == self.user_id

    @property
    def can_edit(self) -> bool:
        """Title, description, alt text: the uploader and the organisers."""
        return self.is_uploader or self.is_organiser


async def item_access(gctx: GroupOf, item_id: ItemIdPath, db: SessionDep) -> ItemContext:
    item = await db.get(EvidenceItem, item_id)
    if item is None or not can_see(item, gctx):
        raise NotFound(ITEM_NOT_FOUND)
    return ItemContext(gctx=gctx, item=item)


ItemOf = Annotated[ItemContext, Depends(item_access)]


async def organiser_item_access(item: ItemOf) -> ItemContext:
    """The item, for its group's facilitators and the programme's hosts."""
    if not item.is_organiser:
        raise NotAllowed("Only this group's facilitators and the programme's hosts can do this.")
    return item


OrganiserItemOf = Annotated[ItemContext, Depends(organiser_item_access)]


async def coded_group_ids(db: AsyncSession, ctx: ProgrammeContext) -> set[int] | None:
    """The groups whose evidence this person may code and see in the theme overview:
    None for hosts (every group), the facilitated groups for facilitators."""
    if ctx.is_host:
        return None
    rows = await db.scalars(
        select(GroupFacilitator.group_id).where(GroupFacilitator.user_id == ctx.user.id)
    )
    return set(rows.all())


async def coder_access(ctx: MemberOf) -> ProgrammeContext:
    """The codebook and the theme overview: hosts and facilitators."""
    if ctx.role not in (Role.HOST, Role.FACILITATOR):
        raise NotAllowed("Only the programme's hosts and facilitators code evidence into themes.")
    return ctx


CoderOf = Annotated[ProgrammeContext, Depends(coder_access)]


async def host_only(ctx: MemberOf) -> ProgrammeContext:
    if not ctx.is_host:
        raise NotAllowed("Only the programme's hosts can do this.")
    return ctx
