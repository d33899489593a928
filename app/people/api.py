"""The signed-in person: profile and access needs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.deps import CurrentUser, SessionDep
from app.people.profile import ProfileChanges, ProfileError, update_profile
from app.refusals import Unprocessable

router = APIRouter(tags=["me"])


class AccessNeeds(BaseModel):
    captions_on: bool = False
    large_text: bool = False
    high_contrast: bool = False
    reduced_motion: bool = False
    low_bandwidth: bool = False
    screen_reader: bool = False


class MeOut(AccessNeeds):
    model_config = ConfigDict(from_attributes=True)

    id: int
    display_name: str
    pronouns: str
    name_pronunciation: str
    access_notes: str
    email: str | None
    is_admin: bool


class MeUpdate(BaseModel):
    """Fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    pronouns: str | None = Field(default=None, max_length=40)
    name_pronunciation: str | None = Field(default=None, max_length=100)
    access_notes: str | None = Field(default=None, max_length=500)
    captions_on: bool | None = None
    large_text: bool | None = None
    high_contrast: bool | None = None
    reduced_motion: bool | None = None
    low_bandwidth: bool | None = None
    screen_reader: bool | None = None


@router.get("/me", response_model=MeOut)
async def get_me(user: CurrentUser) -> MeOut:
    return MeOut.model_validate(user)


@router.patch("/me", response_model=MeOut)
async def patch_me(body: MeUpdate, user: CurrentUser, db: SessionDep) -> MeOut:
    current = {name: getattr(user, name) for name in ProfileChanges.__dataclass_fields__}
    current.update(body.model_dump(exclude_none=True))
    try:
        await update_profile(db, user=user, changes=ProfileChanges(**current))
    except ProfileError as exc:
        await db.rollback()
        raise Unprocessable(str(exc)) from exc
    return MeOut.model_validate(user)
