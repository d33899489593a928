"""Every live event the product sends: its payload schema and its fragment, in one place."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from realtime.events import EventRegistry, EventType


class ChatMessagePayload(BaseModel):
    id: int
    author: str
    pronouns: str = ""
    text: str = Field(max_length=2000)
    at: datetime
    time_label: str
    private: bool = False
    to: str = ""


class MessageRemovedPayload(BaseModel):
    id: int


class RoomSettingsPayload(BaseModel):
    channel: str
    locked: bool
    slow_mode_seconds: int


class NoticePayload(BaseModel):
    """A line for one person or a room: muted, moved, locked..."""

    text: str = Field(max_length=500)


class BroadcastPayload(BaseModel):
    author: str
    text: str = Field(max_length=1000)
    time_label: str


class BreakoutPayload(BaseModel):
    ends_at: datetime
    closes_at: datetime | None = None
    text: str = Field(max_length=300)


class RoomChangedPayload(BaseModel):
    text: str = Field(max_length=300)


class HelpPayload(BaseModel):
    id: int
    kind: str
    who: str
    room: str
    note: str = ""
    status: str
    at: datetime
    time_label: str
    claimed_by: str = ""


class HandPayload(BaseModel):
    """A raised hand as the rest of the room sees it (no buttons; staff act at the help desk)."""

    id: int
    who: str
    raised: bool


class ReportPayload(BaseModel):
    message_id: int
    room: str
    author: str
    excerpt: str
    reporter: str
    reason: str = ""


class CaptionPartialPayload(BaseModel):
    """What a speaker is saying now (not stored; replaced by the next one or the final)."""

    stream: str = Field(max_length=40)
    speaker: str = Field(max_length=200)
    text: str = Field(max_length=5000)


class CaptionFinalPayload(BaseModel):
    """A final caption (a stored CaptionSegment), and the same after a correction."""

    id: int
    stream: str = Field(max_length=40)
    speaker: str = Field(max_length=200)
    text: str = Field(max_length=5000)
    start: datetime
    end: datetime
    time_label: str
    edited: bool = False


class PresencePayload(BaseModel):
    channel: str
    names: list[str]
    count: int
    show_names: bool


class SpeakingPayload(BaseModel):
    """Who has a live caption microphone in a room now (app/live/speaking.py)."""

    channel: str
    names: list[str]


class TalkingPayload(BaseModel):
    """Who is talking in a room now, as the voice router hears it (app/live/talking.py)."""

    channel: str
    names: list[str]


class VoiceFloorPayload(BaseModel):
    """Who may be heard in a room changed (app/voice/floor.py): the floor given or taken
    back, open mic on or off. Sent to the room and, for the floor, to the person."""

    channel: str = Field(max_length=100)
    # "given", "taken", "open_mic_on" or "open_mic_off"
    change: str = Field(max_length=20)
    who: str = Field(default="", max_length=200)
    open_mic: bool
    text: str = Field(max_length=500)


class VoiceMutedPayload(BaseModel):
    """A facilitator or host muted someone's microphone (once: they unmute themselves)."""

    by: str = Field(max_length=200)
    message: str = Field(max_length=500)


class RecordingPayload(BaseModel):
    """Whether a room is being recorded (app/voice/recording_actions.py); replaces the
    room's recording indicator."""

    channel: str = Field(max_length=100)
    on: bool
    text: str = Field(max_length=300)


class StageSlidePayload(BaseModel):
    """What a room's stage shows now (app/stage/present.py): a slide of a deck, or nothing
    (deck_id 0). Replaces the stage's live slide; the page announces number and title."""

    deck_id: int
    deck_title: str = Field(default="", max_length=200)
    number: int = 0
    count: int = 0
    title: str = Field(default="", max_length=200)
    # The slide's own text (screen readers, text-only mode) and the presenter's description.
    text: str = Field(default="", max_length=20_000)
    alt_text: str = Field(default="", max_length=5_000)
    # The image at the common width, and the srcset of every width.
    image_url: str = Field(default="", max_length=300)
    srcset: str = Field(default="", max_length=1_000)
    # The next slide's srcset, which pages fetch ahead while this one is shown.
    next_srcset: str = Field(default="", max_length=1_000)
    width: int = 0
    height: int = 0
    presenter: str = Field(default="", max_length=200)
    # Once the presenter lets people download the deck: as PDF, and as uploaded.
    pdf_url: str = Field(default="", max_length=300)
    original_url: str = Field(default="", max_length=300)
    original_type: str = Field(default="", max_length=20)


STAGE_EVENTS = (
    EventType("stage.slide", StageSlidePayload, "stage/_live_slide.html", swap="replace"),
)


class TileItem(BaseModel):
    id: int
    user_id: int
    name: str = Field(max_length=200)
    # "presenter", "interpreter" or "camera" (app/stage/models.py: TileKind)
    kind: str = Field(max_length=20)


class TilesPayload(BaseModel):
    """The video tiles a room's stage shows now (app/stage/tiles.py); replaces the room's
    list of tiles. Those whose tile it is start or stop sending after their recheck."""

    channel: str = Field(max_length=100)
    tiles: list[TileItem] = Field(max_length=8)


VOICE_EVENTS = (
    EventType(
        "voice.active",
        TalkingPayload,
        "live/events/voice_active.html",
        persist=False,
        swap="replace",
    ),
    # The speaker's microphone follows their room and own channel, and re-checks whether
    # they may be heard after voice.floor, pauses on voice.muted, and tells them of
    # voice.recording.
    EventType("voice.floor", VoiceFloorPayload, "live/events/voice_floor.html"),
    EventType("voice.muted", VoiceMutedPayload, "live/events/voice_muted.html"),
    EventType(
        "voice.recording", RecordingPayload, "live/events/voice_recording.html", swap="replace"
    ),
)


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    for event_type in (
        EventType("chat.message", ChatMessagePayload, "live/events/chat_message.html"),
        EventType(
            "chat.removed", MessageRemovedPayload, "live/events/chat_removed.html", swap="replace"
        ),
        EventType(
            "room.settings", RoomSettingsPayload, "live/events/room_settings.html", swap="replace"
        ),
        EventType("notice", NoticePayload, "live/events/notice.html"),
        EventType("broadcast", BroadcastPayload, "live/events/broadcast.html"),
        EventType("breakout.opened", BreakoutPayload, "live/events/breakout.html", swap="none"),
        EventType("breakout.extended", BreakoutPayload, "live/events/breakout.html"),
        EventType("breakout.closing", BreakoutPayload, "live/events/breakout.html"),
        EventType("breakout.closed", BreakoutPayload, "live/events/breakout.html", swap="none"),
        EventType("room.changed", RoomChangedPayload, "live/events/notice.html", swap="none"),
        EventType("help.update", HelpPayload, "live/events/help.html", swap="replace"),
        EventType("hand.update", HandPayload, "live/events/hand.html", swap="replace"),
        EventType("report.created", ReportPayload, "live/events/report.html"),
        EventType(
            "presence", PresencePayload, "live/events/presence.html", persist=False, swap="replace"
        ),
        EventType(
            "speaking", SpeakingPayload, "live/events/speaking.html", persist=False, swap="replace"
        ),
        EventType(
            "caption.partial",
            CaptionPartialPayload,
            "live/events/caption_partial.html",
            persist=False,
            swap="replace",
        ),
        EventType("caption.final", CaptionFinalPayload, "live/events/caption_final.html"),
        EventType(
            "caption.corrected",
            CaptionFinalPayload,
            "live/events/caption_final.html",
            swap="replace",
        ),
        # On the speaker's own channel: the notice, and the signal that ends their stream.
        EventType("caption.muted", NoticePayload, "live/events/notice.html"),
        EventType("caption.unmuted", NoticePayload, "live/events/notice.html"),
        *VOICE_EVENTS,
        *STAGE_EVENTS,
        EventType("stage.tiles", TilesPayload, "stage/_tiles.html", swap="replace"),
    ):
        registry.register(event_type)
    return registry
