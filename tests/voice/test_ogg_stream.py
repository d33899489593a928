"""The Ogg/Opus writer: what it makes plays in a standard decoder, for exactly as long as
the frames it was given, with the speech in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.voice.ogg_stream import (
    FRAME_BYTES,
    ChunkSink,
    FrameBuffer,
    FrameError,
    OggOpusWriter,
    ogg_duration_ms,
)
from tests.audio_fixtures import SENTENCES, Speech, speech_fixture  # noqa: F401 - the fixture
from tests.voice.recording_helpers import decode, rms


def speech_frames(speech: Speech, text: str) -> list[bytes]:
    pcm = speech.pcm(text, rate=48000)
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def test_a_file_decodes_as_opus_for_as_long_as_its_frames(speech: Speech, tmp_path: Path) -> None:
    frames = speech_frames(speech, SENTENCES[0]) + [bytes(FRAME_BYTES)] * 50
    path = tmp_path / "room.ogg"
    with path.open("wb", buffering=0) as out:
        writer = OggOpusWriter(out)
        writer.write_many(frames)
        writer.close()
    data = path.read_bytes()
    assert data.startswith(b"OggS") and b"OpusHead" in data[:100]
    decoded = decode(data)
    assert (decoded.codec, decoded.sample_rate, decoded.channels) == ("opus", 48000, 1)
    # Exactly the samples given (the encoder's pre-skip is undone by the decoder).
    assert len(decoded.samples) == len(frames) * 960
    assert writer.duration_ms == len(frames) * 20
    assert abs(ogg_duration_ms(path) - writer.duration_ms) <= 20
    # The speech is there at its loudness, and the second of silence after it is silent.
    spoken = np.frombuffer(b"".join(frames[:-50]), dtype="<i2")
    assert 0.5 < rms(decoded.samples[: len(spoken)]) / rms(spoken) < 1.5
    assert rms(decoded.samples[-40 * 960 :]) < 50


def test_a_live_stream_is_drained_page_by_page_and_plays_whole(speech: Speech) -> None:
    frames = speech_frames(speech, SENTENCES[3])
    sink = ChunkSink()
    writer = OggOpusWriter(sink)
    chunks = []
    for n, pcm in enumerate(frames, start=1):
        writer.write(pcm)
        if n % 5 == 0:  # what the <audio> stream does every 100 ms
            chunks.append(sink.drain())
    writer.close()
    chunks.append(sink.drain())
    # A listener gets sound as it is made: pages at least every 200 ms of audio.
    sent = [c for c in chunks[1:-1] if c]
    assert len(sent) >= len(frames) // 10 - 1
    assert all(c.startswith(b"OggS") for c in sent)
    decoded = decode(b"".join(chunks))
    assert len(decoded.samples) == len(frames) * 960


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    writer = OggOpusWriter(ChunkSink())
    with pytest.raises(FrameError):
        writer.write(bytes(FRAME_BYTES - 2))
    writer.write(bytes(FRAME_BYTES))
    writer.close()
    assert writer.frames == 1


def test_a_frame_buffer_keeps_the_newest_frames() -> None:
    buffer = FrameBuffer(3)
    for n in range(5):
        buffer.push(bytes([n]) * 2)
    assert buffer.take() == [b"\x02\x02", b"\x03\x03", b"\x04\x04"]
    assert buffer.dropped == 2 and buffer.take() == []


def test_a_file_cut_short_by_a_crash_still_plays_up_to_its_last_page(
    speech: Speech, tmp_path: Path
) -> None:
    frames = speech_frames(speech, SENTENCES[1])
    path = tmp_path / "cut.ogg"
    with path.open("wb", buffering=0) as out:
        writer = OggOpusWriter(out)
        writer.write_many(frames)
        # Say the process died here: what was written page by page is on disk.
        written = path.read_bytes()
        writer.close()
    cut = tmp_path / "cut-copy.ogg"
    cut.write_bytes(written)
    kept = decode(written).seconds
    assert len(frames) * 0.02 - 0.25 <= kept <= len(frames) * 0.02
    assert abs(ogg_duration_ms(cut) / 1000 - kept) < 0.05
