"""The tech check: a sample caption of a few seconds of someone's speech, and asking IT
support for help from outside the live page.

A request for help from the tech check is an ordinary request for help in a session
(app/live/help.py), so it reaches the session's help desk at once (IT support, the
facilitators of the person's group, the hosts), is claimed and resolved there, and is
audited, with no second kind of request to keep in step. Its note says it came from the
tech check and carries what the check found. Without a session named, it goes to the
person's session that is on now or comes next; with none, there is no help desk to ask,
and the page says so."""

from __future__ import annotations

import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import ProgrammeContext, load_programme_context
from app.db import utcnow
from app.live import help as help_desk
from app.live.channels import seat_for
from app.live.models import HelpRequest
from app.live.text import clean_message
from app.models import Membership, MembershipStatus, ProgrammeSession, User
from app.refusals import Conflict, NotFound, Refused
from captioning.audio import SAMPLE_WIDTH, AudioFormatError, PcmAudio, read_wav
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.stream import FILE_BUDGET, RecognizerStream, StreamConfigError
from realtime.publish import Live

MAX_SAMPLE_SECONDS = 10.0
# Ten seconds at the highest rate we take, with room for the WAV header.
MAX_SAMPLE_BYTES = int(48_000 * SAMPLE_WIDTH * (MAX_SAMPLE_SECONDS + 0.5)) + 4096
MAX_RESULTS_CHARS = 240
NOTE_PREFIX = "From the tech check."


class SampleRefused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def read_sample(data: bytes) -> PcmAudio:
    """A short recording sent by the tech check page: a 16-bit mono PCM WAV file of at
    most MAX_SAMPLE_SECONDS."""
    if not data:
        raise SampleRefused("No sound arrived. Record a few seconds and try again.")
    try:
        audio = read_wav(io.BytesIO(data))
    except AudioFormatError as exc:
        raise SampleRefused(
            f"The sample is not a sound file we can read ({exc}). Send a 16-bit mono PCM WAV file."
        ) from None
    pcm = audio.data[: len(audio.data) - len(audio.data) % SAMPLE_WIDTH]
    if not pcm:
        raise SampleRefused("The sample has no sound in it. Record a few seconds and try again.")
    audio = PcmAudio(pcm, audio.sample_rate)
    if audio.seconds > MAX_SAMPLE_SECONDS + 0.05:
        raise SampleRefused(
            f"The sample is {audio.seconds:.1f} seconds long; "
            f"the tech check takes at most {MAX_SAMPLE_SECONDS:g} seconds.",
            status=413,
        )
    return audio


async def sample_caption(engine: CaptionEngine, audio: PcmAudio) -> str:
    """What the speech model hears in the sample, as one line of text (raises
    CaptionsUnavailable when the model is not there)."""
    if not engine.available:
        raise CaptionsUnavailable(engine.public_reason)
    try:
        stream = RecognizerStream(engine, audio.sample_rate, words=False, budget=FILE_BUDGET)
    except StreamConfigError as exc:
        raise SampleRefused(f"We cannot caption this sample: {exc}.") from None
    heard: list[str] = []
    try:
        answer = await stream.accept(audio.data)
        if answer.get("text"):
            heard.append(str(answer["text"]))
        answer = await stream.final()
        if answer.get("text"):
            heard.append(str(answer["text"]))
    finally:
        stream.close()
    return " ".join(heard).strip()


# -- asking IT support --


@dataclass
class HelpTarget:
    ctx: ProgrammeContext
    session: ProgrammeSession


async def help_target(db: AsyncSession, *, user: User, session_id: int | None) -> HelpTarget | None:
    """The session whose help desk the person's request goes to: the one named (which
    must be in one of their programmes), else their session on now or next."""
    if session_id is not None:
        session = await db.get(ProgrammeSession, session_id)
        not_found = NotFound("We could not find that session.")
        if session is None:
            raise not_found
        try:
            ctx = await load_programme_context(db, user, session.programme_id)
        except NotFound as exc:
            raise not_found from exc
        return HelpTarget(ctx=ctx, session=session)
    session = await db.scalar(
        select(ProgrammeSession)
        .join(Membership, Membership.programme_id == ProgrammeSession.programme_id)
        .where(
            Membership.user_id == user.id,
            Membership.status == MembershipStatus.ACTIVE.value,
            ProgrammeSession.ends_at > utcnow(),
        )
        .order_by(ProgrammeSession.starts_at, ProgrammeSession.id)
        .limit(1)
    )
    if session is None:
        return None
    ctx = await load_programme_context(db, user, session.programme_id)
    return HelpTarget(ctx=ctx, session=session)


def help_note(note: str, results: str) -> str:
    """The request's note: what the person wrote, then what the check found."""
    found = clean_message(results)[:MAX_RESULTS_CHARS]
    written = clean_message(note)
    room = help_desk.MAX_NOTE_CHARS - len(NOTE_PREFIX) - len(found) - 2
    if len(written) > room:
        raise Refused(
            f"Your note can be at most {room} characters here; this one has {len(written):,}."
        )
    return " ".join(part for part in (NOTE_PREFIX, found, written) if part)


async def ask_it_support(
    db: AsyncSession, live: Live, *, target: HelpTarget | None, note: str, results: str
) -> HelpRequest:
    """A request for help at the target session's help desk (None: the person has no
    session on now or coming up, so there is no desk to ask)."""
    if target is None:
        raise Conflict(
            "You have no session on now or coming up, so there is no help desk to ask. "
            "Your programme's host can help.",
        )
    seat = await seat_for(db, ctx=target.ctx, session=target.session)
    return await help_desk.ask_for_help(db, live, seat=seat, note=help_note(note, results))
