"""The host's roster page, drawn with the outcome of whatever was just done: shared by the
roster's and the groups' forms."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.access import ProgrammeContext
from app.config import Settings
from app.models import Role
from app.programmes.auto_assign import AssignSummary
from app.programmes.invite_batches import IssuedLink
from app.programmes.roster import MAX_ROSTER_BYTES, ImportSummary, RowError
from app.programmes.roster_views import list_groups, list_members
from app.state import get_app_state
from app.templating import render

SECRET_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def roster_url(programme_id: int, done: str, anchor: str = "") -> str:
    return f"/programmes/{programme_id}/roster?done={done}" + (f"#{anchor}" if anchor else "")


async def render_roster(
    request: Request,
    ctx: ProgrammeContext,
    db: AsyncSession,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    flash: Sequence[str] = (),
    import_errors: Sequence[RowError] = (),
    import_summary: ImportSummary | None = None,
    assign_summary: AssignSummary | None = None,
    issued_links: Sequence[IssuedLink] = (),
    values: dict[str, str] | None = None,
) -> Response:
    """The roster page, with the outcome of whatever was just done."""
    programme = ctx.programme
    settings: Settings = get_app_state(request).settings
    members = await list_members(db, programme=programme, with_invitations=True)
    groups = await list_groups(db, programme=programme)
    participants = [m for m in members if m.role is Role.PARTICIPANT]
    context = {
        "title": f"Roster · {programme.title}",
        "programme": programme,
        "ctx": ctx,
        "members": members,
        "groups": groups,
        "participant_count": len(participants),
        "unassigned_count": sum(1 for m in participants if m.group_id is None),
        "facilitator_choices": [m for m in members if m.role in (Role.FACILITATOR, Role.HOST)],
        "errors": errors or {},
        "flash_messages": list(flash),
        "import_errors": import_errors,
        "import_summary": import_summary,
        "assign_summary": assign_summary,
        "issued_links": issued_links,
        "values": values or {},
        "max_rows": settings.max_csv_rows,
        "invite_days": settings.invite_max_age_days,
        "max_mb": MAX_ROSTER_BYTES // (1024 * 1024),
        "timezone": programme.timezone,
    }
    response = render(request, "roster/roster.html", context, status_code=status_code)
    if issued_links:
        response.headers.update(SECRET_HEADERS)
    return response
