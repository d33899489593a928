"""Sound files: probing (length, codec, refusing what is not whole or not sound) and
decoding to the 16 kHz mono PCM the recognizer takes, for every format people upload."""

from __future__ import annotations

import math
import random
import struct
from array import array
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from app.evidence.audio.limits import (
    EMPTY,
    INCOMPLETE,
    NO_SOUND,
    TOO_LONG,
    UNREADABLE,
    AudioRejected,
    SampleRateRefused,
)
from app.evidence.audio.pcm import iter_pcm16k
from app.evidence.audio.probe import probe_audio, probe_audio_async
from tests.evidence_files import png
from tests.sound_files import FORMATS, cut, encode, ogg_page_ends

SECONDS = 3.0
CODECS = {
    "wav": "pcm_s16le",
    "mp3": "mp3",
    "m4a": "aac",
    "m4a-faststart": "aac",
    "aac": "aac",
    "ogg": "opus",
    "vorbis": "vorbis",
    "webm": "opus",
    "webm-browser": "opus",
    "flac": "flac",
}


def tone(seconds: float = SECONDS, rate: int = 16000, channels: int = 1) -> bytes:
    """A gliding tone with a little amplitude wobble: something every codec must keep."""
    samples = array("h")
    for n in range(int(seconds * rate)):
        t = n / rate
        value = int(9000 * math.sin(2 * math.pi * (300 + 200 * t) * t) * (0.6 + 0.4 * math.sin(t)))
        samples.extend([value] * channels)
    return samples.tobytes()


@pytest.fixture(scope="module")
def sound_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sounds")
    pcm = tone()
    for kind, fmt in FORMATS.items():
        encode(pcm, 16000, folder / f"{kind}{fmt.suffix}", kind)
    return folder


def sound(folder: Path, kind: str) -> Path:
    return folder / f"{kind}{FORMATS[kind].suffix}"


def rejected(path: Path) -> str:
    with pytest.raises(AudioRejected) as caught:
        probe_audio(path)
    return caught.value.message


@pytest.mark.parametrize("kind", list(FORMATS))
def test_every_upload_format_is_probed_with_its_length_and_codec(
    sound_dir: Path, kind: str
) -> None:
    info = probe_audio(sound(sound_dir, kind))
    assert info.codec == CODECS[kind]
    # Encoders add up to a frame or two of padding at the ends.
    assert info.duration_seconds == pytest.approx(SECONDS, abs=0.1)
    assert info.sample_rate == FORMATS[kind].rate
    assert info.channels == 1


@pytest.mark.parametrize("kind", list(FORMATS))
def test_every_format_decodes_to_16_khz_mono_in_one_second_chunks(
    sound_dir: Path, kind: str
) -> None:
    chunks = list(iter_pcm16k(sound(sound_dir, kind)))
    assert all(len(c) == 32000 for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= 32000
    seconds = sum(len(c) for c in chunks) / 32000
    assert seconds == pytest.approx(SECONDS, abs=0.1)
    samples = array("h", b"".join(chunks))
    loudness = math.sqrt(sum(s * s for s in samples[8000:40000]) / 32000)
    assert loudness > 2000, "the decoded audio is (nearly) silent"


def test_a_16_khz_wav_comes_out_exactly_as_it_went_in(sound_dir: Path) -> None:
    assert b"".join(iter_pcm16k(sound(sound_dir, "wav"), chunk_seconds=0.25)) == tone()


def test_stereo_at_44_1_khz_is_mixed_down_and_resampled(tmp_path: Path) -> None:
    path = encode(tone(rate=44100, channels=2), 44100, tmp_path / "stereo.mp3", "mp3", channels=2)
    assert probe_audio(path).channels == 2
    seconds = sum(len(c) for c in iter_pcm16k(path)) / 32000
    assert seconds == pytest.approx(SECONDS, abs=0.1)


async def test_probing_from_async_code_runs_in_a_thread(sound_dir: Path) -> None:
    info = await probe_audio_async(sound(sound_dir, "ogg"))
    assert info.codec == "opus"


# --------------------------------------------------------------------------- cut short


def test_a_wav_cut_short_is_refused_by_its_header(sound_dir: Path) -> None:
    original = sound(sound_dir, "wav")
    assert rejected(cut(original, 0.6)) == INCOMPLETE
    # Cut on a whole sample, so the decoder has nothing odd to stumble on.
    assert rejected(cut(original, 44 + 2 * 16000)) == INCOMPLETE


def test_a_wav_whose_writer_could_not_fill_in_its_size_is_taken(
    sound_dir: Path, tmp_path: Path
) -> None:
    data = bytearray(sound(sound_dir, "wav").read_bytes())
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFFF)
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    assert probe_audio(streamed).duration_seconds == pytest.approx(SECONDS, abs=0.1)


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_an_mp3_cut_short_is_refused_by_its_vbr_header(sound_dir: Path, share: float) -> None:
    assert rejected(cut(sound(sound_dir, "mp3"), share)) == INCOMPLETE


@pytest.mark.parametrize("kind", ["ogg", "vorbis"])
def test_an_ogg_cut_inside_a_page_or_between_pages_is_refused(sound_dir: Path, kind: str) -> None:
    original = sound(sound_dir, kind)
    assert rejected(cut(original, 0.7)) == INCOMPLETE
    # Between two pages: every page is whole, but the last one does not end the stream.
    ends = ogg_page_ends(original.read_bytes())
    assert len(ends) > 3
    assert rejected(cut(original, ends[-2])) == INCOMPLETE


@pytest.mark.parametrize("kind", ["webm", "webm-browser", "m4a-faststart", "flac"])
def test_webm_m4a_and_flac_cut_short_are_refused(sound_dir: Path, kind: str) -> None:
    assert rejected(cut(sound(sound_dir, kind), 0.8)) == INCOMPLETE


def test_raw_aac_cut_inside_a_frame_is_refused(sound_dir: Path) -> None:
    # Raw AAC declares no length: the cut shows as a last frame that does not decode.
    original = sound(sound_dir, "aac")
    data = original.read_bytes()
    frame = data.index(b"\xff\xf1", len(data) // 2)  # an ADTS frame header
    assert rejected(cut(original, frame + 40)) == UNREADABLE


def test_an_m4a_cut_before_its_index_holds_no_playable_sound(sound_dir: Path) -> None:
    # The usual M4A keeps its index at the end: without it nothing can be played.
    assert rejected(cut(sound(sound_dir, "m4a"), 0.8)) in (NO_SOUND, UNREADABLE)


# --------------------------------------------------------------------------- not sound


def test_an_image_holds_no_sound(tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(png())
    assert rejected(path) == NO_SOUND


@pytest.mark.parametrize(
    "content", [b"", random.Random(5).randbytes(20000), b"just some text\n" * 100]
)
def test_noise_and_nothing_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "recording.mp3"
    path.write_bytes(content)
    assert rejected(path) == UNREADABLE


def test_audio_that_does_not_decode_is_refused(sound_dir: Path, tmp_path: Path) -> None:
    data = bytearray(sound(sound_dir, "m4a-faststart").read_bytes())
    start = data.index(b"mdat") + 4
    data[start:] = random.Random(7).randbytes(len(data) - start)
    path = tmp_path / "garbled.m4a"
    path.write_bytes(bytes(data))
    assert rejected(path) == UNREADABLE


def wav_header(rate: int, width: int, data_bytes: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * width, width, 8 * width)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def test_a_wav_with_no_samples_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(wav_header(16000, 2, 0))
    assert rejected(path) == EMPTY


def test_more_than_three_hours_is_refused(tmp_path: Path) -> None:
    # 8-bit samples at the lowest rate taken keep the file small; it is sparse on disk.
    rate, seconds = 8000, 3 * 3600 + 120
    path = tmp_path / "long.wav"
    with path.open("wb") as f:
        f.write(wav_header(rate, 1, rate * seconds))
        f.truncate(44 + rate * seconds)
    assert rejected(path) == TOO_LONG


# --------------------------------------------------------------------------- sample rates


def flac_at(path: Path, rate: int, seconds: float) -> Path:
    """A FLAC file of silence at any rate (FLAC allows 1 Hz to 655 kHz)."""
    with av.open(str(path), "w", format="flac") as out:
        stream: Any = out.add_stream("flac", rate=rate, layout="mono")
        samples = int(rate * seconds)
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        frame.planes[0].update(bytes(2 * samples))
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("rate", [1, 100, 7_999, 192_001, 1_000_000])
def test_a_sample_rate_no_recording_has_is_refused(tmp_path: Path, rate: int) -> None:
    # 20 KB declaring 1 Hz was once taken as a recording of 10,000 seconds.
    path = tmp_path / "odd.wav"
    path.write_bytes(wav_header(rate, 2, 20_000) + bytes(20_000))
    with pytest.raises(SampleRateRefused) as caught:
        probe_audio(path)
    assert f"a sample rate of {rate:,} Hz" in caught.value.message
    assert "8 to 192 kHz" in caught.value.message
    # Decoding refuses it too (for items queued before uploads were checked).
    with pytest.raises(SampleRateRefused):
        list(iter_pcm16k(path))


def test_a_flac_at_1_khz_is_refused(tmp_path: Path) -> None:
    path = flac_at(tmp_path / "low.flac", 1000, 3.0)
    with pytest.raises(SampleRateRefused):
        probe_audio(path)


@pytest.mark.parametrize("rate", [8_000, 192_000])
def test_the_lowest_and_highest_sample_rates_are_taken(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "edge.wav"
    path.write_bytes(wav_header(rate, 2, 2 * rate) + tone(seconds=1.0, rate=rate))
    info = probe_audio(path)
    assert (info.sample_rate, info.duration_seconds) == (rate, pytest.approx(1.0, abs=0.01))
    assert sum(len(c) for c in iter_pcm16k(path)) == pytest.approx(32000, abs=64)
