"""Creating and changing programmes, and the rules their fields follow. What a person sees of
them: app/programmes/programme_views.py."""

from __future__ import annotations

from zoneinfo import available_timezones

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import Membership, Programme, Role, User

MIN_CAPACITY, MAX_CAPACITY = 2, 50


class ProgrammeError(ValueError):
    """A field-level problem with what was asked, with a message for the person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def valid_timezone(name: str) -> bool:
    return name in available_timezones()


def check_programme_fields(
    *, title: str, description: str, timezone: str, group_capacity: int | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Enter a title for the programme."
    elif len(title) > 200:
        errors["title"] = "The title must be at most 200 characters."
    if len(description) > 5000:
        errors["description"] = "The description must be at most 5,000 characters."
    if not valid_timezone(timezone):
        errors["timezone"] = f"“{timezone[:60]}” is not a time zone we know, such as Europe/London."
    if group_capacity is None or not MIN_CAPACITY <= group_capacity <= MAX_CAPACITY:
        errors["group_capacity"] = (
            f"Group size must be a whole number from {MIN_CAPACITY} to {MAX_CAPACITY}."
        )
    return errors


async def create_programme(
    db: AsyncSession,
    *,
    actor: User,
    title: str,
    description: str = "",
    timezone: str = "Europe/London",
    group_capacity: int = 8,
) -> Programme:
    errors = check_programme_fields(
        title=title, description=description, timezone=timezone, group_capacity=group_capacity
    )
    if errors:
        raise ProgrammeError(errors)
    programme = Programme(
        title=title.strip(),
        description=description.strip(),
        timezone=timezone,
        group_capacity=group_capacity,
    )
    db.add(programme)
    await db.flush()
    db.add(Membership(user_id=actor.id, programme_id=programme.id, role=Role.HOST.value))
    audit.record(
        db, actor=actor, action="programme.create", programme_id=programme.id, title=programme.title
    )
    await db.commit()
    return programme


async def update_programme(
    db: AsyncSession,
    *,
    actor: User,
    programme: Programme,
    title: str,
    description: str,
    timezone: str,
    group_capacity: int | None,
    allow_breakout_recording: bool | None = None,
    allow_breakout_cameras: bool | None = None,
) -> Programme:
    """Save a programme's settings (`allow_breakout_recording`, `allow_breakout_cameras`
    None: leave it as it is)."""
    errors = check_programme_fields(
        title=title, description=description, timezone=timezone, group_capacity=group_capacity
    )
    if errors:
        raise ProgrammeError(errors)
    assert group_capacity is not None
    changes = {
        k: v
        for k, v in {
            "title": title.strip(),
            "description": description.strip(),
            "timezone": timezone,
            "group_capacity": group_capacity,
            "allow_breakout_recording": (
                programme.allow_breakout_recording
                if allow_breakout_recording is None
                else allow_breakout_recording
            ),
            "allow_breakout_cameras": (
                programme.allow_breakout_cameras
                if allow_breakout_cameras is None
                else allow_breakout_cameras
            ),
        }.items()
        if getattr(programme, k) != v
    }
    for key, value in changes.items():
        setattr(programme, key, value)
    if changes:
        audit.record(
            db, actor=actor, action="programme.update", programme_id=programme.id, changes=changes
        )
    await db.commit()
    return programme
