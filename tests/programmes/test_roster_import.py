"""Roster import: both file formats, all-or-nothing with every problem reported by line,
whole-file problems explained, idempotent re-import, and updates to existing members."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from app.programmes.roster import ImportSummary, RosterRejected, import_roster
from app.programmes.roster_csv import MAX_ROSTER_BYTES
from tests.factories import add_member, make_programme, make_user

DATA = Path(__file__).resolve().parents[1] / "data"


def csv_bytes(*lines: str, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n").encode("utf-8")


async def setup(db: AsyncSession, capacity: int = 8) -> tuple[Programme, User]:
    programme = await make_programme(db, capacity=capacity)
    host = await make_user(db, name="Hana Host", email="hana@example.org")
    await add_member(db, programme, host, Role.HOST)
    await db.commit()
    return programme, host


async def run(db: AsyncSession, programme: Programme, host: User, data: bytes) -> ImportSummary:
    return await import_roster(db, programme=programme, actor=host, data=data, max_rows=5000)


async def members(db: AsyncSession, programme_id: int) -> dict[str, tuple[str, str | None]]:
    """e-mail -> (role, group name) for everyone in the programme."""
    rows = await db.execute(
        select(User.email, Membership.role, Group.name)
        .join(Membership, Membership.user_id == User.id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .where(Membership.programme_id == programme_id)
    )
    return {email: (role, group) for email, role, group in rows.tuples()}


async def facilitations(db: AsyncSession, programme_id: int) -> set[tuple[str, str]]:
    rows = await db.execute(
        select(User.email, Group.name)
        .join(GroupFacilitator, GroupFacilitator.user_id == User.id)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme_id)
    )
    return set(rows.tuples())


async def rejected(db: AsyncSession, programme: Programme, host: User, data: bytes) -> list:
    with pytest.raises(RosterRejected) as caught:
        await run(db, programme, host, data)
    return caught.value.errors


async def test_our_format_with_bom_any_case_headers_and_roles(db: AsyncSession) -> None:
    programme, host = await setup(db)
    summary = await run(db, programme, host, (DATA / "roster_example.csv").read_bytes())
    assert (summary.format, summary.created, summary.new_accounts) == ("roundtable", 5, 5)
    assert summary.groups_created == ["Birch"]
    people = await members(db, programme.id)
    assert people["ben.carter@example.org"] == ("participant", "Birch")
    assert people["chen.li@example.org"] == ("participant", "Birch")  # role defaults
    assert people["dara.byrne@example.org"] == ("it_support", None)
    assert people["emma.jones@example.org"] == ("observer", None)
    # A facilitator row with a group facilitates it rather than joining it.
    assert people["asha.okafor@example.org"] == ("facilitator", None)
    assert await facilitations(db, programme.id) == {("asha.okafor@example.org", "Birch")}
    pronouns = await db.scalar(select(User.pronouns).where(User.email == "chen.li@example.org"))
    assert pronouns == "they/them"

    data = csv_bytes("NAME, E-Mail ,Role", "Ann,ANN@Example.org,Facilitator", bom=True)
    summary = await run(db, programme, host, data)
    assert summary.created == 1
    assert (await members(db, programme.id))["ann@example.org"] == ("facilitator", None)


async def test_zoom_breakout_file(db: AsyncSession) -> None:
    programme, host = await setup(db)
    known = await make_user(db, name="Samira Smith", email="Sam_Smith@example.org")
    await db.commit()
    summary = await run(db, programme, host, (DATA / "zoom_breakout.csv").read_bytes())
    assert summary.format == "zoom"
    assert summary.created == 3 and summary.new_accounts == 2
    assert sorted(summary.groups_created) == ["room1", "room2"]
    people = await members(db, programme.id)
    assert people["jo.bloggs@example.org"] == ("participant", "room1")
    assert people["Sam_Smith@example.org"] == ("participant", "room1")  # matched ignoring case
    assert people["kim-lee+webinar@example.org"] == ("participant", "room2")
    rows = await db.execute(select(User.email, User.display_name))
    names = {email: name for email, name in rows.tuples()}
    assert names["jo.bloggs@example.org"] == "Jo Bloggs"
    assert names["kim-lee+webinar@example.org"] == "Kim Lee"
    assert names["Sam_Smith@example.org"] == "Samira Smith"  # an account keeps its own name
    assert known.id


async def test_bad_file_imports_nothing_and_reports_every_bad_row(db: AsyncSession) -> None:
    programme, host = await setup(db, capacity=2)
    too_long = "x" * 101
    data = csv_bytes(
        "name,email,pronouns,role,group",
        "Good Person,good@example.org,,,",  # 2: fine
        ",noname@example.org,,,",  # 3: missing name
        "Bad Mail,not-an-email,,,",  # 4: invalid e-mail
        "Again,GOOD@example.org,,,",  # 5: duplicate of line 2
        "Chief,chief@example.org,,wizard,",  # 6: unknown role
        f"{too_long},long@example.org,,,",  # 7: name too long
        "A,a@example.org,,participant,Tiny",  # 8: fine
        "B,b@example.org,,participant,Tiny",  # 9: fine (2 of 2)
        "C,c@example.org,,participant,Tiny",  # 10: over capacity
        "Hostess,hostess@example.org,,host,Tiny",  # 11: a host has no group
        "Stray,stray@example.org,,,,extra",  # 12: a value without a heading
    )
    errors = await rejected(db, programme, host, data)
    by_line = {}
    for e in errors:
        by_line.setdefault(e.line, []).append((e.field, e.message))
    assert sorted(by_line) == [3, 4, 5, 6, 7, 10, 11, 12]
    assert by_line[3] == [("name", "Name is missing.")]
    assert by_line[4][0][0] == "email" and "not a valid e-mail address" in by_line[4][0][1]
    assert "also on line 2" in by_line[5][0][1]
    assert by_line[6][0][0] == "role" and 'Unknown role "wizard"' in by_line[6][0][1]
    assert "101 characters" in by_line[7][0][1] and "limit is 100" in by_line[7][0][1]
    assert 'Group "Tiny" would be over its capacity of 2' in by_line[10][0][1]
    assert "host is not placed in a group" in by_line[11][0][1]
    assert by_line[12][0][0] == "row"
    # Nothing was written: no accounts, no memberships, no groups.
    assert await members(db, programme.id) == {"hana@example.org": ("host", None)}
    assert await db.scalar(select(func.count()).select_from(Group)) == 0
    assert await db.scalar(select(User.id).where(User.email == "good@example.org")) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ((DATA / "roster_windows1252.csv").read_bytes(), 'save it as "CSV UTF-8"'),
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf\r\n\r\n", "The file is empty"),
        (b"name,email\r\n", "nobody in it"),
        (b"name,email,notes\r\nA,a@example.org,hi\r\n", 'Unknown column "notes"'),
        (b"name,pronouns\r\nA,she/her\r\n", 'no "email" column'),
        (b"Ann,ann@example.org\r\n", "not a header row"),
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "spreadsheet workbook"),
        (bytes(range(256)) * 4, "binary data"),
        ("name,email\r\n".encode("utf-16"), "UTF-16"),
        (b"name,email\r\n" + b"x" * MAX_ROSTER_BYTES, "larger than 2 MB"),
    ],
    ids=[
        "windows-1252",
        "empty",
        "blank",
        "header-only",
        "extra-column",
        "missing-column",
        "no-header",
        "xlsx",
        "binary",
        "utf-16",
        "too-big",
    ],
)
async def test_whole_file_problems_are_explained(
    db: AsyncSession, data: bytes, expected: str
) -> None:
    programme, host = await setup(db)
    errors = await rejected(db, programme, host, data)
    assert len(errors) == 1
    assert expected in errors[0].message
    assert await members(db, programme.id) == {"hana@example.org": ("host", None)}


async def test_windows_1252_message_says_which_line_and_how_to_fix(db: AsyncSession) -> None:
    programme, host = await setup(db)
    errors = await rejected(db, programme, host, (DATA / "roster_windows1252.csv").read_bytes())
    assert "line 2" in errors[0].message
    assert "CSV UTF-8 (Comma delimited)" in errors[0].message


async def test_too_many_rows(db: AsyncSession) -> None:
    programme, host = await setup(db)
    data = csv_bytes("name,email", *(f"P{i},p{i}@example.org" for i in range(4)))
    with pytest.raises(RosterRejected) as caught:
        await import_roster(db, programme=programme, actor=host, data=data, max_rows=3)
    assert "more than 3 people" in caught.value.errors[0].message
    summary = await import_roster(db, programme=programme, actor=host, data=data, max_rows=4)
    assert summary.created == 4


async def test_reimport_is_idempotent_and_updates_what_changed(db: AsyncSession) -> None:
    programme, host = await setup(db)
    data = (DATA / "roster_example.csv").read_bytes()
    await run(db, programme, host, data)
    again = await run(db, programme, host, data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert again.groups_created == []
    assert await db.scalar(select(func.count()).select_from(Membership)) == 6
    assert await db.scalar(select(func.count()).select_from(User)) == 6
    assert await db.scalar(select(func.count()).select_from(Group)) == 1

    changed = csv_bytes(
        "name,email,role,group",
        "Ben Carter,ben.carter@example.org,participant,Cedar",  # moves group
        "Chen Li,chen.li@example.org,facilitator,Cedar",  # participant -> facilitator
        "Asha Okafor,asha.okafor@example.org,participant,",  # facilitator -> participant
        "Dara Byrne,dara.byrne@example.org,,",  # no role given: keeps IT support
        "Hana Host,HANA@example.org,,",  # the host, unchanged
    )
    summary = await run(db, programme, host, changed)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 3, 2)
    people = await members(db, programme.id)
    assert people["ben.carter@example.org"] == ("participant", "Cedar")
    assert people["chen.li@example.org"] == ("facilitator", None)
    assert people["asha.okafor@example.org"] == ("participant", None)
    assert people["dara.byrne@example.org"] == ("it_support", None)
    assert people["hana@example.org"] == ("host", None)
    assert await facilitations(db, programme.id) == {("chen.li@example.org", "Cedar")}


async def test_host_cannot_demote_themselves_by_import(db: AsyncSession) -> None:
    programme, host = await setup(db)
    errors = await rejected(
        db, programme, host, csv_bytes("name,email,role", "Me,hana@example.org,participant")
    )
    assert errors[0].line == 2 and "cannot change your own role" in errors[0].message


async def test_existing_member_moving_out_frees_a_place(db: AsyncSession) -> None:
    """Capacity is checked on the groups as they will be after the import."""
    programme, host = await setup(db, capacity=2)
    await run(
        db, programme, host, csv_bytes("name,email,group", "A,a@example.org,G", "B,b@example.org,G")
    )
    swap = csv_bytes("name,email,group", "A,a@example.org,H", "C,c@example.org,G")
    summary = await run(db, programme, host, swap)
    assert (summary.created, summary.updated) == (1, 1)
    people = await members(db, programme.id)
    assert [people[e][1] for e in ("a@example.org", "b@example.org", "c@example.org")] == [
        "H",
        "G",
        "G",
    ]
