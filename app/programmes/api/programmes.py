"""Programmes: list mine, create (administrators), read and update (hosts)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.deps import AdminUser, CurrentUser, HostOf, MemberOf, SessionDep
from app.programmes.programme_views import my_programmes
from app.programmes.programmes import (
    MAX_CAPACITY,
    MIN_CAPACITY,
    ProgrammeError,
    create_programme,
    update_programme,
)
from app.refusals import Unprocessable

router = APIRouter(tags=["programmes"])


class ProgrammeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str
    timezone: str
    group_capacity: int
    created_at: datetime


class MyProgrammeOut(ProgrammeOut):
    role: str
    group_id: int | None
    group_name: str | None
    facilitators: list[str]
    next_session_id: int | None


class ProgrammeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    timezone: str = Field(default="Europe/London", max_length=64, description="IANA time zone")
    group_capacity: int = Field(default=8, ge=MIN_CAPACITY, le=MAX_CAPACITY)


class ProgrammeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    timezone: str | None = Field(default=None, max_length=64)
    group_capacity: int | None = Field(default=None, ge=MIN_CAPACITY, le=MAX_CAPACITY)


def _unprocessable(exc: ProgrammeError) -> Unprocessable:
    return Unprocessable(str(exc))


@router.get("/programmes", response_model=list[MyProgrammeOut])
async def list_my_programmes(user: CurrentUser, db: SessionDep) -> list[MyProgrammeOut]:
    out = []
    for item in await my_programmes(db, user=user):
        base = ProgrammeOut.model_validate(item.programme).model_dump()
        out.append(
            MyProgrammeOut(
                **base,
                role=item.role.value,
                group_id=item.group.id if item.group else None,
                group_name=item.group.name if item.group else None,
                facilitators=[f.display_name for f in item.facilitators],
                next_session_id=item.next_session.id if item.next_session else None,
            )
        )
    return out


@router.post("/programmes", response_model=ProgrammeOut, status_code=201)
async def create(body: ProgrammeIn, admin: AdminUser, db: SessionDep) -> ProgrammeOut:
    try:
        programme = await create_programme(db, actor=admin, **body.model_dump())
    except ProgrammeError as exc:
        await db.rollback()
        raise _unprocessable(exc) from exc
    return ProgrammeOut.model_validate(programme)


@router.get("/programmes/{programme_id}", response_model=ProgrammeOut)
async def get_programme(ctx: MemberOf) -> ProgrammeOut:
    return ProgrammeOut.model_validate(ctx.programme)


@router.patch("/programmes/{programme_id}", response_model=ProgrammeOut)
async def patch_programme(body: ProgrammeUpdate, ctx: HostOf, db: SessionDep) -> ProgrammeOut:
    p = ctx.programme
    merged = {
        "title": p.title,
        "description": p.description,
        "timezone": p.timezone,
        "group_capacity": p.group_capacity,
        **body.model_dump(exclude_none=True),
    }
    try:
        await update_programme(db, actor=ctx.user, programme=p, **merged)
    except ProgrammeError as exc:
        await db.rollback()
        raise _unprocessable(exc) from exc
    return ProgrammeOut.model_validate(p)
