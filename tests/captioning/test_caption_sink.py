"""captioning/ hands its text to any CaptionSink: the recognizer side runs with no web
app, database or broker behind it (the arrows in docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from captioning.engine import CaptionEngine
from captioning.live import LiveCaptionStream, Utterance
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    caption_engine_fixture,
    frames,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)


@dataclass
class Notebook:
    """A sink that writes down where each piece of text was sent."""

    partials: list[tuple[str, str]] = field(default_factory=list)
    finals: list[tuple[str, Utterance]] = field(default_factory=list)

    async def partial(self, to: str, stream_id: str, text: str) -> None:
        self.partials.append((to, text))

    async def final(self, to: str, utterance: Utterance) -> None:
        self.finals.append((to, utterance))


async def test_speech_reaches_the_sink_in_the_room_it_was_said_in(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    notebook = Notebook()
    stream = LiveCaptionStream(
        engine=caption_engine, sink=notebook, room="kitchen", sample_rate=16000, budget=None
    )
    try:
        for chunk in frames(speech.pcm("the kettle is boiling") + silence(0.3), 3200):
            await stream.feed(chunk)
        await stream.move_to("garden")
        for chunk in frames(speech.pcm("the roses are red") + silence(0.3), 3200):
            await stream.feed(chunk)
        last = await stream.finish()
    finally:
        stream.close()

    rooms = [(to, u.text) for to, u in notebook.finals]
    assert [to for to, _ in rooms] == ["kitchen", "garden"], rooms
    assert "boiling" in rooms[0][1] and "roses" in rooms[1][1], rooms
    assert last is not None and last.text == rooms[1][1]
    kitchen, garden = notebook.finals[0][1], notebook.finals[1][1]
    assert kitchen.stream_id == garden.stream_id == stream.stream_id
    assert kitchen.stream_end <= garden.stream_start
    assert kitchen.started_at <= kitchen.ended_at <= garden.started_at
    assert all(w["word"] for w in kitchen.words) and 0 < kitchen.confidence <= 1
    assert notebook.partials and all(to in {"kitchen", "garden"} for to, _ in notebook.partials)
