"""Spoken test audio and the Vosk model, for the caption tests.

Speech is made with espeak-ng (Debian package espeak-ng) and converted with sox, once per
test session. The model comes from VOSK_MODEL_PATH or var/models/model-en-us
(scripts/fetch-model installs it). Without them the caption tests fail in CI and are
skipped elsewhere, with a message saying what to install.

Test modules import the fixtures they use, by their function names (the fixtures' own
names differ, so test arguments do not shadow the imports):
`from tests.audio_fixtures import speech_fixture  # noqa: F401`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from app.config import PROJECT_ROOT
from captioning.engine import CaptionEngine

IN_CI = os.environ.get("CI", "").lower() == "true"
VOICE, WORDS_PER_MINUTE = "en-us", 150

# Said clearly by espeak, these come out of the small model nearly right (see the WER test).
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please open the breakout rooms in five minutes",
    "we will meet again next tuesday to share our findings",
    "can everyone hear me clearly now",
    "the facilitator will read the notes from each group",
    "thank you all for coming to this session today",
]


def unavailable(message: str) -> NoReturn:
    """Fail in CI (nothing may be skipped there), skip with the message elsewhere."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def model_path() -> Path:
    configured = os.environ.get("VOSK_MODEL_PATH", "").strip()
    return Path(configured) if configured else PROJECT_ROOT / "var" / "models" / "model-en-us"


@pytest.fixture(scope="session", name="vosk_model_path")
def vosk_model_path_fixture() -> Path:
    path = model_path()
    if not (path / "am" / "final.mdl").is_file():
        unavailable(
            f"The Vosk model is not at {path}: run scripts/fetch-model "
            "(or set VOSK_MODEL_PATH to an unpacked model) to run the caption tests."
        )
    return path


@pytest.fixture(scope="session", name="caption_engine")
def caption_engine_fixture(vosk_model_path: Path) -> Iterator[CaptionEngine]:
    """The model loaded once for the whole session, shared like the app shares it."""
    engine = CaptionEngine(model_path=vosk_model_path)
    engine.load_blocking()
    assert engine.available, engine.status
    yield engine
    engine.close()


class Speech:
    """WAV files of sentences spoken by espeak-ng at a given sample rate, cached."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def wav(self, text: str, rate: int = 16000) -> Path:
        key = hashlib.sha256(f"{VOICE}|{WORDS_PER_MINUTE}|{text}".encode()).hexdigest()[:16]
        spoken = self.cache / f"{key}.wav"
        converted = self.cache / f"{key}-{rate}.wav"
        if not converted.exists():
            if not spoken.exists():
                subprocess.run(  # noqa: S603 - fixed programme, text as one argument
                    [
                        "espeak-ng",
                        "-v",
                        VOICE,
                        "-s",
                        str(WORDS_PER_MINUTE),
                        "-w",
                        str(spoken),
                        text,
                    ],
                    check=True,
                    capture_output=True,
                )
            subprocess.run(  # noqa: S603
                ["sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(converted)],
                check=True,
                capture_output=True,
            )
        return converted

    def pcm(self, text: str, rate: int = 16000) -> bytes:
        with wave.open(str(self.wav(text, rate)), "rb") as wav:
            return wav.readframes(wav.getnframes())


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


@pytest.fixture(scope="session", name="speech")
def speech_fixture(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        unavailable(
            f"{' and '.join(missing)} not installed: the caption tests speak their own "
            "audio (Debian: apt-get install espeak-ng sox)."
        )
    return Speech(tmp_path_factory.mktemp("speech"))


def frames(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
