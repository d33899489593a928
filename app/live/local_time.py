"""Times as the programme's people read them: on the programme's clock, not the server's."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def clock(when: datetime, timezone: str) -> str:
    """`when` as hours and minutes in the programme's time zone ("14:05")."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
