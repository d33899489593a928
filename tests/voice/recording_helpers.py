"""What the voice recording tests share: decoding Ogg/Opus as a player would, hearing
what was recorded with Vosk, and a world with a room source the recorder can tap."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from app.state import AppState
from app.voice.recording_models import VoiceRecording
from tests.voice.room_speech import RoomSpeech


@dataclass
class Decoded:
    codec: str
    sample_rate: int
    channels: int
    samples: np.ndarray  # int16 mono

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes, rate: int = 48000) -> Decoded:
    """Decode Ogg/Opus bytes with libopus (PyAV) to s16 mono at `rate`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        channels = stream.codec_context.channels
        parts = []
        for frame in container.decode(stream):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return Decoded(codec, rate, channels, np.concatenate(parts))


def heard_words(caption_engine: Any, pcm16k: bytes) -> list[str]:
    recognizer = caption_engine.new_recognizer(16000, words=False, max_alternatives=0, grammar=None)
    words: list[str] = []
    for i in range(0, len(pcm16k), 8000):
        if recognizer.AcceptWaveform(pcm16k[i : i + 8000]):
            words += json.loads(recognizer.Result()).get("text", "").split()
    words += json.loads(recognizer.FinalResult()).get("text", "").split()
    return words


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def use_rooms(state: AppState) -> RoomSpeech:
    """Speech into the rooms of the app's own voice router, which the recorder taps."""
    assert state.recorders.router is state.voice and state.mix_listeners.router is state.voice
    return RoomSpeech(state.voice)


async def recordings(state: AppState) -> list[VoiceRecording]:
    from sqlalchemy import select

    async with state.sessionmaker() as db:
        rows = await db.scalars(select(VoiceRecording).order_by(VoiceRecording.id))
        return list(rows.all())
