"""Live chat over WebSockets, Server-Sent Events and long-polling: delivery, escaping,
resume without loss or duplicates, and refusals."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from app.live import channels
from tests.factories import make_world
from tests.live_helpers import LiveClient


def live_path(w) -> str:  # type: ignore[no-untyped-def]
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def test_plenary_message_reaches_everyone_in_the_session(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    path = live_path(w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    bob = await LiveClient.connect(live_server, w.participant_b, path, {plenary: None})
    host = await LiveClient.connect(live_server, w.host, path, {plenary: None})
    ack = await alice.chat(plenary, "Hello everyone", "c1")
    assert ack["t"] == "ack"
    for client in (alice, bob, host):
        event = await client.wait_for(lambda m: m.get("t") == "chat.message")
        assert "Hello everyone" in event["h"] and "Priya Participant" in event["h"]
        assert event["c"] == plenary and event["i"] == 1
    for client in (alice, bob, host):
        await client.close()


async def test_a_typical_chat_event_is_small_on_the_wire(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    text = "I think the hardest part is being heard when you are the only one in the room."
    await alice.chat(plenary, text, "size-1")
    event = await alice.wait_for(lambda m: m.get("t") == "chat.message")
    assert text in event["h"]
    assert event["_bytes"] <= 600, event["_bytes"]
    await alice.close()


async def test_no_html_or_script_survives_in_chat(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    evil = (
        '<script>alert(1)</script><img src=x onerror=alert(2)> see https://example.org/a?b=1&c="2"'
    )
    await alice.chat(plenary, evil, "xss")
    event = await alice.wait_for(lambda m: m.get("t") == "chat.message")
    html = event["h"]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert (
        '<a href="https://example.org/a?b=1&amp;c=' in html
        and 'rel="nofollow noopener noreferrer ugc"' in html
    )
    # The page's snapshot escapes it the same way.
    async with live_server.client(w.participant_b) as http:
        page = await http.get(live_path(w))
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    await alice.close()


async def test_reconnect_resumes_exactly_what_was_missed(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    path = live_path(w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    bob = await LiveClient.connect(live_server, w.participant_b, path, {plenary: None})
    await alice.chat(plenary, "one", "r1")
    seen = await bob.wait_for(lambda m: m.get("t") == "chat.message")
    await bob.close()
    for n, text in enumerate(["two", "three", "four"], start=2):
        await alice.chat(plenary, text, f"r{n}")
    bob = await LiveClient.connect(live_server, w.participant_b, path, {plenary: seen["i"]})
    await alice.chat(plenary, "five", "r5")
    got = [await bob.wait_for(lambda m: m.get("t") == "chat.message") for _ in range(4)]
    assert [m["i"] for m in got] == [2, 3, 4, 5]
    assert ["two" in got[0]["h"], "five" in got[3]["h"]] == [True, True]
    assert not [m for m in await bob.quiet() if m.get("t") == "chat.message"]
    # Resending a message with the same id (an unacknowledged retry) stores it once.
    again = await alice.chat(plenary, "five", "r5")
    assert again["t"] == "ack" and f"m{again['id']}" == got[3]["x"]
    assert not [m for m in await bob.quiet() if m.get("t") == "chat.message"]
    await alice.close()
    await bob.close()


async def test_a_cursor_too_old_gets_a_resync(live_server, db, monkeypatch) -> None:
    from realtime import log as event_log

    monkeypatch.setattr(event_log, "MAX_REPLAY", 2)
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    path = live_path(w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    for n in range(4):
        await alice.chat(plenary, f"message {n}", f"old{n}")
        await asyncio.sleep(1.1 if n == 3 else 0)  # stay under the chat rate limit
    bob = await LiveClient.connect(live_server, w.participant_b, path, {plenary: 0})
    resync = await bob.wait_for(lambda m: m.get("t") == "resync")
    assert resync["c"] == plenary and resync["i"] == 4
    async with live_server.client(w.participant_b) as http:
        panel = await http.get(path + "/panel", params={"channel": plenary})
    assert (
        panel.status_code == 200 and 'data-last-id="4"' in panel.text and "message 3" in panel.text
    )
    await alice.close()
    await bob.close()


async def test_channels_of_others_are_refused(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    other_room = channels.room(w.session.id, w.group_b.id)
    someone = channels.personal(w.host.id)
    alice = await LiveClient.connect(
        live_server,
        w.participant_a,
        path,
        {channels.plenary(w.session.id): None, other_room: None, someone: None, "nonsense": 3},
    )
    errors = [await alice.wait_for(lambda m: m.get("t") == "error") for _ in range(3)]
    assert all(e["code"] == "not_allowed" for e in errors)
    # An outsider cannot connect to the session at all.
    with pytest.raises(websockets.InvalidStatus) as refused:
        await LiveClient.connect(live_server, w.outsider, path, {})
    assert refused.value.response.status_code == 403
    await alice.close()


async def test_malformed_frames_get_clear_errors_and_floods_are_closed(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    await alice.ws.send("this is not json")
    assert (await alice.wait_for(lambda m: m["t"] == "error"))["code"] == "bad_json"
    await alice.send({"type": "launch.missiles"})
    assert (await alice.wait_for(lambda m: m["t"] == "error"))["code"] == "unknown_type"
    # A chat frame whose fields have the wrong type is refused before anything else.
    await alice.send({"type": "chat.send", "channel": plenary, "text": 5, "client_id": "x"})
    bad = await alice.wait_for(lambda m: m["t"] == "error")
    assert bad["code"] == "bad_chat" and "text must be a string" in bad["message"]
    long = await alice.chat(plenary, "x" * 2001, "toolong")
    assert long["status"] == 400 and "2,000" in long["message"]
    await alice.ws.send(b"\x00\x01binary")
    with pytest.raises(websockets.ConnectionClosed):
        await alice.wait_for(lambda m: False)
    assert alice.ws.close_code == 1003

    bob = await LiveClient.connect(live_server, w.participant_b, live_path(w), {plenary: None})
    await bob.ws.send(json.dumps({"type": "ping", "pad": "y" * 9000}))
    with pytest.raises(websockets.ConnectionClosed):
        await bob.wait_for(lambda m: False)
    assert bob.ws.close_code == 1009

    carol = await LiveClient.connect(live_server, w.host, live_path(w), {plenary: None})
    for n in range(60):
        await carol.send({"type": "ping", "n": n})
    with pytest.raises(websockets.ConnectionClosed):
        await carol.wait_for(lambda m: False)
    assert carol.ws.close_code == 1008


async def test_chat_rate_limit_is_explained(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    results = [await alice.chat(plenary, f"quick {n}", f"rl{n}") for n in range(6)]
    assert [r["t"] for r in results] == ["ack"] * 5 + ["error"]
    assert results[5]["status"] == 429 and "wait a few seconds" in results[5]["message"]
    assert results[5]["retry_after"] == "5"
    await alice.close()


async def test_fallback_transports_receive_and_post_the_same_chat(live_server, db) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    path = live_path(w)
    async with (
        live_server.client(w.participant_b) as bob,
        live_server.client(w.participant_a) as alice,
    ):
        async with bob.stream("GET", path + "/sse", params={"cursors": f"{plenary}="}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            sent = await alice.post(
                path + "/chat",
                data={"text": "over plain HTTP", "client_id": "sse1", "channel": plenary},
                headers={"HX-Request": "true"},
            )
            assert sent.status_code == 204

            async def first_chat() -> tuple[str, str]:
                last_id = ""
                async for line in lines:
                    if line.startswith("id: "):
                        last_id = line[4:]
                    if line.startswith("data: ") and '"chat.message"' in line:
                        return last_id, line[6:]
                raise AssertionError("stream ended")

            event_id, data = await asyncio.wait_for(first_chat(), 5)
        assert "over plain HTTP" in json.loads(data)["h"]
        assert event_id == f"{plenary}=1"
        # Long-polling from that id returns exactly the next message.
        await alice.post(
            path + "/chat",
            data={"text": "second", "client_id": "lp1", "channel": plenary},
            headers={"HX-Request": "true"},
        )
        poll = await bob.get(path + "/poll", params={"cursors": event_id, "wait": 5})
        body = poll.json()
        assert [e["i"] for e in body["events"]] == [2] and "second" in body["events"][0]["h"]
        assert body["cursors"] == {plenary: 2}
        # The browser's automatic SSE reconnect sends Last-Event-ID, which wins over the URL.
        async with bob.stream(
            "GET",
            path + "/sse",
            params={"cursors": f"{plenary}=0"},
            headers={"Last-Event-ID": f"{plenary}=1"},
        ) as stream:

            async def chats() -> list[int]:
                async for line in stream.aiter_lines():
                    if line.startswith("data: ") and '"chat.message"' in line:
                        return [json.loads(line[6:])["i"]]
                return []

            assert await asyncio.wait_for(chats(), 5) == [2]


async def test_refusals_over_http_are_clear(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    async with live_server.client(w.observer) as observer:
        r = await observer.post(
            path + "/chat", data={"text": "hi", "client_id": "o1"}, headers={"HX-Request": "true"}
        )
        assert r.status_code == 403 and "cannot send" in r.text
    async with live_server.client(w.participant_a) as alice:
        r = await alice.post(
            path + "/chat", data={"text": "   ", "client_id": "e1"}, headers={"HX-Request": "true"}
        )
        assert r.status_code == 400 and "Type a message" in r.text
        r = await alice.get(path + "/poll", params={"cursors": "bad"})
        assert r.status_code == 400
    async with live_server.client(w.outsider) as outsider:
        r = await outsider.get(path)
        assert r.status_code == 404
