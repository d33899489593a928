"""A refused live action reaches the person in the form they read it: a line of text for
the page's own requests (htmx), JSON for the API, an error page without scripts."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.errors import install_error_handlers
from app.refusals import NotAllowed, Refused, TooFast
from tests.factories import make_world
from tests.live_action_helpers import act, live_path

REASON = "Only the session's hosts can run breakout rooms."


async def test_a_refused_action_is_a_line_of_text_for_htmx(live_server, db) -> None:
    w = await make_world(db)
    response = await act(live_server, w.participant_a, live_path(w) + "/breakouts/open")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == REASON


async def test_a_refused_action_is_a_page_without_htmx(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w) + "/breakouts/open"
    response = await act(live_server, w.participant_a, path, hx=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "hosts can run breakout rooms" in response.text


async def test_a_refusal_on_the_api_is_json_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/api/refused")
    async def refused() -> None:
        raise NotAllowed("You may not do that.")

    @app.post("/api/too-fast")
    async def too_fast() -> None:
        raise TooFast("Please wait a few seconds.", retry_after=5)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/api/refused")
        assert response.status_code == 403
        assert response.json() == {"detail": "You may not do that."}
        slow = await http.post("/api/too-fast")
        assert slow.status_code == 429 and slow.headers["retry-after"] == "5"
        assert slow.json() == {"detail": "Please wait a few seconds."}


def test_a_plain_refusal_keeps_status_400_and_its_code() -> None:
    exc = Refused("Type a message first.", code="empty")
    assert (exc.status, exc.code, exc.headers) == (400, "empty", None)
    assert NotAllowed("No.", status=409).status == 409
