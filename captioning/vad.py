"""Voice-activity detection in front of the recognizer: silence and breathing never reach
Vosk, so a quiet open microphone costs no recognition and holds no recognizer.

`VoiceGate` cuts a stream's audio into 20 ms frames (Opus packets are 20 ms, so a packet
is never held back for the next one) and asks webrtcvad whether each is speech.

- Onset: `ONSET_FRAMES` voiced frames among the last `ONSET_WINDOW` (a click, a breath or
  a few frames of room noise that webrtcvad takes for speech do not open the gate). The
  gate then lets through the `pre_roll` seconds before the onset too, so a soft first
  syllable is not clipped.
- Offset: after `hangover` seconds without a voiced frame the utterance ends (`Pause`):
  the caller asks the recognizer for its final result at once, so the caption of each
  sentence arrives when the speaker stops, and gives the recognizer back.

Only the sample rates webrtcvad takes (8, 16, 32 and 48 kHz) are gated; at other rates
`VoiceGate.supports` is False and the caller feeds everything, as without a gate.
Choosing webrtcvad over Silero (onnxruntime) and the figures: docs/captioning.md.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from captioning.audio import SAMPLE_WIDTH

VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_SECONDS = 0.02
ONSET_WINDOW = 6  # frames: 120 ms
ONSET_FRAMES = 5
# Measured on espeak-ng speech (tests/captions/test_voice_gate.py and bench/captions.py):
# webrtcvad's mode 2 lets every word through and stops breath and room noise; 0.3 s of
# pre-roll keeps the first word whole; a hangover of 0.6 s never splits a sentence at a
# comma and ends the caption about 0.7 s after the last word.
DEFAULT_AGGRESSIVENESS = 2
DEFAULT_PRE_ROLL_SECONDS = 0.3
DEFAULT_HANGOVER_SECONDS = 0.6


@dataclass(frozen=True)
class Speech:
    """Audio to recognize; `at` is where it starts, in seconds of the stream's audio."""

    pcm: bytes
    at: float


@dataclass(frozen=True)
class Pause:
    """The speaker has stopped: end the utterance (`at`: where, in the stream's audio)."""

    at: float


class VoiceGate:
    """Audio in, `Speech` and `Pause` out, in order. Not thread-safe (one stream's feed)."""

    def __init__(
        self,
        sample_rate: int,
        *,
        aggressiveness: int = DEFAULT_AGGRESSIVENESS,
        pre_roll: float = DEFAULT_PRE_ROLL_SECONDS,
        hangover: float = DEFAULT_HANGOVER_SECONDS,
    ) -> None:
        import webrtcvad  # type: ignore[import-untyped]

        if sample_rate not in VAD_RATES:
            raise ValueError(f"webrtcvad takes {VAD_RATES} Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame_bytes = int(sample_rate * FRAME_SECONDS) * SAMPLE_WIDTH
        self._pre_roll: deque[bytes] = deque(maxlen=max(1, round(pre_roll / FRAME_SECONDS)))
        self._recent: deque[bool] = deque(maxlen=ONSET_WINDOW)
        self._hangover_frames = max(1, round(hangover / FRAME_SECONDS))
        self._quiet_frames = 0
        self._rest = b""  # the start of a frame still to come
        self._bytes_per_second = sample_rate * SAMPLE_WIDTH
        # Bytes of the stream looked at (whole frames), and let through (or dropped).
        self._analysed = 0
        self._passed = 0
        self.speaking = False
        self.frames_heard = 0  # 20 ms frames looked at, voiced or not

    @staticmethod
    def supports(sample_rate: int) -> bool:
        return sample_rate in VAD_RATES

    def push(self, pcm: bytes) -> list[Speech | Pause]:
        """The next audio (any length). While the speaker speaks, it goes through as it
        came, in the same pieces (Vosk's answers depend a little on how its audio is cut,
        so the gate does not re-cut it); a frame's end is judged when the frame is whole."""
        base = self._analysed
        data = self._rest + pcm
        size = self._frame_bytes
        whole = len(data) - len(data) % size
        out: list[Speech | Pause] = []
        for offset in range(0, whole, size):
            self._frame(data, base, offset, out)
        self._rest = data[whole:]
        self._analysed = base + whole
        if self.speaking:
            self._pass(data, base, base + len(data), out)
        return _merged(out)

    def close(self) -> None:
        """The stream pauses or ends: held silence is dropped (any speech has gone through
        already), and the next audio is judged afresh."""
        self._analysed += len(self._rest)
        self._passed = max(self._passed, self._analysed)
        self._rest = b""
        self._pre_roll.clear()
        self._recent.clear()
        self.speaking = False
        self._quiet_frames = 0

    def _frame(self, data: bytes, base: int, offset: int, out: list[Speech | Pause]) -> None:
        size = self._frame_bytes
        frame = data[offset : offset + size]
        end = base + offset + size
        self.frames_heard += 1
        voiced = self._vad.is_speech(frame, self.sample_rate)
        if self.speaking:
            self._pass(data, base, end, out)
            self._quiet_frames = 0 if voiced else self._quiet_frames + 1
            if self._quiet_frames >= self._hangover_frames:
                self.speaking = False
                self._recent.clear()
                out.append(Pause(end / self._bytes_per_second))
            return
        self._pre_roll.append(frame)
        self._recent.append(voiced)
        if voiced and sum(self._recent) >= ONSET_FRAMES:
            held = b"".join(self._pre_roll)
            out.append(Speech(held, (end - len(held)) / self._bytes_per_second))
            self._passed = end
            self._pre_roll.clear()
            self.speaking = True
            self._quiet_frames = 0

    def _pass(self, data: bytes, base: int, until: int, out: list[Speech | Pause]) -> None:
        """Let through what has not gone through yet, up to `until` (stream bytes)."""
        start = max(self._passed, base)
        if start < until:
            out.append(Speech(data[start - base : until - base], start / self._bytes_per_second))
            self._passed = until


def _merged(items: list[Speech | Pause]) -> list[Speech | Pause]:
    """Adjacent Speech joined into one (one recognizer call per push, not per frame)."""
    merged: list[Speech | Pause] = []
    for item in items:
        last = merged[-1] if merged else None
        if isinstance(item, Speech) and isinstance(last, Speech):
            merged[-1] = Speech(last.pcm + item.pcm, last.at)
        else:
            merged.append(item)
    return merged
