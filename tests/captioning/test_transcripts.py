"""Transcripts of a room's captions: valid WebVTT and SRT and plain text, times from the
room's first caption, corrected text, speakers named, and only for people who may read
that room."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.captions.models import CaptionSegment
from app.live import channels
from captioning.transcripts import Cue, plain_text, srt, webvtt
from tests.factories import World, make_world

T0 = datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
VTT_TIMING = re.compile(
    r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$"
)
SRT_TIMING = re.compile(
    r"^(\d{2}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d),(\d{3})$"
)


def seconds(match: re.Match[str], first: int) -> float:
    h, m, s, ms = (int(match.group(first + i)) for i in range(4))
    return h * 3600 + m * 60 + s + ms / 1000


def validate_webvtt(text: str) -> list[tuple[float, float, str]]:
    """The WebVTT rules a player relies on: the signature, then blocks separated by blank
    lines, each cue an optional identifier, a timing line and its text; cue times in
    order, each ending after it starts; no "-->" in cue text."""
    assert text.startswith("WEBVTT") and text.split("\n", 1)[0] == "WEBVTT"
    blocks = text.rstrip("\n").split("\n\n")
    cues = []
    for block in blocks[1:]:
        lines = block.split("\n")
        if "-->" not in lines[0]:
            identifier = lines.pop(0)
            assert identifier.strip() and "-->" not in identifier
        match = VTT_TIMING.match(lines[0])
        assert match, f"bad timing line {lines[0]!r}"
        start, end = seconds(match, 1), seconds(match, 5)
        assert end > start, lines[0]
        body = lines[1:]
        assert body and all(line.strip() for line in body), block
        assert "-->" not in "\n".join(body)
        cues.append((start, end, "\n".join(body)))
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)
    return cues


def validate_srt(text: str) -> list[tuple[float, float, str]]:
    cues = []
    for number, block in enumerate(text.rstrip("\n").split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        match = SRT_TIMING.match(lines[1])
        assert match, f"bad timing line {lines[1]!r}"
        start, end = seconds(match, 1), seconds(match, 5)
        assert end > start
        assert lines[2:] and all(line.strip() for line in lines[2:])
        cues.append((start, end, "\n".join(lines[2:])))
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)
    return cues


def cue(start: float, end: float, speaker: str, text: str) -> Cue:
    return Cue(T0 + timedelta(seconds=start), T0 + timedelta(seconds=end), speaker, text)


def test_formats_from_the_first_caption_with_speakers() -> None:
    cues = [
        # Out of order on purpose: transcripts sort by start.
        cue(3725.5, 3727.25, "Bo", "and after an hour"),
        cue(5, 7.5, "Priya Participant (she/her)", "hello everyone"),
        cue(9, 9, "Ana & <Co>", "a --> b <i>not markup</i> & more"),
    ]
    vtt = webvtt(cues)
    parsed = validate_webvtt(vtt)
    assert parsed[0] == (0.0, 2.5, "<v Priya Participant (she/her)>hello everyone")
    # A caption with no length still shows long enough to read.
    assert parsed[1][:2] == (4.0, 4.5)
    assert (
        parsed[1][2]
        == "<v Ana &amp; &lt;Co&gt;>a --&gt; b &lt;i&gt;not markup&lt;/i&gt; &amp; more"
    )
    assert parsed[2][:2] == (3720.5, 3722.25)
    assert "01:02:00.500 --> 01:02:02.250" in vtt

    subrip = srt(cues)
    parsed_srt = validate_srt(subrip)
    assert parsed_srt[0] == (0.0, 2.5, "Priya Participant (she/her): hello everyone")
    assert "01:02:00,500 --> 01:02:02,250" in subrip
    assert plain_text(cues).splitlines() == [
        "Priya Participant (she/her): hello everyone",
        "Ana & <Co>: a --> b <i>not markup</i> & more",
        "Bo: and after an hour",
    ]
    # Line breaks in a caption would end the cue early: captions stay on one line.
    assert validate_webvtt(webvtt([cue(0, 1, "Bo", "one\n\ntwo")]))[0][2] == "<v Bo>one two"
    assert webvtt([]) == "WEBVTT\n" and srt([]) == "" and plain_text([]) == ""


async def seed(db: Any, w: World) -> dict[str, Any]:
    room_a = channels.room(w.session.id, w.group_a.id)
    room_b = channels.room(w.session.id, w.group_b.id)
    plenary = channels.plenary(w.session.id)

    def segment(channel: str, start: float, length: float, name: str, text: str, **kw: Any) -> None:
        db.add(
            CaptionSegment(
                session_id=kw.pop("session_id", w.session.id),
                channel=channel,
                group_id=channels.room_group_id(channel),
                speaker_id=kw.pop("speaker_id", w.participant_a.id),
                speaker_name=name,
                stream_id="abc123",
                stream_start=start,
                stream_end=start + length,
                started_at=T0 + timedelta(seconds=start),
                ended_at=T0 + timedelta(seconds=start + length),
                text=kw.pop("text_now", text),
                original_text=text,
                words=[],
                confidence=0.9,
            )
        )

    segment(room_a, 60, 2, "Priya Participant (she/her)", "the quick brown fox")
    segment(
        room_a,
        65.25,
        1.5,
        "Fola Facilitator",
        "welcome to the group",
        text_now="Welcome to Group A.",
    )
    segment(room_a, 61, 1, "Pat", "overlapping words")
    segment(room_b, 10, 2, "Pat Participant", "secret of room b")
    segment(plenary, 0, 3, "Hana Host", "good morning all")
    segment(
        channels.plenary(w.other_session.id),
        0,
        3,
        "Otto",
        "elsewhere",
        session_id=w.other_session.id,
    )
    await db.commit()
    return {"room_a": room_a, "room_b": room_b, "plenary": plenary}


async def test_transcript_downloads(db: Any, browser_factory: Any) -> None:
    w = await make_world(db)
    rooms = await seed(db, w)
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live/transcript"
    fola = browser_factory(w.facilitator_a)

    vtt = await fola.get(base + ".vtt", params={"channel": rooms["room_a"]})
    assert vtt.status_code == 200
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    assert vtt.headers["content-disposition"] == (
        f'attachment; filename="transcript-session-{w.session.id}-group-{w.group_a.id}.vtt"'
    )
    assert validate_webvtt(vtt.text) == [
        (0.0, 2.0, "<v Priya Participant (she/her)>the quick brown fox"),
        (1.0, 2.0, "<v Pat>overlapping words"),
        (5.25, 6.75, "<v Fola Facilitator>Welcome to Group A."),  # the corrected text
    ]
    assert "secret" not in vtt.text and "good morning" not in vtt.text

    subrip = await fola.get(base + ".srt", params={"channel": rooms["room_a"]})
    assert subrip.status_code == 200
    assert subrip.headers["content-type"].startswith("application/x-subrip")
    assert subrip.headers["content-disposition"].startswith("attachment;")
    assert [c[2] for c in validate_srt(subrip.text)] == [
        "Priya Participant (she/her): the quick brown fox",
        "Pat: overlapping words",
        "Fola Facilitator: Welcome to Group A.",
    ]

    text = await fola.get(base + ".txt", params={"channel": rooms["room_a"]})
    assert text.status_code == 200 and text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.headers["content-disposition"].startswith("attachment;")
    assert text.text.splitlines()[-1] == "Fola Facilitator: Welcome to Group A."

    # Without a channel: the person's current room (the plenary: no rooms are open).
    plenary = await browser_factory(w.participant_b).get(base + ".txt")
    assert plenary.status_code == 200 and plenary.text == "Hana Host: good morning all\n"
    assert "plenary.txt" in plenary.headers["content-disposition"]


async def test_transcripts_only_for_those_who_may_read_the_room(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    rooms = await seed(db, w)
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live/transcript.vtt"
    room_a = rooms["room_a"]
    # Group A's members and facilitators and the hosts read group A's room, after the
    # breakout as during it; others in the programme may not.
    for user, status in (
        (w.participant_a, 200),
        (w.facilitator_a, 200),
        (w.host, 200),
        (w.admin, 200),
        (w.participant_b, 403),
        (w.facilitator_b, 403),
        (w.it_support, 403),
        (w.observer, 403),
        (w.outsider, 404),
    ):
        response = await browser_factory(user).get(base, params={"channel": room_a})
        assert response.status_code == status, user.display_name
    participant = browser_factory(w.participant_a)
    for channel in (
        channels.staff(w.session.id),
        channels.helpdesk(w.session.id),
        channels.personal(w.participant_a.id),
        channels.plenary(w.other_session.id),
        channels.room(w.session.id, w.other_group.id),
        channels.room(w.session.id, 999999),
        "s1:nonsense",
    ):
        response = await participant.get(base, params={"channel": channel})
        assert response.status_code == 404, channel
    anonymous = await browser_factory().get(base)
    assert anonymous.status_code == 303
