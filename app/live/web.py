"""What the live session's route modules share: the path they live under, the page a
form goes back to, how an answer is given to htmx or to a plain form, and the parsing of
the numbers and ids those forms send."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from app.live.channels import Seat
from app.numbers import is_digits
from app.refusals import Refused

BASE = "/programmes/{programme_id}/sessions/{session_id}/live"


def base_url(seat: Seat) -> str:
    return f"/programmes/{seat.ctx.programme.id}/sessions/{seat.session.id}/live"


def wants_fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def whole_number(value: str, *, what: str, low: int, high: int, default: int | None = None) -> int:
    value = value.strip()
    if not value and default is not None:
        return default
    if not value:
        raise Refused(f"Enter the {what} (a whole number from {low} to {high}).")
    if not is_digits(value) or not low <= int(value) <= high:
        raise Refused(f"The {what} must be a whole number from {low} to {high}.")
    return int(value)


def optional_id(value: str, *, what: str) -> int | None:
    """An id from a select; empty or "plenary" means none."""
    value = value.strip()
    if value in ("", "plenary"):
        return None
    if not is_digits(value) or not 1 <= int(value) < 2**31:
        raise Refused(f"Choose a {what} from the list.")
    return int(value)


def required_id(value: str, *, what: str) -> int:
    found = optional_id(value, what=what)
    if found is None:
        raise Refused(f"Choose a {what} from the list.")
    return found


def done(request: Request, seat: Seat, message: str) -> Response:
    if wants_fragment(request):
        return Response(message, media_type="text/plain")
    return RedirectResponse(base_url(seat), status_code=303)
