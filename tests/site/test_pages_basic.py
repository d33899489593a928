from __future__ import annotations

from tests.factories import make_world


async def test_home_shows_group_and_facilitator(browser_factory, db) -> None:
    w = await make_world(db)
    page = await browser_factory(w.participant_a).get("/")
    assert page.status_code == 200
    assert "Group A" in page.text
    assert "Fola Facilitator" in page.text


async def test_anonymous_home_redirects_to_sign_in(browser) -> None:
    response = await browser.get("/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=/")
