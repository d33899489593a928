"""Who sees which hands and help requests, the same on every transport and on every page:
a facilitator those of the groups they facilitate; IT support and hosts every one."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.models import User
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import act, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient
from tests.live_streams import SseReader, poll

A_NOTE = "Alice cannot hear the room"
B_NOTE = "Bob's camera is frozen"


def desk(w: World, user: User) -> str:
    if user in (w.facilitator_a, w.facilitator_b):
        return channels.facilitator_desk(w.session.id, user.id)
    return channels.helpdesk(w.session.id)


async def ask_both(server: LiveServer, w: World) -> None:
    for user, note in ((w.participant_a, A_NOTE), (w.participant_b, B_NOTE)):
        asked = await act(server, user, live_path(w) + "/help", {"note": note})
        assert asked.status_code == 200, asked.text


def notes(events: list[dict[str, Any]]) -> set[str]:
    seen = " ".join(e.get("h", "") for e in events if e.get("t") == "help.update")
    return {note for note in (A_NOTE, B_NOTE) if note.replace("'", "&#39;") in seen}


async def test_over_websockets_each_facilitator_hears_only_their_groups_requests(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    await open_rooms(live_server, w)  # Alice asks from room A, Bob from room B
    staff = {
        user: await LiveClient.connect(live_server, user, path, {desk(w, user): None})
        for user in (w.facilitator_a, w.facilitator_b, w.it_support, w.host)
    }
    await ask_both(live_server, w)
    for client in staff.values():
        await client.wait_for(of_type("help.update"))
        await client.quiet(0.3)  # and whatever else comes
    heard = {user: notes(client.received) for user, client in staff.items()}
    assert heard == {
        w.facilitator_a: {A_NOTE},
        w.facilitator_b: {B_NOTE},
        w.it_support: {A_NOTE, B_NOTE},
        w.host: {A_NOTE, B_NOTE},
    }
    # Asking for the whole desk, or another facilitator's, is refused.
    fola = staff[w.facilitator_a]
    for other in (channels.helpdesk(w.session.id), desk(w, w.facilitator_b)):
        await fola.send({"type": "hello", "cursors": {other: 0}})
        refused = await fola.wait_for(of_type("error"))
        assert refused["code"] == "not_allowed" and other in refused["message"]
    assert notes(await fola.quiet(0.3)) == set()
    for client in staff.values():
        await client.close()


async def test_streams_and_polls_give_a_facilitator_only_their_groups_requests(
    live_server: LiveServer, db: AsyncSession
) -> None:
    """In the plenary a request is for the asker's own group; what the streams send live
    and what the polls replay from the log agree with the desk."""
    w = await make_world(db)
    path = live_path(w)
    fola_stream = await SseReader(
        live_server, w.facilitator_a, path, {desk(w, w.facilitator_a): None}
    ).open()
    ian_stream = await SseReader(
        live_server, w.it_support, path, {desk(w, w.it_support): None}
    ).open()
    await ask_both(live_server, w)
    await ian_stream.wait_for(lambda e: notes([e]) == {B_NOTE})
    await fola_stream.wait_for(lambda e: notes([e]) == {A_NOTE})
    await asyncio.sleep(0.3)
    assert notes(fola_stream.events) == {A_NOTE}
    assert notes(ian_stream.events) == {A_NOTE, B_NOTE}
    for stream in (fola_stream, ian_stream):
        await stream.close()

    for user, expected in (
        (w.facilitator_a, {A_NOTE}),
        (w.facilitator_b, {B_NOTE}),
        (w.it_support, {A_NOTE, B_NOTE}),
    ):
        async with live_server.client(user) as http:
            replayed = await poll(http, path, {desk(w, user): 0}, wait=0)
        assert notes(replayed["events"]) == expected, user.display_name


async def test_panels_pages_and_consoles_show_what_the_desk_sends(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    await ask_both(live_server, w)

    async def seen(user: User, url: str, **params: str) -> set[str]:
        async with live_server.client(user) as http:
            response = await http.get(url, params=params)
        assert response.status_code == 200, (user.display_name, url, response.status_code)
        return {n for n in (A_NOTE, B_NOTE) if n.replace("'", "&#39;") in response.text}

    assert await seen(w.facilitator_a, path + "/panel", channel=desk(w, w.facilitator_a)) == {
        A_NOTE
    }
    assert await seen(w.facilitator_a, path) == {A_NOTE}
    assert await seen(w.facilitator_a, f"{path}/console/{w.group_a.id}") == {A_NOTE}
    assert await seen(w.facilitator_b, path) == {B_NOTE}
    assert await seen(w.it_support, path + "/panel", channel=desk(w, w.it_support)) == {
        A_NOTE,
        B_NOTE,
    }
    assert await seen(w.it_support, path) == {A_NOTE, B_NOTE}
    assert await seen(w.host, path + "/host") == {A_NOTE, B_NOTE}
    async with live_server.client(w.facilitator_a) as http:
        whole = await http.get(path + "/panel", params={"channel": channels.helpdesk(w.session.id)})
    assert whole.status_code == 403


async def test_a_facilitators_desk_follows_the_groups_they_facilitate(
    live_server: LiveServer, db: AsyncSession
) -> None:
    """Made a facilitator of group B, Fola's desk has B's requests from then on; removed
    from group A, no more of A's."""
    w = await make_world(db)
    path = live_path(w)
    fola = await LiveClient.connect(
        live_server, w.facilitator_a, path, {desk(w, w.facilitator_a): None}
    )
    groups = f"/programmes/{w.programme.id}/groups"
    added = await act(
        live_server,
        w.host,
        f"{groups}/{w.group_b.id}/facilitators",
        {"user_id": str(w.facilitator_a.id)},
        hx=False,
    )
    assert added.status_code == 303, added.text
    removed = await act(
        live_server,
        w.host,
        f"{groups}/{w.group_a.id}/facilitators/{w.facilitator_a.id}/remove",
        hx=False,
    )
    assert removed.status_code == 303, removed.text
    await ask_both(live_server, w)
    await fola.wait_for(of_type("help.update"))
    await fola.quiet(0.3)
    assert notes(fola.received) == {B_NOTE}
    await fola.close()
