"""What the groups and members API share: how it shows a person and their access needs
(read from the roster's views, app/programmes/roster_views.py), and the 422 answer to a
change that cannot be made."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse

from app.programmes.roster_views import AccessNeeds


class Problem(BaseModel):
    detail: str
    errors: list[dict[str, str]] = []


def problem(message: str, field: str, status: int = 422) -> JSONResponse:
    return JSONResponse(
        {"detail": message, "errors": [{"field": field, "message": message}]}, status_code=status
    )


REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "The change cannot be made"}
}


class PersonOut(BaseModel):
    """A person as the API shows them: read from the roster's Person view, field for field."""

    model_config = ConfigDict(from_attributes=True)

    user_id: int
    name: str
    pronouns: str
    name_pronunciation: str


class AccessNeedsOut(BaseModel):
    """A person's access needs as the API shows them: the roster's AccessNeeds view."""

    model_config = ConfigDict(from_attributes=True)

    captions_on: bool
    large_text: bool
    high_contrast: bool
    reduced_motion: bool
    low_bandwidth: bool
    screen_reader: bool
    notes: str

    @classmethod
    def of(cls, needs: AccessNeeds) -> AccessNeedsOut:
        return cls.model_validate(needs)
