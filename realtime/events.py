"""Typed events, registered in one place, each with a server-rendered fragment.

The wire format is compact JSON, so that a chat message stays small on weak connections:
  c  channel          i  id within the channel (0 for transient events)
  t  event type       h  HTML fragment
  s  how to apply it  x  target element id (for "replace"/"remove")
  d  small data the client script needs (for example a deadline), optional"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Environment
from pydantic import BaseModel

Swap = Literal["append", "replace", "remove", "panel", "none"]


@dataclass(frozen=True)
class EventType:
    name: str
    schema: type[BaseModel]
    # Template of the fragment, rendered with the payload as `e`.
    template: str
    # Persisted events are logged with an id and replayed on resume; transient ones are not.
    persist: bool = True
    swap: Swap = "append"


class EventRegistry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def register(self, event_type: EventType) -> EventType:
        if event_type.name in self._types:
            raise ValueError(f"event type {event_type.name!r} is registered twice")
        self._types[event_type.name] = event_type
        return event_type

    def __getitem__(self, name: str) -> EventType:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def all(self) -> list[EventType]:
        return list(self._types.values())


def render_fragment(env: Environment, event_type: EventType, payload: BaseModel) -> str:
    html = env.get_template(event_type.template).render(e=payload)
    # Fragments travel as one line; collapse template indentation.
    return " ".join(html.split())


def wire(
    *,
    channel: str,
    seq: int,
    event_type: EventType,
    html: str,
    target: str = "",
    data: dict[str, Any] | None = None,
) -> str:
    body: dict[str, Any] = {"c": channel, "i": seq, "t": event_type.name, "s": event_type.swap}
    if html:
        body["h"] = html
    if target:
        body["x"] = target
    if data:
        body["d"] = data
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def control(kind: str, **fields: Any) -> str:
    """A message from the server about the connection itself (resync, error, ack...)."""
    return json.dumps({"t": kind, **fields}, separators=(",", ":"), ensure_ascii=False)
