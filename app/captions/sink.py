"""Where a live caption stream's text goes in the web app: partials to the speaker's room
as transient `caption.partial` events, finals stored as CaptionSegments and published as
`caption.final` after the transaction commits, on the speaker's room channel only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.captions.actions import caption_list_id, final_data, final_payload
from app.captions.models import CaptionSegment
from app.live.events import CaptionPartialPayload
from captioning.live import Utterance
from realtime.publish import Live


@dataclass(frozen=True)
class Speaker:
    user_id: int
    # As shown with every caption: the display name, with pronouns when given.
    name: str


@dataclass(frozen=True)
class Room:
    """Where the speaker's captions go: a room channel of a session."""

    session_id: int
    channel: str
    group_id: int | None
    timezone: str


class RoomCaptions:
    """The CaptionSink of one speaker's stream. `speaker` may be replaced while the
    stream runs (a change of display name applies to the next caption)."""

    def __init__(
        self, *, live: Live, sessionmaker: async_sessionmaker[AsyncSession], speaker: Speaker
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.speaker = speaker

    async def partial(self, to: Room, stream_id: str, text: str) -> None:
        await self.live.publish_transient(
            to.channel,
            "caption.partial",
            CaptionPartialPayload(stream=stream_id, speaker=self.speaker.name, text=text),
            target=f"cp-{stream_id}",
            data={
                "stream": stream_id,
                "speaker_id": self.speaker.user_id,
                "into": caption_list_id(to.channel),
            },
        )

    async def final(self, to: Room, utterance: Utterance) -> None:
        speaker = self.speaker
        async with self.sessionmaker() as db:
            segment = CaptionSegment(
                session_id=to.session_id,
                channel=to.channel,
                group_id=to.group_id,
                speaker_id=speaker.user_id,
                speaker_name=speaker.name[:150],
                stream_id=utterance.stream_id,
                stream_start=utterance.stream_start,
                stream_end=utterance.stream_end,
                started_at=utterance.started_at,
                ended_at=utterance.ended_at,
                text=utterance.text,
                original_text=utterance.text,
                words=utterance.words,
                confidence=utterance.confidence,
            )
            db.add(segment)
            await db.flush()
            outbox = self.live.outbox(db)
            await outbox.add(
                to.channel,
                "caption.final",
                final_payload(segment, timezone=to.timezone),
                actor_id=speaker.user_id,
                target=f"cs-{segment.id}",
                data=final_data(segment),
            )
            await outbox.commit()
