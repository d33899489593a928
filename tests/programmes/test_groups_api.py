"""The JSON API for groups, members, roster import, auto-assign and invitation links."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Role
from tests.factories import World, add_member, make_user, make_world

API = "/api/v1/programmes"


async def membership_id(db: AsyncSession, user_id: int, programme_id: int) -> int:
    found = await db.scalar(
        select(Membership.id).where(
            Membership.user_id == user_id, Membership.programme_id == programme_id
        )
    )
    assert found is not None
    return found


async def world_with_needs(db: AsyncSession) -> World:
    w = await make_world(db)
    w.participant_a.captions_on = True
    w.participant_a.access_notes = "Lip-reads; please face the camera"
    w.participant_b.large_text = True
    await db.commit()
    return w


async def test_group_list_visibility(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    url = f"{API}/{w.programme.id}/groups"
    for user in (w.host, w.admin, w.facilitator_b, w.it_support):
        response = await browser_factory(user).get(url)
        assert response.status_code == 200
        assert [g["name"] for g in response.json()] == ["Group A", "Group B"]
    own = (await browser_factory(w.participant_a).get(url)).json()
    assert [g["name"] for g in own] == ["Group A"]
    assert own[0]["facilitators"][0]["name"] == "Fola Facilitator"
    assert own[0]["size"] == 1 and own[0]["effective_capacity"] == 8
    assert (await browser_factory(w.observer).get(url)).json() == []
    assert (await browser_factory(w.outsider).get(url)).status_code == 404
    assert (await browser_factory().get(url)).status_code == 401


async def test_group_detail_shares_access_needs_with_moderators_only(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await world_with_needs(db)
    url = f"{API}/{w.programme.id}/groups/{w.group_a.id}"
    moderator = (await browser_factory(w.facilitator_a).get(url)).json()
    assert moderator["members"][0]["name"] == "Priya Participant"
    assert moderator["members"][0]["access_needs"]["captions_on"] is True
    assert moderator["members"][0]["access_needs"]["notes"].startswith("Lip-reads")
    member = (await browser_factory(w.participant_a).get(url)).json()
    assert member["members"][0]["access_needs"] is None
    assert (await browser_factory(w.participant_b).get(url)).status_code == 403
    assert (await browser_factory(w.outsider).get(url)).status_code == 404
    other = f"{API}/{w.programme.id}/groups/{w.other_group.id}"
    assert (await browser_factory(w.host).get(other)).status_code == 404


async def test_create_and_update_groups(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    url = f"{API}/{w.programme.id}/groups"
    created = await host.api("POST", url, json={"name": "Willow", "capacity": 6})
    assert created.status_code == 201
    group = created.json()
    assert (group["name"], group["capacity"], group["effective_capacity"]) == ("Willow", 6, 6)
    clash = await host.api("POST", url, json={"name": "group a"})
    assert clash.status_code == 422
    assert clash.json()["errors"] == [
        {"field": "name", "message": 'There is already a group called "group a" in this programme.'}
    ]
    assert (await host.api("POST", url, json={"name": "X", "capacity": 1})).status_code == 422
    refused = await browser_factory(w.facilitator_a).api("POST", url, json={"name": "Mine"})
    assert refused.status_code == 403

    one = f"{url}/{group['id']}"
    renamed = await host.api("PATCH", one, json={"name": "Weeping willow"})
    assert renamed.json()["name"] == "Weeping willow" and renamed.json()["capacity"] == 6
    reset = await host.api("PATCH", one, json={"capacity": None})
    assert reset.json()["capacity"] is None and reset.json()["effective_capacity"] == 8
    other = await host.api("PATCH", f"{url}/{w.other_group.id}", json={"name": "Taken over"})
    assert other.status_code == 404
    assert (
        await browser_factory(w.participant_a).api("PATCH", one, json={"name": "Z"})
    ).status_code == 403


async def test_facilitators_put_and_delete(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    base = f"{API}/{w.programme.id}/groups/{w.group_a.id}/facilitators"
    added = await host.api("PUT", f"{base}/{w.facilitator_b.id}")
    assert added.status_code == 200
    assert {f["name"] for f in added.json()["facilitators"]} == {
        "Fola Facilitator",
        "Finn Facilitator",
    }
    assert (await host.api("PUT", f"{base}/{w.facilitator_b.id}")).status_code == 200  # idempotent
    refused = await host.api("PUT", f"{base}/{w.participant_a.id}")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "user_id"
    assert (await host.api("PUT", f"{base}/{w.outsider.id}")).status_code == 422
    removed = await host.api("DELETE", f"{base}/{w.facilitator_a.id}")
    assert [f["name"] for f in removed.json()["facilitators"]] == ["Finn Facilitator"]
    assert (await host.api("DELETE", f"{base}/{w.facilitator_a.id}")).status_code == 200
    assert (
        await browser_factory(w.facilitator_a).api("PUT", f"{base}/{w.facilitator_a.id}")
    ).status_code == 403


async def test_members_list_by_role(db: AsyncSession, browser_factory: Any) -> None:
    w = await world_with_needs(db)
    url = f"{API}/{w.programme.id}/members"
    as_host = {m["name"]: m for m in (await browser_factory(w.host).get(url)).json()}
    assert len(as_host) == 7
    assert as_host["Priya Participant"]["email"] == w.participant_a.email
    assert as_host["Pat Participant"]["access_needs"]["large_text"] is True
    assert as_host["Fola Facilitator"]["facilitator_of"] == [w.group_a.id]

    as_facilitator = {
        m["name"]: m for m in (await browser_factory(w.facilitator_a).get(url)).json()
    }
    assert as_facilitator["Pat Participant"]["group_name"] == "Group B"
    assert as_facilitator["Pat Participant"]["access_needs"] is None  # not their group
    assert as_facilitator["Priya Participant"]["access_needs"]["captions_on"] is True
    assert all(m["email"] is None for m in as_facilitator.values())

    as_it = (await browser_factory(w.it_support).get(url)).json()
    assert all(m["access_needs"] is None and m["email"] is None for m in as_it)
    for user in (w.participant_a, w.observer):
        assert (await browser_factory(user).get(url)).status_code == 403
    assert (await browser_factory(w.outsider).get(url)).status_code == 404


async def test_patch_member_moves_and_changes_role(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    w.programme.group_capacity = 2
    newcomer = await make_user(db, name="Nia Newcomer")
    await add_member(db, w.programme, newcomer, Role.PARTICIPANT, w.group_a)
    await db.commit()
    host = browser_factory(w.host)
    pat = await membership_id(db, w.participant_b.id, w.programme.id)
    url = f"{API}/{w.programme.id}/members/{pat}"
    full = await host.api("PATCH", url, json={"group_id": w.group_a.id})
    assert full.status_code == 422
    assert full.json()["detail"] == '"Group A" is full (2 of 2 places).'
    other = await host.api("PATCH", url, json={"group_id": w.other_group.id})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "group_id"
    out = await host.api("PATCH", url, json={"group_id": None})
    assert out.status_code == 200 and out.json()["group_id"] is None
    back = await host.api("PATCH", url, json={"group_id": w.group_b.id})
    assert back.json()["group_name"] == "Group B"
    promoted = await host.api("PATCH", url, json={"role": "facilitator"})
    assert promoted.json()["role"] == "facilitator" and promoted.json()["group_id"] is None
    # A facilitator is not placed in a group, and a refused change changes nothing.
    refused = await host.api("PATCH", url, json={"group_id": w.group_b.id})
    assert refused.status_code == 422
    assert await db.scalar(select(Membership.role).where(Membership.id == pat)) == "facilitator"

    elsewhere = await membership_id(db, w.outsider.id, w.other_programme.id)
    gone = await host.api(
        "PATCH", f"{API}/{w.programme.id}/members/{elsewhere}", json={"role": "host"}
    )
    assert gone.status_code == 404
    mine = await membership_id(db, w.host.id, w.programme.id)
    own = await host.api(
        "PATCH", f"{API}/{w.programme.id}/members/{mine}", json={"role": "participant"}
    )
    assert own.status_code == 422 and own.json()["errors"][0]["field"] == "role"
    assert (
        await browser_factory(w.facilitator_a).api("PATCH", url, json={"role": "host"})
    ).status_code == 403


async def test_roster_upload_summary_and_every_bad_row(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    url = f"{API}/{w.programme.id}/roster"
    good = (
        b"name,email,role,group\r\n"
        b"Ria,ria@example.org,,Group A\r\n"
        b"Sol,sol@example.org,facilitator,Group C\r\n"
    )
    response = await host.api("POST", url, files={"file": ("r.csv", good, "text/csv")})
    assert response.status_code == 200
    assert response.json() == {
        "format": "roundtable",
        "rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "new_accounts": 2,
        "requested": 0,
        "groups_created": ["Group C"],
    }
    again = await host.api("POST", url, files={"file": ("r.csv", good, "text/csv")})
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 2)

    bad = (
        b"name,email\r\nOk,ok@example.org\r\n,x@example.org\r\nY,y@\r\nOk again,OK@example.org\r\n"
    )
    response = await host.api("POST", url, files={"file": ("r.csv", bad, "text/csv")})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("Nothing was imported")
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (3, "name"),
        (4, "email"),
        (5, "email"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert (
        await db.scalar(select(func.count()).where(Membership.programme_id == w.programme.id)) == 9
    )

    latin = "name,email\r\nRené,rene@example.org\r\n".encode("latin-1")
    response = await host.api("POST", url, files={"file": ("r.csv", latin, "text/csv")})
    assert response.status_code == 422
    assert response.json()["errors"][0]["line"] is None
    assert "CSV UTF-8" in response.json()["errors"][0]["message"]
    refused = await browser_factory(w.facilitator_a).api(
        "POST", url, files={"file": ("r.csv", good, "text/csv")}
    )
    assert refused.status_code == 403


async def test_auto_assign_api(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    people = [await make_user(db, name=f"Late {i}") for i in range(15)]
    for person in people:
        await add_member(db, w.programme, person, Role.PARTICIPANT)
    await db.commit()
    url = f"{API}/{w.programme.id}/auto-assign"
    host = browser_factory(w.host)
    assert (await host.api("POST", url, json={"mode": "shuffle"})).status_code == 422
    assert (await host.api("POST", url, json={})).status_code == 422
    assert (
        await browser_factory(w.facilitator_a).api("POST", url, json={"mode": "fill"})
    ).status_code == 403
    response = await host.api("POST", url, json={"mode": "reshuffle"})
    assert response.status_code == 200
    body = response.json()
    assert body["placed"] == 17 and body["participants"] == 17
    sizes = [s["size"] for s in body["sizes"]]
    assert sum(sizes) == 17 and max(sizes) <= 8 and max(sizes) - min(sizes) <= 1
    assert body["groups_created"] == ["Group 1"]  # Group A and B are reused
    uncovered = await db.scalar(
        select(func.count())
        .select_from(Group)
        .where(
            Group.programme_id == w.programme.id,
            ~Group.id.in_(select(GroupFacilitator.group_id)),
        )
    )
    assert uncovered == 0


async def test_invitations_api(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    url = f"{API}/{w.programme.id}/invitations"
    priya = await membership_id(db, w.participant_a.id, w.programme.id)
    one = await host.api("POST", url, json={"membership_ids": [priya]})
    assert one.status_code == 200 and one.headers["cache-control"] == "no-store"
    [link] = one.json()["invitations"]
    assert (link["name"], link["group"]) == ("Priya Participant", "Group A")
    assert link["link"].startswith("http://testserver/invite/")
    everyone = await host.api("POST", url, json={"all_without_live_link": True})
    # Not the host, not Priya again, and nobody with a password (staff): Pat and Olu.
    assert len(everyone.json()["invitations"]) == 2
    assert (await host.api("POST", url, json={"all_without_live_link": True})).json() == {
        "invitations": []
    }

    both = await host.api(
        "POST", url, json={"membership_ids": [priya], "all_without_live_link": True}
    )
    assert both.status_code == 422
    assert (await host.api("POST", url, json={})).status_code == 422
    elsewhere = await membership_id(db, w.outsider.id, w.other_programme.id)
    unknown = await host.api("POST", url, json={"membership_ids": [elsewhere]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "membership_ids"
    assert (
        await browser_factory(w.facilitator_a).api("POST", url, json={"membership_ids": [priya]})
    ).status_code == 403

    # The newest link works; the one it replaced does not.
    again = (await host.api("POST", url, json={"membership_ids": [priya]})).json()["invitations"][0]
    old = await browser_factory().submit(link["link"].removeprefix("http://testserver"))
    assert old.status_code == 400
    new = await browser_factory().submit(again["link"].removeprefix("http://testserver"))
    assert new.status_code == 303

    # A facilitator signs in with their password: asking for a link for them is refused.
    fola = await membership_id(db, w.facilitator_a.id, w.programme.id)
    refused = await host.api("POST", url, json={"membership_ids": [fola]})
    assert refused.status_code == 409
    assert "has a password" in refused.json()["detail"]


async def test_openapi_documents_the_models(browser: Any) -> None:
    spec = (await browser.get("/openapi.json")).json()
    roster = spec["paths"]["/api/v1/programmes/{programme_id}/roster"]["post"]
    assert roster["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImportOut"
    )
    assert roster["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ImportRejectedOut"
    )
    schemas = spec["components"]["schemas"]
    for name in (
        "GroupOut",
        "GroupIn",
        "GroupPatch",
        "MemberOut",
        "MemberPatch",
        "AutoAssignIn",
        "InvitationsIn",
        "InvitationsOut",
    ):
        assert name in schemas
