"""Refusals: an action that cannot be done, with the reason to show the person.

Raise a `Refused` (or the subclass that names the reason) anywhere below a route; the one
handler in `app.errors` turns it into the answer the asker reads: a line of text for the
page's own requests (htmx), JSON for the API, an error page otherwise. WebSocket frame
handlers catch it and send an error frame instead."""

from __future__ import annotations


class Refused(Exception):
    """An action that cannot be done, with the reason to show the person, an HTTP status,
    a short machine-readable `code` (sent in WebSocket error frames), and for a refusal
    that passes (429, 503) how many seconds to wait before trying again."""

    status_default = 400

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "refused",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.status_default
        self.code = code
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None


class NotAllowed(Refused):
    """The person may not do this (403)."""

    status_default = 403


class NotFound(Refused):
    """What the action is about does not exist, or not for this person (404)."""

    status_default = 404


class Conflict(Refused):
    """The action conflicts with how things are now (409)."""

    status_default = 409


class Unprocessable(Refused):
    """What was sent is well formed but cannot be used as it is (422)."""

    status_default = 422


class TooLarge(Refused):
    """What was sent is too large (413)."""

    status_default = 413


class TooFast(Refused):
    """Too many actions too quickly; wait and try again (429)."""

    status_default = 429


class Busy(Refused):
    """Too busy to do it right now; try again shortly (503)."""

    status_default = 503
