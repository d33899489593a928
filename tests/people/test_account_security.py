"""Accounts cannot be taken over: not through a roster import and an invitation link, not
with a copied cookie after signing out, not with a link used before; and sign-in answers take
the same time whether or not the account exists."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.exceptions import ConnectionClosed

from app.live import channels
from app.models import Membership, MembershipStatus, Role, User
from app.security import SESSION_COOKIE
from tests.factories import PASSWORD, World, add_member, make_user, make_world

CSV = "text/csv"


async def import_roster(browser: Any, programme_id: int, rows: list[str]) -> Any:
    data = ("name,email,pronouns,role,group\r\n" + "\r\n".join(rows) + "\r\n").encode()
    return await browser.submit(
        f"/programmes/{programme_id}/roster/import", {}, files={"file": ("roster.csv", data, CSV)}
    )


async def second_host(db: AsyncSession, w: World) -> User:
    """The host of the other programme: the would-be attacker."""
    host = await make_user(db, name="Harry Otherhost", password=PASSWORD)
    await add_member(db, w.other_programme, host, Role.HOST)
    await db.commit()
    return host


async def membership_in(db: AsyncSession, user: User, programme_id: int) -> Membership | None:
    membership: Membership | None = await db.scalar(
        select(Membership)
        .where(Membership.user_id == user.id, Membership.programme_id == programme_id)
        .execution_options(populate_existing=True)
    )
    return membership


async def test_importing_an_admin_and_a_host_asks_them_to_join_and_no_link_signs_in_as_them(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    attacker = browser_factory(await second_host(db, w))
    other = w.other_programme.id
    imported = await import_roster(
        attacker,
        other,
        [
            f"X,{w.admin.email},,participant,Oak",
            f"Y,{w.host.email.upper()},,participant,Oak",
            f"Z,{w.participant_a.email},,participant,Oak",
        ],
    )
    assert imported.status_code == 200
    assert "asked to join" in imported.text

    for victim in (w.admin, w.host, w.participant_a):
        membership = await membership_in(db, victim, other)
        assert membership is not None and membership.status == MembershipStatus.INVITED.value
        # A link for them is refused, with the reason, and none is made.
        answer = await attacker.submit(f"/programmes/{other}/members/{membership.id}/invitation")
        assert answer.status_code == 409
        assert "/invite/" not in answer.text
        # The API says the same.
        api = await attacker.api(
            "POST",
            f"/api/v1/programmes/{other}/invitations",
            json={"membership_ids": [membership.id]},
        )
        assert api.status_code == 409 and "/invite/" not in api.text
    # Nobody's role anywhere else changed, and the admin is still an admin.
    assert (await membership_in(db, w.host, w.programme.id)).role == Role.HOST.value  # type: ignore[union-attr]
    assert (await db.get(User, w.admin.id)).is_admin  # type: ignore[union-attr]
    # The invited people do not count as members until they accept: the programme is not
    # theirs to see, and the admin is still its host (as administrators are everywhere).
    assert (await browser_factory(w.host).get(f"/programmes/{other}")).status_code == 404
    admin_view = await browser_factory(w.admin).get(f"/api/v1/programmes/{other}")
    assert admin_view.status_code == 200


async def test_a_host_cannot_get_a_link_for_their_own_facilitator_who_has_a_password(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    fola = await membership_in(db, w.facilitator_a, w.programme.id)
    assert fola is not None
    answer = await host.submit(f"/programmes/{w.programme.id}/members/{fola.id}/invitation")
    assert answer.status_code == 409
    assert "has a password" in answer.text and "/invite/" not in answer.text


async def test_a_link_made_before_the_account_got_a_password_no_longer_signs_in(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    pat = await membership_in(db, w.participant_b, w.programme.id)
    assert pat is not None
    page = await host.submit(f"/programmes/{w.programme.id}/members/{pat.id}/invitation")
    [link] = re.findall(r'<code class="invite-link">http://testserver([^<]+)</code>', page.text)
    person = await db.get(User, w.participant_b.id)
    assert person is not None
    person.password_hash = w.host.password_hash
    await db.commit()
    visitor = browser_factory()
    for answer in (await visitor.get(link), await visitor.submit(link)):
        assert answer.status_code == 403
        assert "sign in with your e-mail address and password" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_an_invited_person_accepts_signed_in_as_themselves(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    attacker = browser_factory(await second_host(db, w))
    other = w.other_programme.id
    await import_roster(
        attacker,
        other,
        [
            f"F,{w.facilitator_a.email},,participant,Oak",
            f"P,{w.participant_a.email},,participant,Oak",
        ],
    )
    fola = browser_factory(w.facilitator_a)
    home = await fola.get("/")
    assert "Invitations to join" in home.text and "Another programme" in home.text
    membership = await membership_in(db, w.facilitator_a, other)
    assert membership is not None
    # Someone else cannot answer for them.
    assert (
        await browser_factory(w.host).submit(f"/memberships/{membership.id}/accept")
    ).status_code == 404
    accepted = await fola.submit(f"/memberships/{membership.id}/accept")
    assert accepted.status_code == 303
    assert (await fola.get(f"/programmes/{other}")).status_code == 200

    # Priya has no password and is in the first programme: links work within one programme
    # only, so she chooses a password as she accepts.
    priya = browser_factory(w.participant_a)
    pending = await membership_in(db, w.participant_a, other)
    assert pending is not None
    short = await priya.submit(f"/memberships/{pending.id}/accept", {"new_password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    ok = await priya.submit(
        f"/memberships/{pending.id}/accept",
        {"new_password": "a long new password", "confirm_password": "a long new password"},
    )
    assert ok.status_code == 303
    signed_in = await browser_factory().submit(
        "/signin", {"email": w.participant_a.email, "password": "a long new password"}
    )
    assert signed_in.status_code == 303


async def test_declining_removes_the_invitation(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    attacker = browser_factory(await second_host(db, w))
    await import_roster(attacker, w.other_programme.id, [f"F,{w.facilitator_a.email},,,"])
    membership = await membership_in(db, w.facilitator_a, w.other_programme.id)
    assert membership is not None
    fola = browser_factory(w.facilitator_a)
    assert (await fola.submit(f"/memberships/{membership.id}/decline")).status_code == 303
    assert await membership_in(db, w.facilitator_a, w.other_programme.id) is None
    assert "Invitations to join" not in (await fola.get("/")).text


async def issue_link(db: AsyncSession, w: World, browser_factory: Any, user: User) -> str:
    membership = await membership_in(db, user, w.programme.id)
    assert membership is not None
    page = await browser_factory(w.host).submit(
        f"/programmes/{w.programme.id}/members/{membership.id}/invitation"
    )
    [link] = re.findall(r'<code class="invite-link">http://testserver([^<]+)</code>', page.text)
    return str(link)


async def test_a_link_signs_in_once_and_opening_it_uses_nothing_up(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    link = await issue_link(db, w, browser_factory, w.participant_b)
    scanner = browser_factory()
    for _ in range(3):  # e-mail scanners fetch links before people click them
        assert (await scanner.get(link)).status_code == 200
    person = browser_factory()
    first = await person.submit(link)
    assert first.status_code == 303 and SESSION_COOKIE in first.headers["set-cookie"]
    # The same browser opening it again simply goes on.
    again = await person.get(link)
    assert again.status_code == 303 and again.headers["location"].startswith("/programmes/")
    # Anyone else gets a clear page, and no session.
    for answer in (await scanner.get(link), await scanner.submit(link)):
        assert answer.status_code == 410
        assert "already been used" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_a_new_link_ends_the_sessions_made_with_the_old_one(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    old = await issue_link(db, w, browser_factory, w.participant_b)
    person = browser_factory()
    assert (await person.submit(old)).status_code == 303
    assert (await person.get(f"/programmes/{w.programme.id}")).status_code == 200
    await issue_link(db, w, browser_factory, w.participant_b)
    after = await person.get(f"/programmes/{w.programme.id}")
    assert after.status_code == 303 and after.headers["location"].startswith("/signin")


async def test_signing_out_ends_the_session_on_the_server(
    db: AsyncSession, browser_factory: Any
) -> None:
    await make_user(db, email="fola@example.org", password=PASSWORD)
    await db.commit()
    browser = browser_factory()
    signed_in = await browser.submit("/signin", {"email": "fola@example.org", "password": PASSWORD})
    assert signed_in.status_code == 303
    cookie = browser.cookies.get(SESSION_COOKIE)
    copy = browser_factory()
    copy.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local")
    assert (await copy.get("/")).status_code == 200
    other_device = browser_factory()
    await other_device.submit("/signin", {"email": "fola@example.org", "password": PASSWORD})

    assert (await browser.submit("/signout")).status_code == 303
    # A copy of the cookie stops working; the person's other device stays signed in.
    gone = await copy.get("/")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
    assert (await other_device.get("/")).status_code == 200


async def sign_in_time(browser: Any, email: str) -> float:
    start = time.perf_counter()
    answer = await browser.submit("/signin", {"email": email, "password": "wrong password"})
    elapsed = time.perf_counter() - start
    assert answer.status_code == 400
    return elapsed


async def test_sign_in_takes_as_long_for_an_unknown_address_as_for_a_known_one(
    db: AsyncSession, browser_factory: Any
) -> None:
    await make_user(db, email="known@example.org", password=PASSWORD)
    await db.commit()
    known, unknown = [], []
    for n in range(4):
        # Each from its own address: this is not about the attempt limits.
        known.append(await sign_in_time(browser_factory(), "known@example.org"))
        unknown.append(await sign_in_time(browser_factory(), f"nobody{n}@example.org"))
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    print(
        f"sign-in with a wrong password: known {known_median * 1000:.0f} ms, "
        f"unknown {unknown_median * 1000:.0f} ms"
    )
    # Before, an unknown address answered 30 times sooner (no hash was checked).
    assert unknown_median > 0.6 * known_median
    assert known_median > 0.6 * unknown_median


async def live_socket(server: Any, cookie: str, path: str, channel: str) -> Any:
    from tests.live_helpers import LiveClient

    ws = await websockets.connect(
        server.ws + path + "/ws",
        additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
        open_timeout=10,
    )
    client = LiveClient(ws, server, None, path)
    await client.send({"type": "hello", "cursors": {channel: None}})
    assert (await client.next())["t"] == "hello"
    return client


async def closed_within_a_second(client: Any) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        while True:
            await client.next(timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert client.ws.close_code == 1008


async def password_session(server: Any, email: str) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in through the real form, and its session cookie."""
    browser = server.client()
    browser.cookies.set("rt_csrf", "live-test")
    answer = await browser.post(
        "/signin",
        data={"csrf_token": server.csrf_token(), "email": email, "password": PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    return browser, answer.cookies[SESSION_COOKIE]


async def test_signing_out_closes_that_sessions_live_connections_at_once(
    db: AsyncSession, live_server: Any
) -> None:
    w = await make_world(db)
    path = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    plenary = channels.plenary(w.session.id)
    laptop, laptop_cookie = await password_session(live_server, w.facilitator_a.email or "")
    phone, phone_cookie = await password_session(live_server, w.facilitator_a.email or "")
    on_laptop = await live_socket(live_server, laptop_cookie, path, plenary)
    on_phone = await live_socket(live_server, phone_cookie, path, plenary)
    try:
        assert (
            await laptop.post("/signout", data={"csrf_token": live_server.csrf_token()})
        ).status_code == 303
        await closed_within_a_second(on_laptop)
        # The phone's session goes on.
        with pytest.raises(TimeoutError):
            await on_phone.wait_for(lambda m: m.get("t") == "reload", timeout=0.5)
        assert on_phone.ws.close_code is None
        everywhere = await phone.post(
            "/signout-everywhere", data={"csrf_token": live_server.csrf_token()}
        )
        assert everywhere.status_code == 303
        await closed_within_a_second(on_phone)
    finally:
        await laptop.aclose()
        await phone.aclose()


async def test_a_new_link_closes_the_live_connections_of_the_old_one(
    db: AsyncSession, live_server: Any
) -> None:
    w = await make_world(db)
    path = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    plenary = channels.plenary(w.session.id)
    host, _ = await password_session(live_server, w.host.email or "")
    membership = await membership_in(db, w.participant_b, w.programme.id)
    assert membership is not None
    invitation = f"/programmes/{w.programme.id}/members/{membership.id}/invitation"
    form = {"csrf_token": live_server.csrf_token()}
    page = await host.post(invitation, data=form)
    [link] = re.findall(r'<code class="invite-link">https?://[^/]+([^<]+)</code>', page.text)
    person = live_server.client()
    person.cookies.set("rt_csrf", "live-test")
    signed_in = await person.post(link, data=form)
    assert signed_in.status_code == 303
    connection = await live_socket(live_server, signed_in.cookies[SESSION_COOKIE], path, plenary)
    try:
        assert (await host.post(invitation, data=form)).status_code == 200
        await closed_within_a_second(connection)
    finally:
        await host.aclose()
        await person.aclose()
