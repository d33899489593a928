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

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from starlette.responses import RedirectResponse, Response

from app.db import utcnow
from app.deps import GroupContext, GroupIdPath, SessionDep
from app.evidence import fields, service
from app.evidence.errors import EvidenceRejected
from app.evidence.models import EvidenceKind, Visibility
from app.evidence.notes import NOTE_MAX
from app.live import channels
from app.live.channels import Seat
from app.live.console import meeting_channel, room_people, room_requests, rooms_overview
from app.live.controls import people
from app.live.deps import SeatOf
from app.live.help_queries import console_list_id
from app.live.local_time import clock
from app.live.rooms import programme_groups
from app.live.snapshot import channel_view, settings_of
from app.live.web import BASE, base_url, wants_fragment
from app.models import Group
from app.state import get_app_state
from app.templating import render

router = APIRouter(tags=["pages: live consoles"])

CONSOLE = BASE + "/console"
HOST_CONSOLE = BASE + "/host"
# The people panel and the host's table of rooms are redrawn this often (seconds).
PEOPLE_REFRESH_SECONDS = 10
ROOMS_REFRESH_SECONDS = 5


@dataclass
class ConsoleSeat:
    seat: Seat
    group: Group


async def console_access(seat: SeatOf, group_id: GroupIdPath, db: SessionDep) -> ConsoleSeat:
    """A group's console: its facilitators and the programme's hosts."""
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != seat.ctx.programme.id:
        raise HTTPException(status_code=404, detail="We could not find that group.")
    if not (seat.is_host or group.id in seat.facilitated):
        raise HTTPException(
            status_code=403,
            detail="Only this group's facilitators and the programme's hosts can open its console.",
        )
    return ConsoleSeat(seat=seat, group=group)


ConsoleOf = Annotated[ConsoleSeat, Depends(console_access)]


def require_host(seat: Seat) -> None:
    if not seat.is_host:
        raise HTTPException(
            status_code=403, detail="Only the programme's hosts can open the host console."
        )


def console_url(seat: Seat, group_id: int) -> str:
    return f"{base_url(seat)}/console/{group_id}"


def deadline_of(seat: Seat) -> Any:
    if seat.breakout is None:
        return None
    return seat.breakout.closes_at or seat.breakout.ends_at


async def followed(db: SessionDep, seat: Seat) -> dict[str, Any]:
    """The channels a console follows: the same as the person's live page (a facilitator's
    help desk has their groups' hands and requests, a host's every one)."""
    help_channel = seat.help_desk
    if help_channel is None:
        # Consoles are for facilitators and hosts, who all have one.
        raise HTTPException(status_code=403, detail="Consoles are for facilitators and hosts.")
    return {
        "current": await channel_view(db, seat=seat, channel=seat.current),
        "personal": await channel_view(db, seat=seat, channel=channels.personal(seat.user_id)),
        "help_desk": await channel_view(db, seat=seat, channel=help_channel),
    }


# -- the facilitator's console --


async def people_context(request: Request, db: SessionDep, access: ConsoleSeat) -> dict[str, Any]:
    state = get_app_state(request)
    return {
        "group": access.group,
        "here": await room_people(
            db,
            seat=access.seat,
            group=access.group,
            presence=state.presence,
            speaking=state.speaking,
        ),
        "console": console_url(access.seat, access.group.id),
        "refresh_seconds": PEOPLE_REFRESH_SECONDS,
    }


async def facilitator_context(
    request: Request,
    db: SessionDep,
    access: ConsoleSeat,
    *,
    note_values: dict[str, str] | None = None,
    note_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    seat, group = access.seat, access.group
    room = channels.room(seat.session.id, group.id)
    return {
        "seat": seat,
        "group": group,
        "base": base_url(seat),
        "console": console_url(seat, group.id),
        "room_channel": room,
        "meets_in": meeting_channel(seat, group),
        "deadline": deadline_of(seat),
        "requests": await room_requests(db, seat=seat, group=group),
        "hands_list": console_list_id("hand", group.id),
        "help_list": console_list_id("help", group.id),
        "room_settings": await settings_of(db, room),
        "room_people": await people(db, seat=seat, channel=room),
        "note_values": note_values or {"title": "", "markdown": "", "visibility": "group"},
        "note_errors": note_errors or {},
        "visibilities": list(Visibility),
        "note_max": NOTE_MAX,
        **await followed(db, seat),
        **await people_context(request, db, access),
    }


@router.get(CONSOLE)
async def console_choice(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """Which group's console: straight there for a facilitator of one group."""
    groups = await programme_groups(db, seat.ctx.programme.id)
    mine = [g for g in groups if seat.is_host or g.id in seat.facilitated]
    if not mine:
        raise HTTPException(
            status_code=403,
            detail="The console is for the groups' facilitators and the programme's hosts.",
        )
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
        item = await service.create_written(
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


# -- the host's console --


async def host_context(request: Request, db: SessionDep, seat: Seat) -> dict[str, Any]:
    groups = await programme_groups(db, seat.ctx.programme.id)
    context: dict[str, Any] = {
        "seat": seat,
        "base": base_url(seat),
        "groups": groups,
        "people": await people(db, seat=seat),
        "deadline": deadline_of(seat),
        "rows": await rooms_overview(
            db,
            seat=seat,
            presence=get_app_state(request).presence,
            speaking=get_app_state(request).speaking,
            groups=groups,
        ),
        "refresh_seconds": ROOMS_REFRESH_SECONDS,
        # live/_host_controls.html (shared with the live page) leaves its table to ours.
        "in_console": True,
        **await followed(db, seat),
    }
    if seat.breakout is not None:
        context["enter_groups"] = groups
    return context


@router.get(HOST_CONSOLE)
async def host_console(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    require_host(seat)
    context = await host_context(request, db, seat)
    context["title"] = f"Host console: {seat.session.title}"
    return render(request, "consoles/host.html", context)


@router.get(HOST_CONSOLE + "/room")
async def host_console_room(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """The host console drawn again, when rooms open or close, or to resync."""
    require_host(seat)
    return render(request, "consoles/_host.html", await host_context(request, db, seat))


@router.get(HOST_CONSOLE + "/rooms")
async def host_console_rooms(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """Every room's table row, redrawn every few seconds."""
    require_host(seat)
    groups = await programme_groups(db, seat.ctx.programme.id)
    rows = await rooms_overview(
        db,
        seat=seat,
        presence=get_app_state(request).presence,
        speaking=get_app_state(request).speaking,
        groups=groups,
    )
    return render(
        request,
        "consoles/_rooms.html",
        {"rows": rows, "base": base_url(seat), "refresh_seconds": ROOMS_REFRESH_SECONDS},
    )
