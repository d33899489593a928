"""Roster import (CSV upload) and personal invitation links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import JSONResponse, Response

from app.deps import HostOf, SessionDep, SettingsDep, SignerDep
from app.live.deps import LiveDep
from app.people.invitations import InvitationRefused
from app.programmes.invite_batches import issue_links, unknown_membership_ids
from app.programmes.roster import MAX_ROSTER_BYTES, RosterRejected, import_roster
from app.refusals import Conflict

router = APIRouter(tags=["roster"])

DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ImportOut(BaseModel):
    format: Literal["roundtable", "zoom"]
    rows: int = Field(description="People in the file")
    created: int = Field(description="People added to the programme")
    updated: int = Field(description="Members whose role, group or facilitation changed")
    unchanged: int
    new_accounts: int = Field(description="Of those added, people new to Roundtable")
    requested: int = Field(
        description="Of those added, people with an account elsewhere who have been asked to "
        "join: they become members when they accept"
    )
    groups_created: list[str]


class RowProblem(BaseModel):
    line: int | None = Field(description="Line in the file (the header is line 1); null: the file")
    field: str = Field(description="A column (name, email, ...), 'header', 'row' or 'file'")
    message: str


class ImportRejectedOut(BaseModel):
    detail: str
    errors: list[RowProblem]


@router.post(
    "/programmes/{programme_id}/roster",
    response_model=ImportOut,
    responses={422: {"model": ImportRejectedOut, "description": "Nothing was imported"}},
)
async def api_import_roster(
    ctx: HostOf,
    db: SessionDep,
    settings: SettingsDep,
    live: LiveDep,
    file: Annotated[UploadFile, File(description="The roster as a UTF-8 CSV file")],
) -> Any:
    """Import a roster: our columns (name, email, pronouns, role, group) or Zoom's breakout
    pre-assignment file. All or nothing: a file with any problem imports nobody, and every
    problem is listed with its line number."""
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
        body = ImportRejectedOut(
            detail=f"Nothing was imported: {len(rejected.errors)} problem(s) in the file.",
            errors=[
                RowProblem(line=e.line, field=e.field, message=e.message) for e in rejected.errors
            ],
        )
        return JSONResponse(body.model_dump(), status_code=422)
    return ImportOut(
        format="zoom" if summary.format == "zoom" else "roundtable",
        rows=summary.rows,
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        new_accounts=summary.new_accounts,
        requested=summary.requested,
        groups_created=summary.groups_created,
    )


class InvitationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    membership_ids: list[DbId] | None = Field(default=None, min_length=1, max_length=5000)
    all_without_live_link: bool = Field(
        default=False, description="Everyone (but you) who has no live link yet"
    )

    @model_validator(mode="after")
    def _one_choice(self) -> InvitationsIn:
        if (self.membership_ids is None) == (not self.all_without_live_link):
            raise ValueError('Give either "membership_ids" or "all_without_live_link": true.')
        return self


class InvitationOut(BaseModel):
    membership_id: int
    user_id: int
    name: str
    email: str
    group: str
    link: str = Field(description="Secret: shown only now; a new link revokes earlier ones")
    expires_at: datetime


class InvitationsOut(BaseModel):
    invitations: list[InvitationOut]


@router.post(
    "/programmes/{programme_id}/invitations",
    response_model=InvitationsOut,
    responses={422: {"description": "Unknown members"}},
)
async def api_issue_invitations(
    body: InvitationsIn,
    ctx: HostOf,
    db: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    live: LiveDep,
    response: Response,
) -> Any:
    """Make personal sign-in links. The links are returned only in this response."""
    if body.membership_ids is not None:
        unknown = await unknown_membership_ids(
            db, programme=ctx.programme, membership_ids=body.membership_ids
        )
        if unknown:
            listed = ", ".join(str(i) for i in unknown[:20])
            message = f"These are not members of this programme: {listed}."
            return JSONResponse(
                {"detail": message, "errors": [{"field": "membership_ids", "message": message}]},
                status_code=422,
            )
    try:
        links = await issue_links(
            db,
            live,
            programme=ctx.programme,
            actor=ctx.user,
            signer=signer,
            base_url=settings.base_url,
            valid_days=settings.invite_max_age_days,
            membership_ids=body.membership_ids,
        )
    except InvitationRefused as refused:
        raise Conflict(refused.message) from refused
    response.headers["Cache-Control"] = "no-store"
    return InvitationsOut(
        invitations=[
            InvitationOut(
                membership_id=link.membership_id,
                user_id=link.user_id,
                name=link.name,
                email=link.email,
                group=link.group,
                link=link.link,
                expires_at=link.expires_at,
            )
            for link in links
        ]
    )
