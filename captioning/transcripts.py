"""A room's captions in a session as a transcript: WebVTT, SubRip (SRT) or plain text.

Times count from the start of the room's first caption in that session. Each caption is
one cue, with its corrected text and its speaker: a voice span in WebVTT
(`<v Name>text`), "Name: text" in SRT and in plain text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# A caption shorter than this (one short word) is still shown long enough to read.
MIN_CUE_MS = 500


@dataclass(frozen=True)
class Cue:
    start: datetime
    end: datetime
    speaker: str
    text: str


@dataclass(frozen=True)
class TimedCue:
    start_ms: int
    end_ms: int
    speaker: str
    text: str


def one_line(text: str) -> str:
    """Cues end at a blank line, so a caption's text (and a name) stays on one line."""
    return " ".join(text.split())


def timed(cues: Iterable[Cue]) -> list[TimedCue]:
    """Cues in order of their start, in milliseconds from the first, each lasting at
    least MIN_CUE_MS."""
    ordered = sorted(cues, key=lambda c: c.start)
    if not ordered:
        return []
    origin = ordered[0].start
    out = []
    for cue in ordered:
        start = round((cue.start - origin).total_seconds() * 1000)
        end = round((cue.end - origin).total_seconds() * 1000)
        out.append(
            TimedCue(
                start_ms=start,
                end_ms=max(end, start + MIN_CUE_MS),
                speaker=one_line(cue.speaker),
                text=one_line(cue.text),
            )
        )
    return out


def clock(ms: int, separator: str) -> str:
    """HH:MM:SS.mmm (WebVTT) or HH:MM:SS,mmm (SRT)."""
    seconds, millis = divmod(max(ms, 0), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def vtt_escape(text: str) -> str:
    # In cue text "&" and "<" start markup, and ">" would let "-->" end a cue's timing.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: Sequence[Cue]) -> str:
    blocks = ["WEBVTT"]
    for number, cue in enumerate(timed(cues), start=1):
        voice = f"<v {vtt_escape(cue.speaker)}>" if cue.speaker else ""
        blocks.append(
            f"{number}\n{clock(cue.start_ms, '.')} --> {clock(cue.end_ms, '.')}\n"
            f"{voice}{vtt_escape(cue.text)}"
        )
    return "\n\n".join(blocks) + "\n"


def _said(cue: TimedCue) -> str:
    return f"{cue.speaker}: {cue.text}" if cue.speaker else cue.text


def srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{clock(cue.start_ms, ',')} --> {clock(cue.end_ms, ',')}\n{_said(cue)}"
        for number, cue in enumerate(timed(cues), start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def plain_text(cues: Sequence[Cue]) -> str:
    lines = [_said(cue) for cue in timed(cues)]
    return "\n".join(lines) + "\n" if lines else ""


FORMATS = {
    # suffix: (media type, writer)
    "vtt": ("text/vtt; charset=utf-8", webvtt),
    "srt": ("application/x-subrip", srt),
    "txt": ("text/plain; charset=utf-8", plain_text),
}
