"""A room of people on the fallback transports does not starve the server of database
connections: each Server-Sent Events stream and long-poll gives its connection back before
it waits (found by the browser journey, tests/e2e/test_journey.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.factories import make_world

# More than the pool holds (SQLite: 5 and 10 overflow; PostgreSQL: 10 and 20).
STREAMS = 32


async def test_many_streams_and_polls_leave_the_server_answering(live_server: Any, db: Any) -> None:
    w = await make_world(db)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    plenary = f"s{w.session.id}:plenary"
    async with (
        live_server.client(w.participant_a) as alice,
        live_server.client(w.participant_b) as bob,
        contextlib.AsyncExitStack() as streams,
    ):
        for _ in range(STREAMS):
            response = await streams.enter_async_context(
                alice.stream("GET", url + "/sse", params={"cursors": f"{plenary}=0"})
            )
            assert response.status_code == 200
        polls = [
            asyncio.create_task(
                bob.get(url + "/poll", params={"cursors": f"{plenary}=0", "wait": "20"})
            )
            for _ in range(STREAMS)
        ]
        await asyncio.sleep(0.5)
        try:
            page = await asyncio.wait_for(bob.get(url), timeout=5)
            assert page.status_code == 200
            sent = await asyncio.wait_for(
                alice.post(
                    url + "/chat",
                    data={
                        "channel": plenary,
                        "text": "Still here?",
                        "client_id": "still-here-1",
                    },
                    headers={"HX-Request": "true"},
                ),
                timeout=5,
            )
            assert sent.status_code < 400, sent.text
            # The waiting polls are answered with the message.
            for answer in await asyncio.wait_for(asyncio.gather(*polls), timeout=10):
                assert "Still here?" in answer.text
        finally:
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
