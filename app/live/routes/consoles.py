"""Consoles for a live session: a facilitator's view of their group's room, and the host's
view across every room.

Both are drawn from what the live page already has (presence, speaking marks, the help
desk, room settings) and act through the live page's own action routes (hands and help,
moderation, breakouts, broadcast, moves: app/live/routes/actions.py), so every rule is
checked in one place. They follow the same channels as the person's live page (their
room, their own channel, the help desk), over the same transports (static/js/live.js),
so having a console open counts as being where one already is, never as being in a
room one is watching. What only polling can show them (who is in a room one is not in,
who speaks there) is redrawn every few seconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from app.access import GroupContext
from app.db import utcnow
from app.deps import GroupIdPath, SessionDep
from app.evidence import actions, fields
from app.evidence.errors import EvidenceRejected
from app.evidence.models import EvidenceKind, Visibility
from app.evidence.notes import NOTE_MAX
from app.live.channels import Seat
from app.live.console import console_groups, open_console, require_host_console
from app.live.console_views import (
    ConsoleSeat,
    console_url,
    facilitator_context,
    host_context,
    people_context,
    rooms_context,
)
from app.live.deps import SeatOf
from app.live.local_time import clock
from app.live.rooms import programme_groups
from app.live.web import BASE, base_url, wants_fragment
from app.templating import render

router = APIRouter(tags=["pages: live consoles"])

CONSOLE = BASE + "/console"
HOST_CONSOLE = BASE + "/host"


async def console_access(seat: SeatOf, group_id: GroupIdPath, db: SessionDep) -> ConsoleSeat:
    return ConsoleSeat(seat=seat, group=await open_console(db, seat=seat, group_id=group_id))


async def host_console_access(seat: SeatOf) -> Seat:
    require_host_console(seat)
    return seat


ConsoleOf = Annotated[ConsoleSeat, Depends(console_access)]
HostConsoleOf = Annotated[Seat, Depends(host_console_access)]


@router.get(CONSOLE)
async def console_choice(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """Which group's console: straight there for a facilitator of one group."""
    mine = await console_groups(db, seat=seat)
    if len(mine) == 1 and not seat.is_host:
        return RedirectResponse(console_url(seat, mine[0].id), status_code=303)
    return render(
        request,
        "consoles/choose.html",
        {
            "title": f"Consoles: {seat.session.title}",
            "seat": seat,
            "groups": mine,
            "base": base_url(seat),
        },
    )


@router.get(CONSOLE + "/{group_id}")
async def facilitator_console(
    request: Request,
    access: ConsoleOf,
    db: SessionDep,
    saved: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    context = await facilitator_context(request, db, access)
    context["title"] = f"Console: {access.group.name}, {access.seat.session.title}"
    if saved:
        context["flash_messages"] = [f"Your note is on {access.group.name}'s evidence board."]
    return render(request, "consoles/facilitator.html", context)


@router.get(CONSOLE + "/{group_id}/room")
async def facilitator_console_room(request: Request, access: ConsoleOf, db: SessionDep) -> Response:
    """The console drawn again, when rooms open or close, or to resync."""
    context = await facilitator_context(request, db, access)
    return render(request, "consoles/_facilitator.html", context)


@router.get(CONSOLE + "/{group_id}/people")
async def facilitator_console_people(
    request: Request, access: ConsoleOf, db: SessionDep
) -> Response:
    """Who is here, redrawn every few seconds and when presence changes."""
    context = await people_context(request, db, access)
    return render(request, "consoles/_people.html", context)


NoteTitle = Annotated[str, Form(max_length=1_000)]
NoteText = Annotated[str, Form(max_length=2 * NOTE_MAX + 100)]
Short = Annotated[str, Form(max_length=40)]


def quick_note_title(seat: Seat) -> str:
    when = clock(utcnow(), seat.ctx.programme.timezone)
    return f"Quick note, {seat.session.title}, {when}"[: fields.TITLE_MAX]


@router.post(CONSOLE + "/{group_id}/notes")
async def quick_note(
    request: Request,
    access: ConsoleOf,
    db: SessionDep,
    markdown: NoteText = "",
    title: NoteTitle = "",
    visibility: Short = Visibility.GROUP.value,
) -> Response:
    """A note typed during the session, saved to the group's evidence board with the
    session set (the same service, checks and audit as the board's own note form)."""
    seat, group = access.seat, access.group
    gctx = GroupContext(ctx=seat.ctx, group=group, is_facilitator=group.id in seat.facilitated)
    try:
        item = await actions.create_written(
            db,
            gctx=gctx,
            actor=seat.ctx.user,
            kind=EvidenceKind.NOTE,
            title=title.strip() or quick_note_title(seat),
            content=markdown,
            description="",
            session_id=seat.session.id,
            from_trio=False,
            visibility=visibility,
        )
    except EvidenceRejected as exc:
        if wants_fragment(request):
            message = " ".join(exc.errors.values())
            return Response(message, status_code=exc.status, media_type="text/plain")
        values = {"title": title, "markdown": markdown, "visibility": visibility}
        context = await facilitator_context(
            request, db, access, note_values=values, note_errors=exc.errors
        )
        context["title"] = f"Console: {group.name}, {seat.session.title}"
        return render(request, "consoles/facilitator.html", context, status_code=exc.status)
    message = f"Saved to {group.name}'s evidence board: “{item.title}”."
    if wants_fragment(request):
        return Response(message, media_type="text/plain")
    return RedirectResponse(console_url(seat, group.id) + "?saved=1#quick-note", status_code=303)


@router.get(HOST_CONSOLE)
async def host_console(request: Request, seat: HostConsoleOf, db: SessionDep) -> Response:
    context = await host_context(request, db, seat)
    context["title"] = f"Host console: {seat.session.title}"
    return render(request, "consoles/host.html", context)


@router.get(HOST_CONSOLE + "/room")
async def host_console_room(request: Request, seat: HostConsoleOf, db: SessionDep) -> Response:
    """The host console drawn again, when rooms open or close, or to resync."""
    return render(request, "consoles/_host.html", await host_context(request, db, seat))


@router.get(HOST_CONSOLE + "/rooms")
async def host_console_rooms(request: Request, seat: HostConsoleOf, db: SessionDep) -> Response:
    """Every room's table row, redrawn every few seconds."""
    groups = await programme_groups(db, seat.ctx.programme.id)
    context = await rooms_context(request, db, seat, groups)
    return render(request, "consoles/_rooms.html", context)
