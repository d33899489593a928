"""A person's own profile: how they are named and how they want to take part."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import User
from app.security import MIN_PASSWORD_LENGTH, PasswordWorker

ACCESS_NEEDS = {
    "captions_on": ("Show live captions", "Captions are switched on when you join a room."),
    "large_text": ("Larger text", "All pages use a bigger text size."),
    "high_contrast": ("High contrast", "Black text on white with strong outlines."),
    "reduced_motion": ("Reduce motion", "No animations or moving timers."),
    "low_bandwidth": ("Low-bandwidth mode", "Only chat and captions, for weak connections."),
    "screen_reader": (
        "I use a screen reader",
        "We announce new messages and room changes politely, without moving your focus.",
    ),
}

LIMITS = {"display_name": 100, "pronouns": 40, "name_pronunciation": 100, "access_notes": 500}


class ProfileError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class ProfileChanges:
    display_name: str
    pronouns: str = ""
    name_pronunciation: str = ""
    access_notes: str = ""
    captions_on: bool = False
    large_text: bool = False
    high_contrast: bool = False
    reduced_motion: bool = False
    low_bandwidth: bool = False
    screen_reader: bool = False


def _clean(value: str) -> str:
    # Control characters have no place in a name and can confuse screen readers.
    return "".join(c for c in value if c.isprintable() or c == " ").strip()


def validate(changes: ProfileChanges) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not changes.display_name:
        errors["display_name"] = "Enter the name you would like people to see."
    for name, limit in LIMITS.items():
        if len(getattr(changes, name)) > limit:
            errors[name] = f"This must be at most {limit} characters."
    return errors


async def update_profile(db: AsyncSession, *, user: User, changes: ProfileChanges) -> User:
    for name in LIMITS:
        setattr(changes, name, _clean(getattr(changes, name)))
    errors = validate(changes)
    if errors:
        raise ProfileError(errors)
    for key, value in vars(changes).items():
        setattr(user, key, value)
    audit.record(db, actor=user, action="profile.update", target=f"user:{user.id}")
    await db.commit()
    return user


async def change_password(
    db: AsyncSession,
    *,
    user: User,
    passwords: PasswordWorker,
    current: str,
    new: str,
    confirm: str,
) -> None:
    """Raises ProfileError, or PasswordWorkerBusy when too many passwords are being checked."""
    errors: dict[str, str] = {}
    if user.password_hash and not await passwords.verify(current, user.password_hash):
        errors["current_password"] = "Your current password is not right."
    if len(new) < MIN_PASSWORD_LENGTH:
        errors["new_password"] = f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
    elif len(new) > 200:
        errors["new_password"] = "Choose a password of at most 200 characters."
    elif new != confirm:
        errors["confirm_password"] = "The two new passwords are not the same."
    if errors:
        raise ProfileError(errors)
    user.password_hash = await passwords.hash(new)
    # Other devices signed in with the old password are signed out.
    user.auth_epoch += 1
    audit.record(db, actor=user, action="auth.password_change", target=f"user:{user.id}")
    await db.commit()
