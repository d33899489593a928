"""Every route, with every role and with no sign-in: who may and who may not.

The table below is the access policy. A route missing from it fails the test, so a new
route cannot ship without a decision about who may use it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.captions.asr_models import AsrToken
from app.captions.asr_tokens import issue_token
from app.captions.models import CaptionSegment
from app.config import Settings
from app.db import utcnow
from app.evidence.models import Coding, EvidenceItem, Theme
from app.factory import create_app
from app.live import channels
from app.live.models import ChatMessage, HelpRequest
from app.models import Membership, Paper
from app.stage.models import Deck, Slide, StageRole, StageTile
from app.voice.recording_models import VoiceRecording
from tests.factories import World, make_world

ANON = "anonymous"
OUTSIDER = "outsider"  # a participant of another programme
OBSERVER = "observer"
PARTICIPANT = "participant"  # a participant in group A (the group used in paths)
OTHER_PARTICIPANT = "other_participant"  # a participant in group B
FACILITATOR = "facilitator"  # facilitator of group A
OTHER_FACILITATOR = "other_facilitator"  # facilitator of group B
IT = "it_support"
HOST = "host"
ADMIN = "admin"
ROLES = [
    ANON,
    OUTSIDER,
    OBSERVER,
    PARTICIPANT,
    OTHER_PARTICIPANT,
    FACILITATOR,
    OTHER_FACILITATOR,
    IT,
    HOST,
    ADMIN,
]

EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {ANON}
MEMBERS = SIGNED_IN - {OUTSIDER}
STAFF = frozenset({FACILITATOR, OTHER_FACILITATOR, IT, HOST, ADMIN})
HOSTS = frozenset({HOST, ADMIN})
ADMINS = frozenset({ADMIN})
GROUP_A = frozenset({PARTICIPANT, FACILITATOR, HOST, ADMIN})
GROUP_A_MODERATORS = frozenset({FACILITATOR, HOST, ADMIN})
CODERS = frozenset({FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN})

# (method, path) -> who may use it.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/signin"): EVERYONE,
    ("POST", "/signin"): EVERYONE,
    ("GET", "/invite/{token}"): EVERYONE,
    ("POST", "/invite/{token}"): EVERYONE,
    # Only the invited person can answer; everyone else finds nothing there.
    ("POST", "/memberships/{membership_id}/accept"): frozenset(),
    ("POST", "/memberships/{membership_id}/decline"): frozenset(),
    ("POST", "/signout"): EVERYONE,
    ("POST", "/signout-everywhere"): SIGNED_IN,
    ("GET", "/accessibility"): EVERYONE,
    ("GET", "/"): SIGNED_IN,
    ("GET", "/profile"): SIGNED_IN,
    ("POST", "/profile"): SIGNED_IN,
    ("POST", "/profile/password"): SIGNED_IN,
    ("GET", "/admin"): ADMINS,
    ("POST", "/admin/programmes"): ADMINS,
    ("GET", "/programmes/{programme_id}"): MEMBERS,
    ("GET", "/programmes/{programme_id}/settings"): HOSTS,
    ("POST", "/programmes/{programme_id}/settings"): HOSTS,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("PATCH", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/programmes"): SIGNED_IN,
    ("POST", "/api/v1/programmes"): ADMINS,
    ("GET", "/api/v1/programmes/{programme_id}"): MEMBERS,
    ("PATCH", "/api/v1/programmes/{programme_id}"): HOSTS,
    # Roster, groups and invitations.
    ("GET", "/programmes/{programme_id}/roster"): HOSTS,
    ("POST", "/programmes/{programme_id}/roster/import"): HOSTS,
    ("POST", "/programmes/{programme_id}/roster/auto-assign"): HOSTS,
    ("POST", "/programmes/{programme_id}/roster/invitations"): HOSTS,
    ("POST", "/programmes/{programme_id}/members/{membership_id}/move"): HOSTS,
    ("POST", "/programmes/{programme_id}/members/{membership_id}/invitation"): HOSTS,
    ("GET", "/programmes/{programme_id}/groups"): MEMBERS,
    ("POST", "/programmes/{programme_id}/groups"): HOSTS,
    ("GET", "/programmes/{programme_id}/groups/{group_id}"): GROUP_A,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/settings"): HOSTS,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/facilitators"): HOSTS,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}/remove"): HOSTS,
    ("GET", "/api/v1/programmes/{programme_id}/groups"): MEMBERS,
    ("POST", "/api/v1/programmes/{programme_id}/groups"): HOSTS,
    ("GET", "/api/v1/programmes/{programme_id}/groups/{group_id}"): GROUP_A,
    ("PATCH", "/api/v1/programmes/{programme_id}/groups/{group_id}"): HOSTS,
    ("PUT", "/api/v1/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}"): HOSTS,
    ("DELETE", "/api/v1/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}"): HOSTS,
    ("GET", "/api/v1/programmes/{programme_id}/members"): STAFF,
    ("PATCH", "/api/v1/programmes/{programme_id}/members/{membership_id}"): HOSTS,
    ("POST", "/api/v1/programmes/{programme_id}/roster"): HOSTS,
    ("POST", "/api/v1/programmes/{programme_id}/auto-assign"): HOSTS,
    ("POST", "/api/v1/programmes/{programme_id}/invitations"): HOSTS,
    # Sessions, papers and calendars
    ("GET", "/programmes/{programme_id}/sessions"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/new"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/edit"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/delete"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/delete"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/papers"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/papers/{paper_id}"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/papers/{paper_id}/delete"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/calendar.ics"): MEMBERS,
    # Decks (the seeded one is group A's breakout deck, not downloadable)
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/decks"): CODERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/decks"): CODERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}"): GROUP_A,
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/slides/{number}.webp",
    ): GROUP_A,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/original"): (
        GROUP_A_MODERATORS
    ),
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/pdf"): (
        GROUP_A_MODERATORS
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/rename"): (
        GROUP_A_MODERATORS
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/downloadable"): (
        GROUP_A_MODERATORS
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/slides/{number}"): (
        GROUP_A_MODERATORS
    ),
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/delete"): (
        GROUP_A_MODERATORS
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/delete"): (
        GROUP_A_MODERATORS
    ),
    ("GET", "/me/calendar.ics"): SIGNED_IN,
    ("GET", "/api/v1/programmes/{programme_id}/sessions"): MEMBERS,
    ("POST", "/api/v1/programmes/{programme_id}/sessions"): HOSTS,
    ("GET", "/api/v1/programmes/{programme_id}/sessions/{session_id}"): MEMBERS,
    ("PATCH", "/api/v1/programmes/{programme_id}/sessions/{session_id}"): HOSTS,
    ("DELETE", "/api/v1/programmes/{programme_id}/sessions/{session_id}"): HOSTS,
    ("GET", "/api/v1/programmes/{programme_id}/sessions/{session_id}/papers"): MEMBERS,
    ("POST", "/api/v1/programmes/{programme_id}/sessions/{session_id}/papers"): HOSTS,
    ("DELETE", "/api/v1/programmes/{programme_id}/sessions/{session_id}/papers/{paper_id}"): HOSTS,
    # The live session
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/room"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/panel"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/captions"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/sse"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/poll"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/chat"): MEMBERS - {OBSERVER},
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/messages/{message_id}/report",
    ): MEMBERS,
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/messages/{message_id}/remove",
    ): HOSTS,
    # Live actions: breakouts, hands and help, moderation, presence. (An empty form gets
    # 400 or 409 from those allowed: the role is checked before the input.)
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/breakouts/open"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/breakouts/extend"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/breakouts/close"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/broadcast"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/move"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/enter"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/hand"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/help"): MEMBERS,
    # The seeded request is participant A's, from group A's room.
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/help/{help_id}/claim"): (
        frozenset({FACILITATOR, IT, HOST, ADMIN})
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/help/{help_id}/resolve"): (
        frozenset({PARTICIPANT, FACILITATOR, IT, HOST, ADMIN})
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/mute"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/room-settings"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/occupancy"): STAFF,
    # Voice: the host gives the floor and opens the mic; facilitators and hosts mute.
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/voice/floor/give"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/voice/floor/take"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/voice/open-mic"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/voice/mute"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/voice/mute-all"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    # The stage's video: hosts name and pin; a tile is stopped by a host or its own person
    # (the seeded one is participant A's); anyone in the room asks for their camera (refused
    # there: no breakout room is open); only a pinned person posts frames (participant A).
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/roles"): HOSTS,
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/stage/roles/{role_id}/remove",
    ): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/tiles/pin"): HOSTS,
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/stage/tiles/{tile_id}/stop",
    ): frozenset({PARTICIPANT, HOST, ADMIN}),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/camera/on"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/camera/off"): MEMBERS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/video"): frozenset(
        {PARTICIPANT}
    ),
    # The stage's slides: everyone in the session sees the stage of their room and looks back
    # (with no deck named: refused as a bad request); its presenters (in the plenary, where
    # everyone is here: the hosts) change slides and see the controls.
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/stage"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/stage/look"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/stage/controls"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/slide"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/stage/stop"): HOSTS,
    # A slide's image by the signed link the stage gives out: without the link's signature,
    # nobody.
    ("GET", "/slide-images/{key}.webp"): frozenset(),
    # Consoles: a group's for its facilitators and the hosts; the host console for hosts.
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/console"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/live/console/{group_id}",
    ): GROUP_A_MODERATORS,
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/live/console/{group_id}/room",
    ): GROUP_A_MODERATORS,
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/live/console/{group_id}/people",
    ): GROUP_A_MODERATORS,
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/console/{group_id}/notes",
    ): GROUP_A_MODERATORS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/host"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/host/room"): HOSTS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/host/rooms"): HOSTS,
    # The tech check: anyone signed in (a request for help goes to their own session).
    ("GET", "/tech-check"): SIGNED_IN,
    ("GET", "/tech-check/ping"): SIGNED_IN,
    ("POST", "/tech-check/caption"): SIGNED_IN,
    ("POST", "/tech-check/help"): SIGNED_IN,
    ("POST", "/tech-check/voice"): SIGNED_IN,
    # Live captions. Transcripts: of one's current room by default (the plenary here).
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/transcript.vtt"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/transcript.srt"): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/transcript.txt"): MEMBERS,
    # Voice recording: hosts start and stop it; the seeded recording is of the plenary, which
    # every member may hear and read; the live <audio> stream is of one's own room.
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/recording/start"): HOSTS,
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/recording/stop"): HOSTS,
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/live/recordings/{recording_id}/audio.ogg",
    ): MEMBERS,
    (
        "GET",
        "/programmes/{programme_id}/sessions/{session_id}/live/recordings/{recording_id}/captions.vtt",
    ): MEMBERS,
    ("GET", "/programmes/{programme_id}/sessions/{session_id}/live/voice.ogg"): MEMBERS,
    # Turning someone's captioning off: facilitators (of that person's room) and hosts.
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/captions/mute"): frozenset(
        {FACILITATOR, OTHER_FACILITATOR, HOST, ADMIN}
    ),
    # The seeded caption was said in group A's room.
    (
        "POST",
        "/programmes/{programme_id}/sessions/{session_id}/live/captions/{segment_id}/correct",
    ): GROUP_A_MODERATORS,
    # Speaking without WebSockets: anyone who may speak in their room (not observers); a
    # stream's token is its starter's alone, so a made-up one is nobody's.
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/audio/http/start"): (
        MEMBERS - {OBSERVER}
    ),
    ("POST", "/programmes/{programme_id}/sessions/{session_id}/live/audio/http/{stream}"): (
        frozenset()
    ),
    ("GET", "/profile/captions"): SIGNED_IN,
    ("POST", "/profile/captions"): SIGNED_IN,
    # Speech recognition tokens: administrators and anyone hosting a programme.
    ("GET", "/asr/tokens"): HOSTS,
    ("POST", "/asr/tokens"): HOSTS,
    ("POST", "/asr/tokens/{token_id}/revoke"): HOSTS,
    # Evidence: a group's board is its members', its facilitators' and the hosts'. The
    # seeded image was uploaded by the participant of group A; the transcript routes act on
    # a seeded sound file whose transcription failed.
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/upload"): GROUP_A,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/upload"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/notes/new"): GROUP_A,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/notes"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/links/new"): GROUP_A,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/links"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/export.zip"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/file"): GROUP_A,
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/thumbnail"): GROUP_A,
    # The uploader and the group's organisers.
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/edit"): GROUP_A,
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/alt-text"): GROUP_A,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/hide",
    ): GROUP_A_MODERATORS,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/unhide",
    ): GROUP_A_MODERATORS,
    # The uploader and hosts (facilitators hide instead).
    ("GET", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/delete"): frozenset(
        {PARTICIPANT, HOST, ADMIN}
    ),
    ("POST", "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/delete"): frozenset(
        {PARTICIPANT, HOST, ADMIN}
    ),
    (
        "GET",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/transcript/panel",
    ): GROUP_A,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/transcript",
    ): GROUP_A_MODERATORS,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/transcript/retry",
    ): GROUP_A_MODERATORS,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/codings",
    ): GROUP_A_MODERATORS,
    (
        "POST",
        "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/codings/{coding_id}/delete",
    ): GROUP_A_MODERATORS,
    # The codebook and the theme overview: hosts and facilitators (a facilitator sees only
    # the groups they facilitate); merging and deleting themes: hosts.
    ("GET", "/programmes/{programme_id}/themes"): CODERS,
    ("POST", "/programmes/{programme_id}/themes"): CODERS,
    ("POST", "/programmes/{programme_id}/themes/{theme_id}/edit"): CODERS,
    ("POST", "/programmes/{programme_id}/themes/{theme_id}/merge"): HOSTS,
    ("GET", "/programmes/{programme_id}/themes/{theme_id}/delete"): HOSTS,
    ("POST", "/programmes/{programme_id}/themes/{theme_id}/delete"): HOSTS,
    ("GET", "/programmes/{programme_id}/themes/overview"): CODERS,
    ("GET", "/programmes/{programme_id}/themes/codings.csv"): CODERS,
    ("GET", "/programmes/{programme_id}/themes/codebook.csv"): CODERS,
}

# Routes whose success for one person changes what the next person can do (deletions):
# each allowed role is tried against a fresh world.
DESTRUCTIVE_METHODS = {"DELETE"}


# POSTs after which the thing acted on is gone, so the next person allowed would not find it.
DESTRUCTIVE_ENDINGS = ("/delete", "/stage/tiles/{tile_id}/stop", "/stage/roles/{role_id}/remove")


def destructive(method: str, path: str) -> bool:
    return method in DESTRUCTIVE_METHODS or (
        method == "POST" and path.endswith(DESTRUCTIVE_ENDINGS)
    )


# Streams end at once in this test, instead of waiting for news.
QUERY_FOR = {"/sse": {"duration": "0"}, "/poll": {"wait": "0"}, "/voice.ogg": {"duration": "0"}}


def app_routes() -> list[tuple[str, str]]:
    """Every route, from the OpenAPI document (no route is hidden from it)."""
    app = create_app(Settings(_env_file=None, environment="test"))  # type: ignore[call-arg]
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            routes.append((method.upper(), path))
    assert routes, "the application has no routes"
    return routes


ROUTES = app_routes()


def test_every_route_has_an_access_rule() -> None:
    missing = [r for r in ROUTES if r not in POLICY]
    stale = [r for r in POLICY if r not in ROUTES]
    assert not missing, f"routes with no access rule: {missing}"
    assert not stale, f"access rules for routes that do not exist: {stale}"


@dataclass
class Actors:
    world: World
    users: dict[str, Any]


def actors_of(w: World) -> dict[str, Any]:
    return {
        ANON: None,
        OUTSIDER: w.outsider,
        OBSERVER: w.observer,
        PARTICIPANT: w.participant_a,
        OTHER_PARTICIPANT: w.participant_b,
        FACILITATOR: w.facilitator_a,
        OTHER_FACILITATOR: w.facilitator_b,
        IT: w.it_support,
        HOST: w.host,
        ADMIN: w.admin,
    }


async def path_values(db: Any, w: World) -> dict[str, Any]:
    """Real ids from the world for every path parameter any route uses."""
    membership = await db.scalar(select(Membership).where(Membership.user_id == w.participant_a.id))
    paper = await db.scalar(
        select(Paper).where(Paper.session_id == w.session.id).order_by(Paper.id).limit(1)
    )
    message = await db.scalar(select(ChatMessage).where(ChatMessage.session_id == w.session.id))
    help_request = await db.scalar(
        select(HelpRequest).where(HelpRequest.session_id == w.session.id)
    )
    segment = await db.scalar(
        select(CaptionSegment).where(CaptionSegment.session_id == w.session.id)
    )
    image = await db.scalar(
        select(EvidenceItem).where(
            EvidenceItem.group_id == w.group_a.id, EvidenceItem.kind == "image"
        )
    )
    sound = await db.scalar(
        select(EvidenceItem).where(
            EvidenceItem.group_id == w.group_a.id, EvidenceItem.kind == "audio"
        )
    )
    theme = await db.scalar(select(Theme).where(Theme.programme_id == w.programme.id))
    recording = await db.scalar(
        select(VoiceRecording).where(VoiceRecording.session_id == w.session.id)
    )
    coding = await db.scalar(
        select(Coding).join(EvidenceItem).where(EvidenceItem.group_id == w.group_a.id)
    )
    deck = await db.scalar(select(Deck).where(Deck.session_id == w.session.id))
    return {
        "deck_id": deck.id if deck else 0,
        "number": 1,
        "item_id": image.id if image else 0,
        "audio_item_id": sound.id if sound else 0,
        "coded_item_id": coding.item_id if coding else 0,
        "theme_id": theme.id if theme else 0,
        "coding_id": coding.id if coding else 0,
        "help_id": help_request.id if help_request else 0,
        "message_id": message.id if message else 0,
        "programme_id": w.programme.id,
        "group_id": w.group_a.id,
        "session_id": w.session.id,
        "membership_id": membership.id if membership else 0,
        "paper_id": paper.id if paper else 0,
        "recording_id": recording.id if recording else 0,
        "role_id": await db.scalar(
            select(StageRole.id).where(StageRole.session_id == w.session.id)
        ),
        "tile_id": await db.scalar(
            select(StageTile.id).where(StageTile.session_id == w.session.id)
        ),
        "segment_id": segment.id if segment else 0,
        "token": "not-a-real-invitation",
        "key": "0" * 32,
        "stream": "not-a-real-stream-token",
        "token_id": await db.scalar(select(AsrToken.id).where(AsrToken.created_by_id == w.host.id)),
        "user_id": w.participant_a.id,
    }


def url_for(path: str, values: dict[str, Any]) -> str:
    """The path with real ids; transcript routes act on the seeded sound file, coding
    routes on the coded note."""
    if "/transcript" in path:
        values = {**values, "item_id": values["audio_item_id"]}
    elif "/codings" in path:
        values = {**values, "item_id": values["coded_item_id"]}
    return path.format(**values)


def denied(status: int, location: str, role: str, path: str) -> bool:
    if status in (401, 403, 404):
        return True
    # Pages send someone who is not signed in to the sign-in page.
    return role == ANON and status == 303 and location.startswith("/signin?next=")


async def call(browser: Any, method: str, url: str) -> Any:
    for suffix, params in QUERY_FOR.items():
        if url.endswith(suffix):
            return await browser.get(url, params=params)
    if url.startswith("/api/"):
        kwargs: dict[str, Any] = {}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = {}
        return await browser.api(method, url, **kwargs)
    if method == "GET":
        return await browser.get(url)
    return (
        await browser.submit(url, {})
        if method == "POST"
        else await browser.request(method, url, headers={"X-CSRF-Token": browser.csrf_token()})
    )


async def seed_extras(db: Any, w: World, storage: Any) -> None:
    """Things some routes act on: a paper on the session."""

    async def one_chunk():  # type: ignore[no-untyped-def]
        yield b"%PDF-1.4\n% a small paper\n"

    stored = await storage.save(one_chunk(), max_bytes=1024)
    db.add(
        Paper(
            session_id=w.session.id,
            title="Pre-reading",
            filename="reading.pdf",
            content_type="application/pdf",
            size_bytes=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            uploaded_by_id=w.host.id,
        )
    )
    # Participant A, named as the interpreter and pinned on the plenary stage.
    db.add(StageRole(session_id=w.session.id, user_id=w.participant_a.id, role="interpreter"))
    db.add(
        StageTile(
            session_id=w.session.id,
            channel=channels.plenary(w.session.id),
            user_id=w.participant_a.id,
            kind="interpreter",
        )
    )
    db.add(
        ChatMessage(
            session_id=w.session.id,
            channel=channels.plenary(w.session.id),
            author_id=w.participant_a.id,
            body="Hello from the plenary",
            client_id="seed",
        )
    )
    await issue_token(db, label="Seeded", days=5, created_by=w.host)
    db.add(
        HelpRequest(
            session_id=w.session.id,
            kind="help",
            requester_id=w.participant_a.id,
            group_id=w.group_a.id,
            note="My sound is not working",
        )
    )
    now = utcnow()
    db.add(
        CaptionSegment(
            session_id=w.session.id,
            channel=channels.room(w.session.id, w.group_a.id),
            group_id=w.group_a.id,
            speaker_id=w.participant_a.id,
            speaker_name="Priya Participant (she/her)",
            stream_id="seeded",
            stream_start=0.0,
            stream_end=1.0,
            started_at=now,
            ended_at=now,
            text="hello everyone",
            original_text="hello everyone",
            words=[],
        )
    )
    await seed_evidence(db, w, storage)
    await seed_recording(db, w, storage)
    await seed_deck(db, w, storage)
    await db.commit()


async def seed_deck(db: Any, w: World, storage: Any) -> None:
    """Group A's breakout deck of one slide (not downloadable), with its files."""

    async def one_chunk(data: bytes):  # type: ignore[no-untyped-def]
        yield data

    pdf = await storage.save(one_chunk(b"%PDF-1.4\n% a deck\n"), max_bytes=1024)
    image = await storage.save(one_chunk(b"RIFF\x00\x00\x00\x00WEBPVP8 "), max_bytes=1024)
    entry = {"key": image.key, "bytes": image.size, "height": 270}
    slide = Slide(number=1, width=1600, height=900, text="Welcome", title="Welcome")
    slide.images = {"480": entry, "960": entry, "1600": entry}
    db.add(
        Deck(
            session_id=w.session.id,
            group_id=w.group_a.id,
            title="Prompts",
            original_name="prompts.pdf",
            original_type="pdf",
            original_key=pdf.key,
            original_size=pdf.size,
            pdf_key=pdf.key,
            page_count=1,
            uploaded_by_id=w.facilitator_a.id,
            slides=[slide],
        )
    )


async def seed_recording(db: Any, w: World, storage: Any) -> None:
    """A stored recording of the plenary."""

    async def one_chunk():  # type: ignore[no-untyped-def]
        yield b"OggS a recording"

    stored = await storage.save(one_chunk(), max_bytes=1024)
    paper = Paper(
        session_id=w.session.id,
        kind="recording",
        title="Plenary, recorded",
        filename="recording.ogg",
        content_type="audio/ogg",
        size_bytes=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        uploaded_by_id=w.host.id,
    )
    db.add(paper)
    await db.flush()
    now = utcnow()
    db.add(
        VoiceRecording(
            session_id=w.session.id,
            channel=channels.plenary(w.session.id),
            room_name="Plenary",
            started_by_id=w.host.id,
            started_at=now,
            stopped_at=now,
            stop_reason="stopped by a host",
            paper_id=paper.id,
        )
    )


async def seed_evidence(db: Any, w: World, storage: Any) -> None:
    """An image in group A's evidence (with a file and a thumbnail), a sound file whose
    transcription failed, and a note coded with a theme."""

    async def chunks(data: bytes):  # type: ignore[no-untyped-def]
        yield data

    picture = await storage.save(chunks(b"\xff\xd8\xff\xe0 a picture"), max_bytes=1024)
    thumbnail = await storage.save(chunks(b"RIFF\0\0\0\0WEBP a thumbnail"), max_bytes=1024)
    sound = await storage.save(chunks(b"RIFF\0\0\0\0WAVE a recording"), max_bytes=1024)
    common = {
        "programme_id": w.programme.id,
        "group_id": w.group_a.id,
        "uploader_id": w.participant_a.id,
    }
    image = EvidenceItem(
        **common,
        kind="image",
        title="Our wall of notes",
        filename="wall.jpg",
        content_type="image/jpeg",
        size_bytes=picture.size,
        sha256=picture.sha256,
        storage_key=picture.key,
        thumbnail_key=thumbnail.key,
        alt_text="Sticky notes: be heard",
        search_text="Our wall of notes",
    )
    audio = EvidenceItem(
        **common,
        kind="audio",
        title="Voice note",
        filename="voice.wav",
        content_type="audio/wav",
        size_bytes=sound.size,
        sha256=sound.sha256,
        storage_key=sound.key,
        transcript_status="failed",
        transcript_error="We could not decode this sound file.",
        search_text="Voice note",
    )
    note = EvidenceItem(
        **common,
        kind="note",
        title="What we heard",
        note_markdown="Junior staff rarely speak first.",
        search_text="What we heard",
    )
    theme = Theme(programme_id=w.programme.id, name="Being heard", created_by_id=w.host.id)
    db.add_all([image, audio, note, theme])
    await db.flush()
    db.add(Coding(item_id=note.id, theme_id=theme.id, coder_id=w.facilitator_a.id))


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_route_admits_exactly_its_policy(
    method: str, path: str, app_and_state: Any, browser_factory: Any, db: Any
) -> None:
    allowed = POLICY.get((method, path))
    if allowed is None:
        pytest.fail(f"{method} {path} has no access rule")
    _app, state = app_and_state
    w = await make_world(db)
    await seed_extras(db, w, state.storage)
    users = actors_of(w)
    url = url_for(path, await path_values(db, w))
    failures = []
    # Those who may not go first, so that nothing they are refused has been changed.
    for role in sorted(ROLES, key=lambda r: r in allowed):
        if role in allowed and destructive(method, path):
            # A fresh copy of the world each time, so an earlier deletion does not hide access.
            w = await make_world(db)
            await seed_extras(db, w, state.storage)
            users = actors_of(w)
            url = url_for(path, await path_values(db, w))
        response = await call(browser_factory(users[role]), method, url)
        location = response.headers.get("location", "")
        assert response.status_code < 500, f"{role}: {method} {url} -> {response.status_code}"
        refused = denied(response.status_code, location, role, path)
        if role in allowed and refused:
            failures.append(f"{role} should be allowed but got {response.status_code} {location}")
        if role not in allowed and not refused:
            failures.append(f"{role} should be refused but got {response.status_code} {location}")
    assert not failures, f"{method} {path}:\n" + "\n".join(failures)


# Invitation links across programmes: who a host may put on their roster (and what that
# does), and for whom they may then make a link that signs in. Host of the other programme
# ("Another programme") against each kind of account; and the programme's own host against
# its own members. (victim, importer) -> (membership status after import, link made?)
LINK_POLICY: dict[tuple[str, str], tuple[str, bool]] = {
    (ADMIN, "other_host"): ("invited", False),
    (HOST, "other_host"): ("invited", False),  # hosts a programme, has a password
    (FACILITATOR, "other_host"): ("invited", False),  # has a password
    (IT, "other_host"): ("invited", False),  # has a password
    (PARTICIPANT, "other_host"): ("invited", False),  # a member elsewhere: no link power
    (OBSERVER, "other_host"): ("invited", False),
    ("newcomer", "other_host"): ("active", True),  # no account yet: a link is how they join
    (FACILITATOR, HOST): ("active", False),  # own programme, but has a password
    (IT, HOST): ("active", False),
    (PARTICIPANT, HOST): ("active", True),  # own programme, no password: links are for them
    (OBSERVER, HOST): ("active", True),
}


@pytest.mark.parametrize(("victim", "importer"), list(LINK_POLICY), ids=str)
async def test_imports_and_links_across_programmes(
    victim: str, importer: str, browser_factory: Any, db: Any
) -> None:
    from app.models import Role, User
    from tests.factories import PASSWORD, add_member, make_user

    w = await make_world(db)
    if importer == "other_host":
        host = await make_user(db, name="Other Host", password=PASSWORD)
        await add_member(db, w.other_programme, host, Role.HOST)
        programme_id = w.other_programme.id
    else:
        host, programme_id = w.host, w.programme.id
    email = "newcomer@example.org" if victim == "newcomer" else actors_of(w)[victim].email
    await db.commit()
    hosting = browser_factory(host)
    data = f"name,email,role,group\r\nSomeone,{email},participant,Oak\r\n".encode()
    if victim in (FACILITATOR, IT) and importer == HOST:
        data = f"name,email\r\nSomeone,{email}\r\n".encode()  # the row keeps their role
    imported = await hosting.submit(
        f"/programmes/{programme_id}/roster/import",
        {},
        files={"file": ("roster.csv", data, "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    user = await db.scalar(select(User).where(User.email == email))
    membership = await db.scalar(
        select(Membership)
        .where(Membership.user_id == user.id, Membership.programme_id == programme_id)
        .execution_options(populate_existing=True)
    )
    expected_status, link_made = LINK_POLICY[(victim, importer)]
    assert membership.status == expected_status
    answer = await hosting.submit(f"/programmes/{programme_id}/members/{membership.id}/invitation")
    links = re.findall(r'<code class="invite-link">http://testserver([^<]+)</code>', answer.text)
    assert bool(links) is link_made, answer.status_code
    if not link_made:
        assert answer.status_code == 409
        return
    # The link signs in as that person, and reaches only their own programme.
    visitor = browser_factory()
    assert (await visitor.submit(links[0])).status_code == 303
    me = (await visitor.get("/api/v1/me")).json()
    assert me["is_admin"] is False and (await visitor.get("/admin")).status_code == 403
    elsewhere = w.programme.id if programme_id != w.programme.id else w.other_programme.id
    assert (await visitor.get(f"/programmes/{elsewhere}")).status_code == 404
