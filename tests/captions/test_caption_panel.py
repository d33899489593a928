"""The caption panel in the room and the captions page, as drawn by the server: the room's
earlier captions, captions shown to those who asked for them, each person's display
settings (which also work without JavaScript), and who sees what."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.captions.models import CaptionPreference, CaptionSegment
from app.live import channels
from tests.factories import make_world


def live_path(w: Any) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


def segment(session_id: int, channel: str, text: str, at: datetime, **extra: Any) -> CaptionSegment:
    return CaptionSegment(
        session_id=session_id,
        channel=channel,
        speaker_name=extra.pop("speaker_name", "Priya Participant (she/her)"),
        stream_id="s1",
        stream_start=0.0,
        stream_end=1.0,
        started_at=at,
        ended_at=at + timedelta(seconds=2),
        text=text,
        original_text=text,
        words=[],
        **extra,
    )


def caption_log(html: str, channel: str) -> str:
    match = re.search(rf'<ol id="captions-{re.escape(channel)}"[^>]*>(.*?)</ol>', html, re.S)
    assert match, f"no caption list for {channel}"
    return match.group(0)


async def test_the_room_shows_its_earlier_captions_to_a_reader_who_asked_for_them(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    w.participant_b.captions_on = True
    plenary = channels.plenary(w.session.id)
    now = datetime.now(UTC)
    db.add_all(
        [
            segment(w.session.id, plenary, "second thing said", now),
            segment(w.session.id, plenary, "first thing said", now - timedelta(minutes=1)),
            segment(w.session.id, channels.room(w.session.id, w.group_a.id), "in group A", now),
            segment(w.other_session.id, channels.plenary(w.other_session.id), "elsewhere", now),
        ]
    )
    await db.commit()

    page = await browser_factory(w.participant_b).get(live_path(w))
    assert page.status_code == 200
    html = page.text
    log = caption_log(html, plenary)
    assert 'aria-live="polite"' in log
    assert log.index("first thing said") < log.index("second thing said")
    assert "Priya Participant (she/her)" in log
    assert "in group A" not in html and "elsewhere" not in html
    assert '<details class="caption-switch" open>' in html
    assert f'href="{live_path(w)}/transcript.vtt?channel={plenary.replace(":", "%3A")}"' in html

    # Someone who did not ask for captions has them one click away.
    html = (await browser_factory(w.participant_a).get(live_path(w))).text
    assert '<details class="caption-switch">' in html and "Show captions" in html


async def test_display_settings_come_from_the_profile_and_save_without_javascript(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    db.add(
        CaptionPreference(
            user_id=w.participant_a.id, size_percent=210, lines=5, contrast="yellow-on-black"
        )
    )
    await db.commit()
    priya = browser_factory(w.participant_a)

    html = (await priya.get(live_path(w))).text
    # 210 % is shown with the nearest size the panel offers.
    assert 'data-cap-size="200" data-cap-lines="5" data-cap-contrast="yellow-on-black"' in html
    assert '<option value="200" selected>200%</option>' in html
    assert 'value="yellow-on-black" checked' in html

    saved = await priya.submit(
        "/profile/captions",
        {"size_percent": "300", "lines": "1", "contrast": "dark-on-light", "next": live_path(w)},
    )
    assert saved.status_code == 303 and saved.headers["location"] == live_path(w)
    html = (await priya.get(live_path(w))).text
    assert 'data-cap-size="300" data-cap-lines="1" data-cap-contrast="dark-on-light"' in html


async def test_the_captions_page_follows_the_persons_room_and_shows_nothing_else(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    db.add(segment(w.session.id, plenary, "welcome everyone", datetime.now(UTC)))
    await db.commit()

    page = await browser_factory(w.observer).get(live_path(w) + "/captions")
    assert page.status_code == 200
    html = page.text
    assert "welcome everyone" in caption_log(html, plenary)
    assert f'<div data-channel="{plenary}" data-last-id="0">' in html
    assert f'<div data-channel="u{w.observer.id}" data-last-id="0">' in html
    assert f'<a href="{live_path(w)}">Back to Plenary</a>' in html
    assert "composer" not in html and "Caption my speech" not in html
    assert "script-src" not in html and "<script>" not in html  # only script files

    outsider = await browser_factory(w.outsider).get(live_path(w) + "/captions")
    assert outsider.status_code == 404
    anonymous = await browser_factory().get(live_path(w) + "/captions")
    assert anonymous.status_code in (303, 401)


async def test_without_a_speech_model_the_panel_says_captions_are_unavailable(
    db: Any, browser_factory: Any
) -> None:
    # The test settings point at no model (tests/conftest.py).
    w = await make_world(db)
    html = (await browser_factory(w.participant_a).get(live_path(w))).text
    assert "Captions unavailable: the speech model is not installed" in html
    assert "what you say is not captioned" in html
    assert "I agree, start captioning my microphone" not in html
    page = (await browser_factory(w.participant_a).get(live_path(w) + "/captions")).text
    assert "Captions unavailable: the speech model is not installed" in page


async def test_observers_read_captions_but_have_no_microphone(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    html = (await browser_factory(w.observer).get(live_path(w))).text
    assert 'class="caption-log"' in html
    assert 'id="mic"' not in html
    html = (await browser_factory(w.participant_a).get(live_path(w))).text
    assert 'id="mic"' in html
