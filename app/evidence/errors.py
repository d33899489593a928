"""The one error evidence services raise for what a person sent: which form field to blame,
what to tell them, and the HTTP status to answer with. It is a refusal (`app.refusals`):
a form that can show it beside its field catches it; anywhere else the one handler
answers it."""

from __future__ import annotations

from app.refusals import Refused


class EvidenceRejected(Refused):
    """`field` and `message` name the first problem; `errors` holds every problem found
    (field -> message), so a form can show them all at once."""

    def __init__(
        self, field: str, message: str, status: int = 400, *, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, status=status, code="rejected")
        self.field = field
        self.errors = errors or {field: message}
