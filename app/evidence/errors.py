"""The one error evidence services raise for what a person sent: which form field to blame,
what to tell them, and the HTTP status to answer with."""

from __future__ import annotations


class EvidenceRejected(ValueError):
    """`field` and `message` name the first problem; `errors` holds every problem found
    (field -> message), so a form can show them all at once."""

    def __init__(
        self, field: str, message: str, status: int = 400, *, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status
        self.errors = errors or {field: message}
