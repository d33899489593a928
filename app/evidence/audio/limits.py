"""What we take as sound: the limits a recording must keep, and the refusal (with its
message for the person uploading) when a file does not."""

from __future__ import annotations

from typing import Any

MAX_DURATION_SECONDS = 3 * 3600.0
# Real recordings have 8 to 192 kHz. A header declaring 1 Hz made a 20 KB file "a 10,000 s
# recording" (and the decoder would make 320 MB of PCM of it), so other rates are refused.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000
# A few damaged packets in a long recording are skipped; more mean the file is broken.
MAX_DECODE_ERRORS = 5

NO_SOUND = (
    "We found no sound in this file that we can play. If it is a recording, it may be "
    "incomplete: please upload the whole file."
)
UNREADABLE = (
    "We could not decode this sound file: it may be damaged, or in a format we do not know."
)
INCOMPLETE = (
    "This sound file seems to be cut off before its end (perhaps it was not copied or "
    "saved completely). Please upload the whole recording."
)
EMPTY = "This sound file is empty: it holds no audio."
TOO_LONG = (
    "This recording is longer than 3 hours. Please split it and upload parts of up to 3 hours each."
)


class AudioRejected(Exception):
    """A file we cannot take as sound; the message says why, for the person uploading."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SampleRateRefused(AudioRejected):
    """The file declares a sample rate no recording has."""

    def __init__(self, rate: int) -> None:
        super().__init__(
            f"This sound file declares a sample rate of {rate:,} Hz, but recordings have "
            f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz (8 to 192 kHz): it is damaged or "
            "was made wrongly. Export it again as an ordinary recording and upload that."
        )
        self.rate = rate


def check_sample_rate(rate: int | None) -> None:
    """Refuse a declared rate outside 8-192 kHz (0 or None: not known yet, so not judged)."""
    if rate and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise SampleRateRefused(int(rate))


def audio_stream(container: Any) -> Any:
    """The container's first audio stream, refused when there is none or its declared
    sample rate is not a recording's."""
    if not container.streams.audio:
        raise AudioRejected(NO_SOUND)
    stream = container.streams.audio[0]
    check_sample_rate(stream.codec_context.sample_rate)
    return stream
