"""A small sliding-window rate limiter kept in process memory."""

from __future__ import annotations

import time
from collections import deque


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record one attempt for `key`; False when the key is over its limit."""
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget_idle(now)
            hits = self._hits[key] = deque()
        while hits and now - hits[0] > self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def over(self, key: str, now: float | None = None) -> bool:
        """Whether `key` is at its limit, without recording anything."""
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if not hits:
            return False
        while hits and now - hits[0] > self.window:
            hits.popleft()
        return len(hits) >= self.limit

    def retry_after(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if not hits:
            return 0
        return max(1, int(self.window - (now - hits[0])) + 1)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window]:
            del self._hits[key]


class SignInLimits:
    """How often passwords may be tried, so that guessing is slow and the server stays up.

    - per address and account: every attempt counts (the classic guessing limit);
    - per address: failures only, whichever accounts they name, so one machine cannot guess
      across many accounts (failures only, because a whole hospital may sign in from one
      address at two o'clock);
    - across the server: failures only, a ceiling on the argon2 work that wrong passwords
      can ask for, whoever sends them."""

    def __init__(self, *, per_account: int, per_address: int, everyone: int) -> None:
        self.attempts = RateLimiter(per_account, 60.0)
        self.address_failures = RateLimiter(per_address, 60.0)
        self.all_failures = RateLimiter(everyone, 60.0, max_keys=1)

    def refuse(self, address: str, email: str) -> int:
        """Seconds to wait before trying again (0: go ahead, and the attempt is counted)."""
        now = time.monotonic()
        for limiter, key in (
            (self.address_failures, address),
            (self.all_failures, "*"),
        ):
            if limiter.over(key, now):
                return limiter.retry_after(key, now)
        key = f"{address}|{email}"
        if not self.attempts.allow(key, now):
            return self.attempts.retry_after(key, now)
        return 0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self.address_failures.allow(address, now)
        self.all_failures.allow("*", now)
