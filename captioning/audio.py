"""Raw audio as Vosk takes it: 16-bit little-endian mono PCM at the stream's sample rate.

Kaldi can lower a sample rate itself (the model's `--allow-downsample=true`), so 44.1 and
48 kHz audio goes to the recognizer as it is. Raising one is a different matter: the model
refuses 8 kHz telephone audio ("Sampling frequency mismatch"), so `Upsampler` brings it up
to the model's rate first, with a proper interpolation filter (a plain linear
interpolation leaves images of the speech above 4 kHz that doubled the word error rate in
our measurements).
"""

from __future__ import annotations

import math
import operator
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SAMPLE_WIDTH = 2  # bytes per sample: 16-bit
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class AudioFormatError(ValueError):
    """Audio that is not what we can recognize, with a message for the person who sent it."""


def parse_sample_rate(value: object) -> int:
    """A sample rate given as a number or a numeric string ("16000", 16000.0), in range."""
    if isinstance(value, bool):
        raise AudioFormatError("sample_rate must be a number, such as 16000")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise AudioFormatError("sample_rate must be a number, such as 16000") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise AudioFormatError("sample_rate must be a number, such as 16000")
    if not float(value).is_integer() or not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise AudioFormatError(
            f"sample_rate must be a whole number of hertz from {MIN_SAMPLE_RATE} "
            f"to {MAX_SAMPLE_RATE}"
        )
    return int(value)


def pcm_seconds(byte_count: int, sample_rate: int) -> float:
    return byte_count / (SAMPLE_WIDTH * sample_rate)


class PcmCarry:
    """Keeps every frame a whole number of samples.

    A frame with an odd number of bytes splits a sample; Vosk would silently drop the odd
    byte and read every later sample misaligned (noise). We keep the odd byte and put it in
    front of the next frame instead, so a client may cut its stream anywhere."""

    def __init__(self) -> None:
        self._pending = b""

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        if len(data) % SAMPLE_WIDTH:
            self._pending = data[-1:]
            return data[:-1]
        self._pending = b""
        return data

    def clear(self) -> None:
        self._pending = b""


def samples_from_pcm(data: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - we run on little-endian machines
        samples.byteswap()
    return samples


def pcm_from_samples(samples: array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


class Upsampler:
    """Raises the sample rate of a stream of 16-bit PCM by a rational factor (8 kHz to
    16 kHz, 11.025 kHz to 16 kHz ...) with a Hann-windowed sinc interpolation filter.

    Stateful: feed consecutive frames to `process`, then `flush` at the end of the stream.
    The filter looks `TAPS_PER_SIDE` input samples ahead (1 ms at 8 kHz) and costs about
    16 multiplications per output sample, in Python: ~10-20 ms of CPU per second of audio.
    """

    TAPS_PER_SIDE = 8
    # The pass band, as a fraction of the input's Nyquist frequency: a little below 1 so
    # the short filter still suppresses the spectral images above it.
    CUTOFF = 0.9

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if not 0 < from_rate < to_rate:
            raise ValueError("Upsampler only raises sample rates")
        divisor = math.gcd(from_rate, to_rate)
        self.up = to_rate // divisor
        self.down = from_rate // divisor
        taps = self.TAPS_PER_SIDE
        self._kernels = [self._kernel(phase / self.up) for phase in range(self.up)]
        # Input samples before the stream began count as silence.
        self._buffer: list[int] = [0] * (taps - 1)
        self._buffer_start = -(taps - 1)  # the input index of _buffer[0]
        self._produced = 0  # output samples so far

    def _kernel(self, fraction: float) -> list[float]:
        taps = self.TAPS_PER_SIDE
        weights = []
        for j in range(-taps + 1, taps + 1):
            t = j - fraction  # distance in input samples from the output instant
            sinc = (
                1.0 if t == 0 else math.sin(math.pi * self.CUTOFF * t) / (math.pi * self.CUTOFF * t)
            )
            window = 0.5 + 0.5 * math.cos(math.pi * t / taps) if abs(t) < taps else 0.0
            weights.append(sinc * window)
        total = sum(weights)
        return [w / total for w in weights]  # unity gain for a steady signal

    def process(self, data: bytes) -> bytes:
        self._buffer.extend(samples_from_pcm(data))
        return self._emit()

    def flush(self) -> bytes:
        """The last outputs, which needed input beyond the end of the stream."""
        self._buffer.extend([0] * self.TAPS_PER_SIDE)
        return self._emit()

    def _emit(self) -> bytes:
        taps, up, down = self.TAPS_PER_SIDE, self.up, self.down
        buffer, start, kernels = self._buffer, self._buffer_start, self._kernels
        last_input = start + len(buffer) - 1
        out: list[int] = []
        n = self._produced
        while True:
            position = n * down
            index = position // up
            if index + taps > last_input:
                break
            first = index - taps + 1 - start
            value = round(
                sum(map(operator.mul, kernels[position % up], buffer[first : first + 2 * taps]))
            )
            out.append(32767 if value > 32767 else -32768 if value < -32768 else value)
            n += 1
        self._produced = n
        keep_from = (n * down) // up - taps + 1  # the first input the next output needs
        if keep_from > start:
            del buffer[: keep_from - start]
            self._buffer_start = keep_from
        return pcm_from_samples(array("h", out))


@dataclass(frozen=True)
class PcmAudio:
    data: bytes
    sample_rate: int

    @property
    def seconds(self) -> float:
        return pcm_seconds(len(self.data), self.sample_rate)


def read_wav(source: Path | BinaryIO) -> PcmAudio:
    """The samples of a WAV file (a path or an open binary file) that is already 16-bit
    mono PCM (others are refused with a message saying how to convert them)."""
    try:
        with wave.open(str(source) if isinstance(source, Path) else source, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if channels != 1 or width != SAMPLE_WIDTH:
                raise AudioFormatError(
                    f"the WAV file has {channels} channel(s) of {8 * width}-bit audio; "
                    "it must be mono 16-bit PCM (sox in.wav -c 1 -b 16 out.wav)"
                )
            parse_sample_rate(rate)
            return PcmAudio(wav.readframes(wav.getnframes()), rate)
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"this is not a PCM WAV file ({exc})") from exc
