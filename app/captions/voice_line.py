"""A speaker's microphone as heard in their room: the FrameSink (captioning/ingest.py)
that hands each decoded frame to the voice router (realtime/voice.py), which forwards or
mixes it for the room's listeners. The same decode feeds the captions."""

from __future__ import annotations

from captioning.ingest import StartRequest
from realtime.opus import FRAME_BYTES, RATE, Framer
from realtime.voice import SpeakerLine, VoiceRouter


class VoiceLine:
    def __init__(self, router: VoiceRouter, *, room: str, source: int) -> None:
        self.line: SpeakerLine = router.speaker(room, source)
        self._framer: Framer | None = None

    @property
    def room(self) -> str:
        return self.line.room

    def started(self, *, stream_id: str, channel: str, start: StartRequest) -> None:
        self.line.move(channel)

    def audio(self, packet: bytes | None, pcm: bytes, sample_rate: int) -> None:
        if packet is not None and sample_rate == RATE:
            # The usual case: one 20 ms Opus packet, forwarded as sent. A packet of
            # another length is forwarded without its audio (it is not mixed).
            self.line.packet(packet, pcm if len(pcm) == FRAME_BYTES else None)
            return
        # Raw PCM from a browser without an Opus encoder: 20 ms frames at 48 kHz, which
        # the router encodes for the listeners.
        if self._framer is None or self._framer.sample_rate != sample_rate:
            self._framer = Framer(sample_rate)
        for frame in self._framer.frames(pcm):
            self.line.packet(None, frame)

    def moved(self, channel: str) -> None:
        self.line.move(channel)

    def ended(self) -> None:
        self.line.close()
