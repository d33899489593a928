from __future__ import annotations

from tests.factories import PASSWORD, make_user


async def test_password_sign_in_sets_httponly_samesite_cookie(browser, db) -> None:
    user = await make_user(db, email="host@example.org", password=PASSWORD)
    await db.commit()
    page = await browser.get("/signin")
    assert page.status_code == 200
    response = await browser.submit("/signin", {"email": "HOST@example.org", "password": PASSWORD})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert (
        "rt_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    assert user.id
