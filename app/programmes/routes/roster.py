"""The host's roster page: import a CSV, place people in groups, move them, look after the
groups and hand out invitation links. Every form works without JavaScript."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from app.deps import HostMembershipOf, HostOf, SessionDep, SettingsDep, SignerDep
from app.live.deps import LiveDep
from app.numbers import is_digits
from app.people.invitations import InvitationRefused
from app.programmes.auto_assign import AssignSummary, auto_assign
from app.programmes.grouping import GroupingError, get_group
from app.programmes.invite_batches import issue_links, links_csv
from app.programmes.placement import move_member
from app.programmes.roster import (
    MAX_ROSTER_BYTES,
    RosterRejected,
    import_roster,
)
from app.programmes.roster_page import SECRET_HEADERS, render_roster, roster_url

router = APIRouter(tags=["pages: roster"])

# Outcomes of actions that redirect back to the roster (?done=<code>): fixed messages only,
# so nothing from the address is ever shown on the page.
DONE_MESSAGES = {
    "moved": "The person has been moved.",
    "unassigned": "The person is no longer in a group.",
    "group_created": "The group has been created.",
    "group_saved": "The group has been saved.",
    "facilitator_added": "The facilitator has been added to the group.",
    "facilitator_removed": "The facilitator has been removed from the group.",
}


@router.get("/programmes/{programme_id}/roster")
async def roster_page(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    done: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    flash = [DONE_MESSAGES[done]] if done in DONE_MESSAGES else []
    return await render_roster(request, ctx, db, flash=flash)


@router.post("/programmes/{programme_id}/roster/import")
async def import_roster_form(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    settings: SettingsDep,
    live: LiveDep,
    file: Annotated[UploadFile | None, File(description="The roster, as a CSV file")] = None,
) -> Response:
    if file is None or not file.filename:
        return await render_roster(
            request,
            ctx,
            db,
            status_code=400,
            errors={"file": "Choose a CSV file to import."},
        )
    data = await file.read(MAX_ROSTER_BYTES + 1)
    try:
        summary = await import_roster(
            db,
            live=live,
            programme=ctx.programme,
            actor=ctx.user,
            data=data,
            max_rows=settings.max_csv_rows,
        )
    except RosterRejected as rejected:
        return await render_roster(
            request,
            ctx,
            db,
            status_code=400,
            errors={"file": rejection_message(rejected)},
            import_errors=rejected.errors,
        )
    flash = [
        f"The roster has been imported: {summary.created} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged."
    ]
    if summary.requested:
        flash.append(
            f"{summary.requested} of the people added already have a Roundtable account of their "
            "own, so they have been asked to join: they become members when they accept, and "
            "they sign in as they usually do (no invitation link is needed or possible)."
        )
    return await render_roster(request, ctx, db, flash=flash, import_summary=summary)


def rejection_message(rejected: RosterRejected) -> str:
    rows = {e.line for e in rejected.errors if e.line is not None}
    if len(rejected.errors) == 1:
        only = rejected.errors[0]
        where = f"Line {only.line}: " if only.line is not None else ""
        return f"Nothing was imported. {where}{only.message}"
    return (
        f"Nothing was imported: the file has {len(rejected.errors)} problems on "
        f"{len(rows)} line{'s' if len(rows) != 1 else ''}, listed below. Correct them all "
        "and import the file again."
    )


@router.post("/programmes/{programme_id}/roster/auto-assign")
async def auto_assign_form(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    live: LiveDep,
    mode: Annotated[str, Form(max_length=20)] = "",
    assign_facilitators: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if mode not in ("fill", "reshuffle"):
        return await render_roster(
            request,
            ctx,
            db,
            status_code=400,
            errors={"mode": "Choose whether to keep the groups people are in, or reshuffle."},
        )
    summary = await auto_assign(
        db,
        programme=ctx.programme,
        actor=ctx.user,
        mode="fill" if mode == "fill" else "reshuffle",
        assign_facilitators=assign_facilitators == "on",
        live=live,
    )
    return await render_roster(
        request, ctx, db, flash=[assign_message(summary)], assign_summary=summary
    )


def assign_message(summary: AssignSummary) -> str:
    if summary.placed == 0:
        return "Everyone was already in a group; nobody was moved." + (
            f" {summary.facilitators_assigned} facilitator(s) were given a group."
            if summary.facilitators_assigned
            else ""
        )
    parts = [
        f"{summary.placed} participant{'s' if summary.placed != 1 else ''} placed in groups",
    ]
    if summary.groups_created:
        parts.append(f"{len(summary.groups_created)} new group(s) created")
    if summary.facilitators_assigned:
        parts.append(f"{summary.facilitators_assigned} group(s) given a facilitator")
    return "Done: " + "; ".join(parts) + "."


@router.post("/programmes/{programme_id}/members/{membership_id}/move")
async def move_member_form(
    request: Request,
    ctx: HostOf,
    membership: HostMembershipOf,
    db: SessionDep,
    live: LiveDep,
    group_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    field = f"group-{membership.id}"
    group = None
    if group_id.strip():
        raw = group_id.strip()
        found = (
            await get_group(db, programme_id=ctx.programme.id, group_id=int(raw))
            if is_digits(raw) and len(raw) <= 10
            else None
        )
        if found is None:
            return await render_roster(
                request, ctx, db, status_code=400, errors={field: "Choose a group from the list."}
            )
        group = found
    try:
        await move_member(
            db,
            programme=ctx.programme,
            actor=ctx.user,
            membership=membership,
            group=group,
            live=live,
        )
    except GroupingError as exc:
        return await render_roster(request, ctx, db, status_code=400, errors={field: exc.message})
    done = "moved" if group else "unassigned"
    return RedirectResponse(
        roster_url(ctx.programme.id, done, f"member-{membership.id}"), status_code=303
    )


@router.post("/programmes/{programme_id}/members/{membership_id}/invitation")
async def invite_one_form(
    request: Request,
    ctx: HostOf,
    membership: HostMembershipOf,
    db: SessionDep,
    live: LiveDep,
    settings: SettingsDep,
    signer: SignerDep,
) -> Response:
    try:
        links = await issue_links(
            db,
            live,
            programme=ctx.programme,
            actor=ctx.user,
            signer=signer,
            base_url=settings.base_url,
            valid_days=settings.invite_max_age_days,
            membership_ids=[membership.id],
        )
    except InvitationRefused as refused:
        return await render_roster(request, ctx, db, status_code=409, flash=[refused.message])
    flash = [
        "A new invitation link has been made; any earlier link for this person no longer works."
    ]
    return await render_roster(request, ctx, db, flash=flash, issued_links=links)


@router.post("/programmes/{programme_id}/roster/invitations")
async def invite_everyone_form(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    live: LiveDep,
    output: Annotated[str, Form(max_length=10)] = "page",
) -> Response:
    links = await issue_links(
        db,
        live,
        programme=ctx.programme,
        actor=ctx.user,
        signer=signer,
        base_url=settings.base_url,
        valid_days=settings.invite_max_age_days,
    )
    if not links:
        return await render_roster(
            request,
            ctx,
            db,
            flash=[
                "Everyone who signs in with a link already has a live one. People with a "
                "password, or in other programmes too, sign in their own way."
            ],
        )
    if output == "csv":
        body = links_csv(links, timezone=ctx.programme.timezone)
        filename = f"invitations-programme-{ctx.programme.id}.csv"
        return Response(
            # A byte-order mark so that Excel reads the file as UTF-8.
            content="\ufeff" + body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', **SECRET_HEADERS},
        )
    flash = [f"{len(links)} invitation link{'s have' if len(links) != 1 else ' has'} been made."]
    return await render_roster(request, ctx, db, flash=flash, issued_links=links)
