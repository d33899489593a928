"""Facilitators' caption controls and caption preferences: turning someone's captioning off
and on, correcting a caption (the original and every edit kept), each only by those who
may, audited, and the people affected told; and each person's display preferences."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.captions.models import CaptionEdit, CaptionMute, CaptionPreference, CaptionSegment
from app.live import channels
from app.models import AuditEntry
from realtime.log import LiveEvent
from tests.factories import World, make_world

HX = {"HX-Request": "true"}


def live(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def fresh(db: Any) -> None:
    await db.commit()  # end the earlier read, to see what the app has committed since


async def reread(db: Any, model: Any, key: Any) -> Any:
    await fresh(db)
    return await db.get(model, key, populate_existing=True)


async def events(db: Any, channel: str, kind: str) -> list[dict[str, Any]]:
    await fresh(db)
    rows = await db.scalars(
        select(LiveEvent.wire)
        .where(LiveEvent.channel == channel, LiveEvent.type == kind)
        .order_by(LiveEvent.id)
    )
    return [json.loads(wire) for wire in rows.all()]


async def audited(db: Any, action: str) -> list[AuditEntry]:
    await fresh(db)
    rows = await db.scalars(select(AuditEntry).where(AuditEntry.action == action))
    return list(rows.all())


async def segment_in(db: Any, w: World, channel: str, session_id: int | None = None) -> int:
    start = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    segment = CaptionSegment(
        session_id=session_id or w.session.id,
        channel=channel,
        group_id=channels.room_group_id(channel),
        speaker_id=w.participant_a.id,
        speaker_name="Priya Participant (she/her)",
        stream_id="0123456789abcdef",
        stream_start=1.0,
        stream_end=2.5,
        started_at=start,
        ended_at=start + timedelta(seconds=1.5),
        text="the quick round box",
        original_text="the quick round box",
        words=[{"word": "the", "start": 1.0, "end": 1.2, "conf": 1.0}],
        confidence=0.8,
    )
    db.add(segment)
    await db.commit()
    return segment.id


async def test_correcting_a_caption_keeps_the_original_and_its_history(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    room_a = channels.room(w.session.id, w.group_a.id)
    segment_id = await segment_in(db, w, room_a)
    url = f"{live(w)}/captions/{segment_id}/correct"

    fola = browser_factory(w.facilitator_a)
    first = await fola.submit(url, {"text": "  The quick brown\n fox.  "})
    assert first.status_code == 303 and first.headers["location"] == live(w)
    second = await fola.submit(url, {"text": "The quick brown fox <jumps> & runs."}, headers=HX)
    assert second.status_code == 200 and "corrected" in second.text

    segment = await reread(db, CaptionSegment, segment_id)
    assert segment.text == "The quick brown fox <jumps> & runs."
    assert segment.original_text == "the quick round box"
    assert segment.edited_by_id == w.facilitator_a.id and segment.edited_at is not None
    edits = (
        await db.scalars(
            select(CaptionEdit).where(CaptionEdit.segment_id == segment_id).order_by(CaptionEdit.id)
        )
    ).all()
    assert [(e.old_text, e.new_text, e.editor_id) for e in edits] == [
        ("the quick round box", "The quick brown fox.", w.facilitator_a.id),
        ("The quick brown fox.", "The quick brown fox <jumps> & runs.", w.facilitator_a.id),
    ]

    # Everyone in the room sees the corrected line in place of the old one.
    corrected = await events(db, room_a, "caption.corrected")
    assert len(corrected) == 2
    last = corrected[-1]
    assert last["s"] == "replace" and last["x"] == f"cs-{segment_id}"
    assert last["d"] == {"segment": segment_id, "into": f"captions-{room_a}"}
    assert f'id="cs-{segment_id}"' in last["h"] and "(corrected)" in last["h"]
    assert "&lt;jumps&gt; &amp; runs." in last["h"] and "<jumps>" not in last["h"]
    assert len(await audited(db, "captions.correct")) == 2

    # The host may too; nobody else, and not with empty or overlong text.
    host = browser_factory(w.host)
    assert (await host.submit(url, {"text": "By the host."})).status_code == 303
    for user in (w.facilitator_b, w.participant_a, w.participant_b, w.it_support, w.observer):
        refused = await browser_factory(user).submit(url, {"text": "Mine now"}, headers=HX)
        assert refused.status_code == 403, user.display_name
        assert "facilitators and the hosts" in refused.text
    assert (await browser_factory(w.outsider).submit(url, {"text": "x"})).status_code == 404
    for text, message in (("   ", "Type the corrected caption"), ("x" * 1001, "at most 1,000")):
        bad = await fola.submit(url, {"text": text}, headers=HX)
        assert bad.status_code == 400 and message in bad.text
    missing = await fola.submit(f"{live(w)}/captions/999999/correct", {"text": "x"}, headers=HX)
    assert missing.status_code == 404
    # A caption from another programme's session, through this session's path.
    elsewhere = await segment_in(db, w, channels.plenary(w.other_session.id), w.other_session.id)
    other = await host.submit(f"{live(w)}/captions/{elsewhere}/correct", {"text": "x"}, headers=HX)
    assert other.status_code == 404
    assert (await reread(db, CaptionSegment, segment_id)).text == "By the host."


async def test_who_may_turn_captioning_off_and_on(db: Any, browser_factory: Any) -> None:
    w = await make_world(db)
    url = live(w) + "/captions/mute"
    host = browser_factory(w.host)
    opened = await host.submit(live(w) + "/breakouts/open", {"minutes": "30"})
    assert opened.status_code == 303
    target = {"user_id": str(w.participant_a.id)}

    for user, status in (
        (w.participant_b, 403),
        (w.it_support, 403),
        (w.observer, 403),
        (w.facilitator_b, 403),  # Priya is in group A's room
        (w.outsider, 404),
    ):
        refused = await browser_factory(user).submit(url, target, headers=HX)
        assert refused.status_code == status, user.display_name
    assert await reread(db, CaptionMute, (w.session.id, w.participant_a.id)) is None

    fola = browser_factory(w.facilitator_a)
    muted = await fola.submit(url, target, headers=HX)
    assert muted.status_code == 200 and muted.text == "Priya Participant's captioning is off."
    mute = await reread(db, CaptionMute, (w.session.id, w.participant_a.id))
    assert mute is not None and mute.muted_by_id == w.facilitator_a.id
    personal = channels.personal(w.participant_a.id)
    [notice] = await events(db, personal, "caption.muted")
    assert "turned off live captions of your microphone" in notice["h"]
    again = await fola.submit(url, target, headers=HX)
    assert again.status_code == 200 and "already off" in again.text

    for data, status, message in (
        ({"user_id": str(w.host.id)}, 403, "rooms you facilitate"),  # in the plenary
        ({"user_id": str(w.facilitator_a.id)}, 400, "your own captions"),
        ({"user_id": str(w.outsider.id)}, 404, "could not find"),
        ({"user_id": "abc"}, 400, "Choose a person"),
        ({}, 400, "Choose a person"),
        ({**target, "action": "explode"}, 400, "off or on"),
    ):
        response = await fola.submit(url, data, headers=HX)
        assert (response.status_code, message in response.text) == (status, True), data

    unmuted = await host.submit(url, {**target, "action": "unmute"}, headers=HX)
    assert unmuted.status_code == 200 and "on again" in unmuted.text
    assert await reread(db, CaptionMute, (w.session.id, w.participant_a.id)) is None
    [back] = await events(db, personal, "caption.unmuted")
    assert "allowed again" in back["h"]
    assert [a.actor_id for a in await audited(db, "captions.mute")] == [w.facilitator_a.id]
    assert [a.actor_id for a in await audited(db, "captions.unmute")] == [w.host.id]
    # Without JavaScript: back to the live page.
    plain = await fola.submit(url, target)
    assert plain.status_code == 303 and plain.headers["location"] == live(w)


async def test_caption_display_preferences(db: Any, browser_factory: Any) -> None:
    w = await make_world(db)
    priya = browser_factory(w.participant_a)
    page = await priya.get("/profile/captions")
    assert page.status_code == 200
    html = page.text
    assert html.count("<h1") == 1
    assert 'id="field-size_percent" name="size_percent" type="number" value="150"' in html
    assert 'id="field-lines" name="lines" type="number" value="3"' in html
    assert 'value="light-on-dark" checked' in html
    assert '<label for="contrast-yellow-on-black">' in html

    saved = await priya.submit(
        "/profile/captions", {"size_percent": "200", "lines": "5", "contrast": "yellow-on-black"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/profile/captions?saved=1"
    preference = await reread(db, CaptionPreference, w.participant_a.id)
    assert (preference.size_percent, preference.lines, preference.contrast) == (
        200,
        5,
        "yellow-on-black",
    )
    shown = (await priya.get("/profile/captions?saved=1")).text
    assert "Your caption display has been saved." in shown
    assert 'value="200"' in shown and 'value="yellow-on-black" checked' in shown
    assert len(await audited(db, "captions.preferences")) == 1

    bad = await priya.submit(
        "/profile/captions", {"size_percent": "50", "lines": "eleven", "contrast": "<neon>"}
    )
    assert bad.status_code == 400
    for field, message in (
        ("size_percent", "from 100% to 300%"),
        ("lines", "from 1 to 10 lines"),
        ("contrast", "Choose one of the colour schemes"),
    ):
        assert f'id="error-{field}"' in bad.text and message in bad.text
    assert 'aria-invalid="true"' in bad.text and "<neon>" not in bad.text
    assert (await reread(db, CaptionPreference, w.participant_a.id)).size_percent == 200

    # From the caption panel in a session: back to the session afterwards.
    back = await priya.submit(
        "/profile/captions",
        {"size_percent": "100", "lines": "1", "contrast": "dark-on-light", "next": live(w)},
    )
    assert back.status_code == 303 and back.headers["location"] == live(w)
    assert (await browser_factory().get("/profile/captions")).status_code == 303
