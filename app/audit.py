"""The audit log: who did what, to what, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import AuditEntry, User


def record(
    db: AsyncSession | Session,
    *,
    actor: User | None,
    action: str,
    programme_id: int | None = None,
    target: str = "",
    **detail: Any,
) -> AuditEntry:
    """Add an audit entry to the current transaction (it commits with the change it records)."""
    entry = AuditEntry(
        actor_id=actor.id if actor else None,
        programme_id=programme_id,
        action=action,
        target=target[:100],
        detail=detail,
    )
    db.add(entry)
    return entry
