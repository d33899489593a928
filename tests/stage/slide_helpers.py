"""Decks uploaded as a presenter would (the real route, rendering and storage), for the
slide sync's tests."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import LiveServer
from tests.stage.deck_samples import slide_pdf


async def upload_deck(
    server: LiveServer, user: Any, w: Any, *, pages: int = 3, room: str = "", title: str = ""
) -> int:
    """Upload a PDF deck of `pages` pages for the plenary (room "") or a group's room; its id."""
    path = f"/programmes/{w.programme.id}/sessions/{w.session.id}/decks"
    async with server.client(user) as http:
        response = await http.post(
            path,
            data={"title": title or f"Deck of {pages}", "room": room},
            files={"file": ("slides.pdf", slide_pdf(pages, picture=False), "application/pdf")},
        )
    assert response.status_code == 303, response.text[:500]
    found = re.search(r"/decks/(\d+)", response.headers["location"])
    assert found, response.headers["location"]
    return int(found.group(1))
