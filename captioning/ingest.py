"""Speaker audio as it arrives from the microphone, made ready for the recognizer.

The speaker's browser opens the audio WebSocket and says how it will send audio:

    {"type": "start", "codec": "opus" | "pcm16", "sample_rate": 48000, "consent": true}

then sends binary frames: one Opus packet per frame (WebCodecs' AudioEncoder, 20 ms,
at most 4000 bytes), or raw 16-bit little-endian mono PCM (at most 64 KB a frame).
A decoder turns each frame into 16-bit mono PCM for Vosk: Opus is decoded by libopus (in
PyAV) at 48 kHz, which Kaldi lowers to the model's 16 kHz in the recognizer's thread; PCM
is passed on at its own rate (the recognizer stream raises 8 kHz audio itself).

Each frame is decoded once, for everyone: the `FrameSink` (the room's voice, in the web
app) gets the packet as sent with its 48 kHz PCM (or raw PCM at its own rate), and the
recognizer gets the same audio at 16 kHz. Decoding one 20 ms packet takes microseconds,
so it runs on the event loop; recognition, which takes real time, runs in the engine's
pool (captioning/stream.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from captioning.audio import MAX_SAMPLE_RATE, AudioFormatError, PcmCarry, parse_sample_rate

OPUS_SAMPLE_RATE = 48000
# What Opus audio is turned into for the recognizer: 48 kHz as decoded (Kaldi lowers it to
# the model's 16 kHz itself, in the recognizer's own thread, off the event loop).
OPUS_OUTPUT_RATE = OPUS_SAMPLE_RATE
MAX_PCM_FRAME_BYTES = 64 * 1024
MAX_OPUS_FRAME_BYTES = 4000
MAX_START_BYTES = 4096
CODECS = ("opus", "pcm16")

# WebSocket close codes the audio stream uses.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_MUTED = 4001


class IngestError(Exception):
    """Audio or a message we cannot take: an error to the client, then a close.

    `code` is a short machine-readable name, `close_code` the WebSocket close code,
    and the message is for the person (safe to show: it never contains server paths)."""

    def __init__(self, code: str, message: str, *, close_code: int = CLOSE_UNSUPPORTED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


@dataclass(frozen=True)
class StartRequest:
    codec: str
    sample_rate: int

    @property
    def max_frame_bytes(self) -> int:
        return MAX_OPUS_FRAME_BYTES if self.codec == "opus" else MAX_PCM_FRAME_BYTES


HOW_TO_START = (
    'start with {"type": "start", "codec": "opus" or "pcm16", "sample_rate": ..., "consent": true}'
)


def parse_json_object(text: str) -> dict[str, Any]:
    if len(text) > MAX_START_BYTES:
        raise IngestError("too_big", "text messages may be at most 4 KB", close_code=CLOSE_TOO_BIG)
    try:
        message = json.loads(text)
    except ValueError:
        raise IngestError("bad_message", f"text messages must be JSON: {HOW_TO_START}") from None
    if not isinstance(message, dict):
        raise IngestError("bad_message", f"text messages must be JSON objects: {HOW_TO_START}")
    return message


def parse_start(text: str | None) -> StartRequest:
    """The first frame of a stream. Refusals: not a start message (1003), no consent
    (1008), an unknown codec or a sample rate out of range (1003)."""
    if text is None:
        raise IngestError("bad_start", f"audio before the start message: {HOW_TO_START}")
    message = parse_json_object(text)
    if message.get("type") != "start":
        raise IngestError("bad_start", f"the first message must be a start: {HOW_TO_START}")
    if message.get("consent") is not True:
        raise IngestError(
            "consent",
            'captioning needs the speaker\'s consent: send "consent": true once they agree',
            close_code=CLOSE_POLICY,
        )
    codec = message.get("codec")
    if codec not in CODECS:
        shown = str(codec)[:20] if isinstance(codec, str) else "none"
        raise IngestError("bad_codec", f'codec must be "opus" or "pcm16" (not {shown})')
    rate: object = message.get("sample_rate", OPUS_SAMPLE_RATE if codec == "opus" else None)
    if codec == "opus":
        if isinstance(rate, bool) or rate not in (OPUS_SAMPLE_RATE, float(OPUS_SAMPLE_RATE)):
            raise IngestError("bad_sample_rate", "Opus audio is always sent at 48000 Hz")
        return StartRequest("opus", OPUS_SAMPLE_RATE)
    if rate is None:
        raise IngestError("bad_sample_rate", "pcm16 needs its sample_rate, such as 16000")
    try:
        sample_rate = parse_sample_rate(rate)
    except AudioFormatError as exc:
        raise IngestError("bad_sample_rate", str(exc)) from None
    return StartRequest("pcm16", sample_rate)


class BadPacket(Exception):
    """One frame that could not be decoded (counted; too many end the stream)."""


class Decoder(Protocol):
    # The sample rate of the PCM that `decode` returns for the recognizer.
    output_rate: int

    def decode(self, data: bytes) -> tuple[bytes, bytes]:
        """One frame as (the PCM as decoded, at its own rate, for listeners; the same at
        `output_rate` for the recognizer), possibly empty; raises BadPacket."""
        ...


class PcmDecoder:
    """Raw PCM: passed on whole samples at a time (an odd byte waits for the next frame)."""

    def __init__(self, sample_rate: int) -> None:
        self.output_rate = sample_rate
        self._carry = PcmCarry()

    def decode(self, data: bytes) -> tuple[bytes, bytes]:
        pcm = self._carry.take(data)
        return pcm, pcm


class OpusDecoder:
    """One Opus packet per frame, decoded at 48 kHz (16-bit mono); resampled only for a
    recognizer that asks for another rate."""

    def __init__(self, output_rate: int = OPUS_OUTPUT_RATE) -> None:
        import av

        if not 0 < output_rate <= MAX_SAMPLE_RATE:
            raise ValueError("output_rate out of range")
        self.output_rate = output_rate
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = OPUS_SAMPLE_RATE
        self._codec.layout = "mono"
        self._to_s16 = av.AudioResampler(format="s16", layout="mono", rate=OPUS_SAMPLE_RATE)
        self._resampler = (
            None
            if output_rate == OPUS_SAMPLE_RATE
            else av.AudioResampler(format="s16", layout="mono", rate=output_rate)
        )
        self._errors: tuple[type[Exception], ...] = (av.error.FFmpegError, ValueError)

    def decode(self, data: bytes) -> tuple[bytes, bytes]:
        import av

        if not data:
            # An empty packet means "end of stream" to libavcodec: the decoder would refuse
            # everything after it.
            raise BadPacket("empty packet")
        full, out = bytearray(), bytearray()
        try:
            for frame in self._codec.decode(av.Packet(data)):
                # Lost or refused packets leave gaps in the timestamps; the resamplers need
                # not know (a gap is simply shorter audio).
                frame.pts = None
                # libopus gives 16-bit samples already; other builds may give floats.
                wholes = [frame] if frame.format.name == "s16" else self._to_s16.resample(frame)
                for whole in wholes:
                    full += bytes(whole.planes[0])[: whole.samples * 2]
                    if self._resampler is None:
                        continue
                    whole.pts = None
                    for resampled in self._resampler.resample(whole):
                        out += bytes(resampled.planes[0])[: resampled.samples * 2]
        except self._errors as exc:
            raise BadPacket(str(exc)) from None
        heard = bytes(full)
        return heard, (heard if self._resampler is None else bytes(out))


def make_decoder(start: StartRequest) -> Decoder:
    if start.codec == "opus":
        return OpusDecoder()
    return PcmDecoder(start.sample_rate)


class AudioIngest:
    """One stream's frames: size limits, decoding, undecodable packets counted (too many
    end the stream), and the sink told of each frame."""

    def __init__(
        self, start: StartRequest, *, sink: FrameSink | None = None, max_bad_packets: int = 50
    ) -> None:
        self.start = start
        self.decoder = make_decoder(start)
        self.sink: FrameSink = sink or NullSink()
        self.max_bad_packets = max_bad_packets
        self.bad_packets = 0

    @property
    def output_rate(self) -> int:
        return self.decoder.output_rate

    def check(self, data: bytes) -> None:
        limit = self.start.max_frame_bytes
        if len(data) > limit:
            what = "an Opus packet" if self.start.codec == "opus" else "a PCM frame"
            raise IngestError(
                "too_big",
                f"frame too big: {what} may have at most {limit:,} bytes",
                close_code=CLOSE_TOO_BIG,
            )

    def take(self, data: bytes) -> bytes:
        """16-bit mono PCM at `output_rate` from one frame (empty for a bad packet, which
        reaches nobody: listeners only ever get packets the server could decode)."""
        self.check(data)
        try:
            heard, pcm = self.decoder.decode(data)
        except BadPacket:
            self.bad_packets += 1
            if self.bad_packets >= self.max_bad_packets:
                raise IngestError(
                    "not_opus", f"not Opus audio: {self.bad_packets} packets could not be decoded"
                ) from None
            return b""
        if heard:
            opus = data if self.start.codec == "opus" else None
            self.sink.audio(opus, heard, self.decoded_rate)
        return pcm

    @property
    def decoded_rate(self) -> int:
        """The rate of the PCM the sink gets: 48 kHz for Opus, the sender's for PCM."""
        return self.start.sample_rate


class FrameSink(Protocol):
    """Receives a speaking stream's audio as it passes through: the room's voice.

    Methods are called on the event loop and must not block (queue and return)."""

    def started(self, *, stream_id: str, channel: str, start: StartRequest) -> None: ...

    def audio(self, packet: bytes | None, pcm: bytes, sample_rate: int) -> None:
        """One frame: the Opus packet as the client sent it (None for raw PCM) and its
        audio as decoded, 16-bit mono at `sample_rate`."""
        ...

    def moved(self, channel: str) -> None:
        """The speaker is in another room now."""
        ...

    def ended(self) -> None: ...


class NullSink:
    """Nobody hears the audio itself (the tools of /asr/vosk): every frame is dropped."""

    def started(self, *, stream_id: str, channel: str, start: StartRequest) -> None:
        return None

    def audio(self, packet: bytes | None, pcm: bytes, sample_rate: int) -> None:
        return None

    def moved(self, channel: str) -> None:
        return None

    def ended(self) -> None:
        return None
