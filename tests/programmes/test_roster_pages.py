"""The roster and group pages as a host, facilitator and participant use them, including the
issue's acceptance scenario: import 80 people, auto-assign 10 groups of 8, move someone (a move
into a full group is refused), and every participant finds their group and facilitator."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Role, User
from tests.factories import add_member, make_programme, make_user, make_world

CSV = "text/csv"


class FormReader(HTMLParser):
    """The fields a browser would send for the form with a given action (defaults only)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("action") == self.action and not self.found:
            self.inside = self.found = True
        elif not self.inside:
            return
        elif tag == "input" and "name" in a:
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            if a.get("type") != "file":
                self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select, self.first_option = a["name"], None
        elif tag == "option" and self.select:
            if self.first_option is None:
                self.first_option = a.get("value", "")
                self.fields.setdefault(self.select, self.first_option)
            if "selected" in a:
                self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None
        if tag == "form":
            self.inside = False


def form_fields(html: str, action: str) -> dict[str, str]:
    reader = FormReader(action)
    reader.feed(html)
    assert reader.found, f"no form posting to {action}"
    return reader.fields


async def submit_form(browser: Any, page: Any, action: str, **changes: str) -> Any:
    """Send a form from the page as a browser would: its own fields (CSRF token included)
    with the person's changes; a changed field must exist in the form."""
    fields = form_fields(page.text, action)
    for name in changes:
        assert name in fields, f"the form {action} has no field {name!r}: {sorted(fields)}"
    return await browser.post(action, data={**fields, **changes})


def roster_csv(participants: int, facilitators: int) -> bytes:
    lines = ["Name,Email,Pronouns,Role"]
    lines += [
        f"Facilitator {i},fac{i}@example.org,they/them,facilitator" for i in range(facilitators)
    ]
    lines += [f"Participant {i:02},p{i}@example.org,,participant" for i in range(participants)]
    return ("\r\n".join(lines) + "\r\n").encode()


async def upload(browser: Any, programme_id: int, data: bytes, name: str = "roster.csv") -> Any:
    return await browser.submit(
        f"/programmes/{programme_id}/roster/import", {}, files={"file": (name, data, CSV)}
    )


async def group_sizes(db: AsyncSession, programme_id: int) -> dict[str, int]:
    rows = await db.execute(
        select(Group.name, func.count(Membership.id))
        .outerjoin(Membership, Membership.group_id == Group.id)
        .where(Group.programme_id == programme_id)
        .group_by(Group.id, Group.name)
    )
    return dict(list(rows.tuples()))


async def test_acceptance_import_assign_move_and_every_participant_sees_their_group(
    db: AsyncSession, browser_factory: Any
) -> None:
    programme = await make_programme(db, title="Inclusive Leadership", capacity=8)
    host = await make_user(db, name="Hana Host")
    await add_member(db, programme, host, Role.HOST)
    await db.commit()
    pid = programme.id
    as_host = browser_factory(host)

    page = await upload(as_host, pid, roster_csv(participants=80, facilitators=10))
    assert page.status_code == 200, page.text
    assert "90 added, 0 updated, 0 unchanged" in page.text

    # The form's defaults: only the unassigned, and spread the facilitators.
    page = await submit_form(as_host, page, f"/programmes/{pid}/roster/auto-assign")
    assert page.status_code == 200
    assert "80 participants placed in groups" in page.text
    assert await group_sizes(db, pid) == {f"Group {n}": 8 for n in range(1, 11)}
    per_group = await db.execute(
        select(Group.name, func.count(GroupFacilitator.user_id))
        .join(GroupFacilitator, GroupFacilitator.group_id == Group.id)
        .where(Group.programme_id == pid)
        .group_by(Group.name)
    )
    assert dict(list(per_group.tuples())) == {f"Group {n}": 1 for n in range(1, 11)}

    groups = dict(
        list(
            (
                await db.execute(select(Group.name, Group.id).where(Group.programme_id == pid))
            ).tuples()
        )
    )
    mover_id, mover_name = (
        await db.execute(
            select(Membership.id, User.display_name)
            .join(User, User.id == Membership.user_id)
            .where(Membership.group_id == groups["Group 1"])
            .limit(1)
        )
    ).one()

    # Into a full group: refused, clearly, next to the person's row; nothing changes.
    move = f"/programmes/{pid}/members/{mover_id}/move"
    refused = await submit_form(as_host, page, move, group_id=str(groups["Group 2"]))
    assert refused.status_code == 400
    assert "&#34;Group 2&#34; is full (8 of 8 places)" in refused.text
    assert f'id="error-group-{mover_id}"' in refused.text
    assert await group_sizes(db, pid) == {f"Group {n}": 8 for n in range(1, 11)}

    # A new group, and the move into it.
    created = await submit_form(as_host, refused, f"/programmes/{pid}/groups", name="Overflow")
    assert created.status_code == 303
    overflow = await db.scalar(select(Group.id).where(Group.name == "Overflow"))
    page = await as_host.get(created.headers["location"])
    assert "The group has been created." in page.text
    moved = await submit_form(as_host, page, move, group_id=str(overflow))
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/programmes/{pid}/roster?done=moved#member-{mover_id}"
    roster = await as_host.get(moved.headers["location"])
    assert "The person has been moved." in roster.text
    sizes = await group_sizes(db, pid)
    assert sizes["Group 1"] == 7 and sizes["Overflow"] == 1

    # Every participant sees their own group and its facilitator.
    people = await db.execute(
        select(User, Membership.group_id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.programme_id == pid, Membership.role == "participant")
    )
    facilitator_of = {
        gid: name
        for gid, name in (
            await db.execute(
                select(GroupFacilitator.group_id, User.display_name).join(
                    User, User.id == GroupFacilitator.user_id
                )
            )
        ).tuples()
    }
    names_by_id = {gid: name for name, gid in groups.items()} | {overflow: "Overflow"}
    checked = 0
    for user, group_id in people.tuples():
        browser = browser_factory(user)
        listing = await browser.get(f"/programmes/{pid}/groups")
        assert listing.status_code == 303
        assert listing.headers["location"] == f"/programmes/{pid}/groups/{group_id}"
        page = await browser.get(listing.headers["location"])
        assert page.status_code == 200
        assert f"<h1>{names_by_id[group_id]}</h1>" in page.text
        assert user.display_name in page.text
        if group_id != overflow:
            assert f"{facilitator_of[group_id]} (they/them)" in page.text
        else:
            assert user.display_name == mover_name
            assert "No facilitator has been assigned yet." in page.text
        checked += 1
    assert checked == 80


async def test_roster_page_is_for_hosts_only(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    pid = w.programme.id
    assert (await browser_factory(w.host).get(f"/programmes/{pid}/roster")).status_code == 200
    assert (await browser_factory(w.admin).get(f"/programmes/{pid}/roster")).status_code == 200
    for user in (w.facilitator_a, w.participant_a, w.it_support, w.observer):
        assert (await browser_factory(user).get(f"/programmes/{pid}/roster")).status_code == 403
    outsider = browser_factory(w.outsider)
    assert (await outsider.get(f"/programmes/{pid}/roster")).status_code == 404
    refused = await upload(browser_factory(w.participant_a), pid, roster_csv(1, 0))
    assert refused.status_code == 403
    assert await db.scalar(select(User.id).where(User.email == "p0@example.org")) is None


async def test_ids_from_another_programme_are_not_found(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    pid = w.programme.id
    host = browser_factory(w.host)
    other_membership = await db.scalar(
        select(Membership.id).where(Membership.user_id == w.outsider.id)
    )
    assert (await host.get(f"/programmes/{pid}/groups/{w.other_group.id}")).status_code == 404
    move = await host.submit(f"/programmes/{pid}/members/{other_membership}/move", {"group_id": ""})
    assert move.status_code == 404
    # A group of another programme named in a form is refused too.
    mine = await db.scalar(select(Membership.id).where(Membership.user_id == w.participant_a.id))
    move = await host.submit(
        f"/programmes/{pid}/members/{mine}/move", {"group_id": str(w.other_group.id)}
    )
    assert move.status_code == 400 and "Choose a group from the list." in move.text
    rename = await host.submit(
        f"/programmes/{pid}/groups/{w.other_group.id}/settings", {"name": "Mine"}
    )
    assert rename.status_code == 404
    assert await db.scalar(select(Group.name).where(Group.id == w.other_group.id)) == "Elsewhere"


async def test_failed_import_lists_every_problem_with_its_line(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    data = (
        b"name,email,role\r\n"
        b"Good,good@example.org,\r\n"
        b",missing@example.org,\r\n"
        b"Bad,bad-address,\r\n"
        b"X,x@example.org,chief\r\n"
    )
    page = await upload(host, w.programme.id, data)
    assert page.status_code == 400
    assert "Nothing was imported: the file has 3 problems on 3 lines" in page.text
    rows = re.findall(r'<tr>\s*<th scope="row">(\d+)</th>\s*<td>(\w+)</td>', page.text)
    assert rows == [("3", "name"), ("4", "email"), ("5", "role")]
    assert await db.scalar(select(User.id).where(User.email == "good@example.org")) is None


async def test_wrong_encoding_asks_for_csv_utf8(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    data = "name,email\r\nJosé,jose@example.org\r\n".encode("cp1252")
    page = await upload(browser_factory(w.host), w.programme.id, data)
    assert page.status_code == 400
    assert "not saved as UTF-8" in page.text and "CSV UTF-8" in page.text
    no_file = await browser_factory(w.host).submit(
        f"/programmes/{w.programme.id}/roster/import", {}
    )
    assert no_file.status_code == 400 and "Choose a CSV file to import." in no_file.text


async def test_invitation_links_shown_once_and_csv_escapes_formulas(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    w.participant_b.display_name = '=HYPERLINK("http://evil.example","click")'
    await db.commit()
    pid = w.programme.id
    host = browser_factory(w.host)
    page = await host.submit(f"/programmes/{pid}/roster/invitations", {"output": "page"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    links = re.findall(r'<code class="invite-link">([^<]+)</code>', page.text)
    # Everyone a link may sign in: the two participants and the observer. The facilitators and
    # IT support have passwords, and a link never signs in an account with a password.
    assert len(links) == 3
    # Nobody is left without a live link, so nothing new is made.
    again = await host.submit(f"/programmes/{pid}/roster/invitations", {"output": "csv"})
    assert "Everyone who signs in with a link already has a live one" in again.text

    # A new link for one person replaces their old one, and the CSV download carries it.
    mine = await db.scalar(select(Membership.id).where(Membership.user_id == w.participant_b.id))
    single = await host.submit(f"/programmes/{pid}/members/{mine}/invitation")
    assert len(re.findall(r'<code class="invite-link">', single.text)) == 1
    extra = await make_user(db, name="@SUM(A1:A9)", email="extra@example.org")
    await add_member(db, w.programme, extra, Role.PARTICIPANT)
    await db.commit()
    download = await host.submit(f"/programmes/{pid}/roster/invitations", {"output": "csv"})
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["name", "email", "group", "link", "expires"]
    assert rows[1][0] == "'@SUM(A1:A9)"
    assert rows[1][1] == "extra@example.org"
    assert rows[1][3].startswith("http://testserver/invite/")
    signed_in = await browser_factory().submit(rows[1][3].removeprefix("http://testserver"))
    assert signed_in.status_code == 303 and "rt_session=" in signed_in.headers["set-cookie"]


async def test_formula_cells_escaped_in_invite_csv_for_every_column(
    db: AsyncSession, browser_factory: Any
) -> None:
    programme = await make_programme(db)
    host = await make_user(db, name="Hana Host")
    await add_member(db, programme, host, Role.HOST)
    evil = await make_user(db, name="+cmd|' /C calc'!A0", email="evil@example.org")
    await add_member(db, programme, evil, Role.PARTICIPANT)
    group = Group(programme_id=programme.id, name="-2+3", position=1)
    db.add(group)
    await db.flush()
    await db.execute(
        Membership.__table__.update().where(Membership.user_id == evil.id).values(group_id=group.id)
    )
    await db.commit()
    response = await browser_factory(host).submit(
        f"/programmes/{programme.id}/roster/invitations", {"output": "csv"}
    )
    row = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))[1]
    assert row[0] == "'+cmd|' /C calc'!A0"
    assert row[2] == "'-2+3"


async def test_group_page_shows_pronunciation_and_access_needs_to_moderators_only(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    w.facilitator_a.pronouns = "he/him"
    w.facilitator_a.name_pronunciation = "FOH-lah"
    w.participant_a.captions_on = True
    w.participant_a.screen_reader = True
    w.participant_a.access_notes = "Please read slides aloud"
    await db.commit()
    url = f"/programmes/{w.programme.id}/groups/{w.group_a.id}"
    for user in (w.facilitator_a, w.host, w.admin):
        page = await browser_factory(user).get(url)
        assert page.status_code == 200
        assert "Fola Facilitator (he/him)" in page.text and "FOH-lah" in page.text
        assert "Captions, Screen reader" in page.text
        assert "Please read slides aloud" in page.text
    member_view = await browser_factory(w.participant_a).get(url)
    assert member_view.status_code == 200
    assert "Priya Participant (she/her)" in member_view.text
    assert "Please read slides aloud" not in member_view.text
    for user in (w.participant_b, w.facilitator_b, w.it_support, w.observer):
        assert (await browser_factory(user).get(url)).status_code == 403
    assert (await browser_factory(w.outsider).get(url)).status_code == 404


async def test_groups_list_by_role(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    url = f"/programmes/{w.programme.id}/groups"
    for user in (w.host, w.facilitator_b, w.it_support):
        page = await browser_factory(user).get(url)
        assert page.status_code == 200
        assert "Group A" in page.text and "Group B" in page.text
        assert "Fola Facilitator" in page.text
    redirect = await browser_factory(w.participant_b).get(url)
    assert redirect.headers["location"] == f"{url}/{w.group_b.id}"
    observer = await browser_factory(w.observer).get(url)
    assert observer.status_code == 200 and "Group A" not in observer.text
    assert "not been placed in a group" in observer.text
    assert (await browser_factory(w.outsider).get(url)).status_code == 404


async def test_group_management_forms(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    pid = w.programme.id
    host = browser_factory(w.host)
    roster = await host.get(f"/programmes/{pid}/roster")
    base = f"/programmes/{pid}/groups/{w.group_a.id}"
    assert form_fields(roster.text, f"{base}/settings")["name"] == "Group A"
    response = await submit_form(host, roster, f"{base}/settings", name="Group B")
    assert response.status_code == 400 and "already a group called" in response.text
    assert f'id="error-name-{w.group_a.id}"' in response.text
    response = await submit_form(host, roster, f"{base}/settings", name="Acorn", capacity="60")
    assert response.status_code == 400 and "from 2 to 50" in response.text
    assert f'id="error-capacity-{w.group_a.id}"' in response.text
    response = await submit_form(host, roster, f"{base}/settings", name="Acorn", capacity="4")
    assert response.status_code == 303
    row = (
        await db.execute(select(Group.name, Group.capacity).where(Group.id == w.group_a.id))
    ).one()
    assert tuple(row) == ("Acorn", 4)

    response = await submit_form(
        host, roster, f"{base}/facilitators", user_id=str(w.participant_b.id)
    )
    assert response.status_code == 400 and "facilitators and hosts" in response.text
    response = await submit_form(
        host, roster, f"{base}/facilitators", user_id=str(w.facilitator_b.id)
    )
    assert response.status_code == 303
    response = await submit_form(host, roster, f"{base}/facilitators/{w.facilitator_a.id}/remove")
    assert response.status_code == 303
    links = set(
        await db.scalars(
            select(GroupFacilitator.user_id).where(GroupFacilitator.group_id == w.group_a.id)
        )
    )
    assert links == {w.facilitator_b.id}
    roster = await host.get(response.headers["location"])
    assert "The facilitator has been removed from the group." in roster.text

    response = await submit_form(host, roster, f"/programmes/{pid}/groups", name="", capacity="")
    assert response.status_code == 400
    assert (
        '<p class="error" id="error-new_group_name">Enter a name for the group.</p>'
        in response.text
    )

    mine = await db.scalar(select(Membership.id).where(Membership.user_id == w.participant_a.id))
    move = f"/programmes/{pid}/members/{mine}/move"
    assert form_fields(roster.text, move)["group_id"] == str(w.group_a.id)
    response = await submit_form(host, roster, move, group_id="")
    assert response.status_code == 303 and "done=unassigned" in response.headers["location"]
    assert await db.scalar(select(Membership.group_id).where(Membership.id == mine)) is None


async def test_every_form_on_the_roster_carries_the_csrf_token(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    page = await host.get(f"/programmes/{w.programme.id}/roster")
    forms = page.text.count("<form ")
    tokens = re.findall(r'name="csrf_token" value="([^"]*)"', page.text)
    assert forms > 10 and len(tokens) == forms
    assert set(tokens) == {host.csrf_token()}
