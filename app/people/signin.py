"""Signing in with an e-mail address and a password: the limits on guessing, the slow
password check kept off the database connection, and the audit entry. The route
(app/people/routes/auth.py) reads the form and sets the cookie."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import User
from app.ratelimit import SignInLimits
from app.refusals import Refused
from app.security import PasswordWorker, PasswordWorkerBusy


class SignInRefused(Refused):
    """No sign-in this time, with the sign-in form's field to show the reason beside."""

    def __init__(
        self, field: str, message: str, *, status: int, retry_after: int | None = None
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.field = field


async def password_sign_in(
    db: AsyncSession,
    *,
    passwords: PasswordWorker,
    limits: SignInLimits,
    address: str,
    email: str,
    password: str,
) -> User:
    """The account these match, with the sign-in recorded and committed; or SignInRefused
    when they do not match, or when there have been too many attempts or too many checks
    are waiting."""
    wait = limits.refuse(address, email)
    if wait:
        raise SignInRefused(
            "email",
            f"Too many sign-in attempts. Please wait {wait} seconds and try again.",
            status=429,
            retry_after=wait,
        )
    found = (
        await db.execute(select(User.id, User.password_hash).where(func.lower(User.email) == email))
    ).first()
    # Give the database connection back while the password is checked: the check is slow on
    # purpose, and many at once must not empty the pool for everyone else.
    await db.rollback()
    user_id, password_hash = found if found is not None else (None, None)
    try:
        # Unknown accounts are checked against a dummy hash: the same work, the same time.
        matched = await passwords.verify(password, password_hash)
    except PasswordWorkerBusy as exc:
        raise SignInRefused(
            "email",
            "Many people are signing in right now. Please try again in a few seconds.",
            status=503,
            retry_after=exc.retry_after,
        ) from None
    user = await db.get(User, user_id) if matched and user_id is not None else None
    if user is None:
        limits.failed(address)
        raise SignInRefused(
            "password", "That e-mail address and password do not match an account.", status=400
        )
    audit.record(db, actor=user, action="auth.password_sign_in", target=f"user:{user.id}")
    await db.commit()
    return user
