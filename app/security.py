"""Passwords, signed session cookies, CSRF tokens and invitation links."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

SESSION_COOKIE = "rt_session"
CSRF_COOKIE = "rt_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

_hasher = PasswordHasher()
# A real hash to verify against when the account does not exist, so that timing
# does not reveal which e-mail addresses have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches. Without a hash (no such account, or no password) the same
    work is done against a dummy hash, so the answer takes as long either way."""
    try:
        matched = _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


class PasswordWorkerBusy(Exception):
    """Too many password checks are waiting; the person should try again in a moment."""

    retry_after = 5


class PasswordWorker:
    """Argon2 hashing and checking, off the event loop and bounded.

    Argon2 is slow on purpose (a quarter of a second of one core here). Run on the event loop,
    40 wrong passwords at once froze the whole server, live chat included, for ten seconds.
    Here it runs in a small pool of threads (argon2-cffi releases the GIL), one fewer than
    the cores so the event loop keeps one, and at most `max_waiting` checks may queue: past
    that a sign-in is refused at once with "try again in a moment" instead of waiting in a
    queue that only grows."""

    def __init__(self, *, threads: int, max_waiting: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(threads + max_waiting)

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._slots.locked():
            raise PasswordWorkerBusy()
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        result: bool = await self._run(verify_password, password, password_hash)
        return result

    async def hash(self, password: str) -> str:
        result: str = await self._run(hash_password, password)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class SessionClaims:
    """What a session cookie says: who, under which sign-out-everywhere epoch, which session
    (a random id, so that one session can be ended on the server), and the invitation link
    it was made with, if any (a new link for the person ends it)."""

    user_id: int
    epoch: int
    session_id: str = field(default_factory=new_session_id)
    invitation_id: int | None = None


class Signer:
    """Signs and checks everything the server hands out: cookies, CSRF tokens, invite links."""

    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()
        self._sessions = URLSafeTimedSerializer(secret_key, salt="roundtable.session")
        self._invites = URLSafeTimedSerializer(secret_key, salt="roundtable.invite")

    def session_cookie(self, claims: SessionClaims) -> str:
        data: dict[str, Any] = {"u": claims.user_id, "e": claims.epoch, "s": claims.session_id}
        if claims.invitation_id is not None:
            data["i"] = claims.invitation_id
        return self._sessions.dumps(data)

    def read_session_cookie(self, value: str, max_age_seconds: int) -> SessionClaims | None:
        try:
            data: Any = self._sessions.loads(value, max_age=max_age_seconds)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict):
            return None
        user_id, epoch, session_id = data.get("u"), data.get("e"), data.get("s")
        invitation_id = data.get("i")
        if not isinstance(user_id, int) or not isinstance(epoch, int):
            return None
        # Cookies from before sessions had ids cannot be ended one by one: they are refused.
        if not isinstance(session_id, str) or not 8 <= len(session_id) <= 64:
            return None
        if invitation_id is not None and not isinstance(invitation_id, int):
            return None
        return SessionClaims(
            user_id=user_id, epoch=epoch, session_id=session_id, invitation_id=invitation_id
        )

    def slide_image_signature(self, key: str) -> str:
        """What lets a link load one slide image without asking the database who may see it:
        such links go only to people who may (in the stage's events and pages)."""
        return hmac.new(self._secret, b"slide-image:" + key.encode(), "sha256").hexdigest()[:32]

    def csrf_token(self, csrf_cookie: str) -> str:
        """The token forms carry: an HMAC of the browser's random CSRF cookie."""
        return hmac.new(self._secret, b"csrf:" + csrf_cookie.encode(), "sha256").hexdigest()

    def csrf_valid(self, csrf_cookie: str | None, token: str | None) -> bool:
        if not csrf_cookie or not token:
            return False
        return hmac.compare_digest(self.csrf_token(csrf_cookie), token)

    def invite_token(self, invitation_id: int, nonce: str) -> str:
        return self._invites.dumps({"i": invitation_id, "n": nonce})

    def read_invite_token(self, token: str, max_age_seconds: int) -> tuple[int, str] | None:
        try:
            data: Any = self._invites.loads(token, max_age=max_age_seconds)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict):
            return None
        invitation_id, nonce = data.get("i"), data.get("n")
        if not isinstance(invitation_id, int) or not isinstance(nonce, str):
            return None
        return invitation_id, nonce


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def same_origin(conn: HTTPConnection) -> bool:
    """Browsers send Origin with every WebSocket; it must be this site."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True  # not a browser; the session cookie still decides
    host = conn.headers.get("host", "")
    return urlsplit(origin).netloc == host
