"""Passwords, signed session cookies, CSRF tokens and invitation links."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

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
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class SessionClaims:
    user_id: int
    epoch: int


class Signer:
    """Signs and checks everything the server hands out: cookies, CSRF tokens, invite links."""

    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()
        self._sessions = URLSafeTimedSerializer(secret_key, salt="roundtable.session")
        self._invites = URLSafeTimedSerializer(secret_key, salt="roundtable.invite")

    def session_cookie(self, claims: SessionClaims) -> str:
        return self._sessions.dumps({"u": claims.user_id, "e": claims.epoch})

    def read_session_cookie(self, value: str, max_age_seconds: int) -> SessionClaims | None:
        try:
            data: Any = self._sessions.loads(value, max_age=max_age_seconds)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict):
            return None
        user_id, epoch = data.get("u"), data.get("e")
        if not isinstance(user_id, int) or not isinstance(epoch, int):
            return None
        return SessionClaims(user_id=user_id, epoch=epoch)

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
