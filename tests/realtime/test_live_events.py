"""Every live event the product sends is registered with a schema and a fragment that
renders, escapes what people wrote, and can be placed by the page's script; and every
event the code sends is registered."""

from __future__ import annotations

import re
import types
import typing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from app.config import PROJECT_ROOT
from app.live.events import build_registry
from app.templating import make_templates
from realtime.events import render_fragment

REGISTRY = build_registry()
EVIL = "<script>alert('x')</script>"


def sample(annotation: typing.Any) -> typing.Any:
    """A value of the annotated type, with hostile text where text goes."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is list:
        return [sample(typing.get_args(annotation)[0])]
    if origin is typing.Annotated:
        return sample(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample_payload(annotation).model_dump()
    return {
        int: 7,
        float: 1.5,
        bool: True,
        str: EVIL,
        datetime: datetime(2026, 11, 26, 14, 5, tzinfo=UTC),
    }.get(annotation, EVIL)


def sample_payload(schema: type[BaseModel]) -> BaseModel:
    values = {}
    for name, field in schema.model_fields.items():
        value = sample(field.annotation)
        if isinstance(value, str) and field.metadata:
            value = value[:20]
        values[name] = value
    return schema.model_validate(values)


@pytest.mark.parametrize("event_type", REGISTRY.all(), ids=lambda e: e.name)
def test_event_has_schema_and_safe_fragment(event_type) -> None:  # type: ignore[no-untyped-def]
    assert issubclass(event_type.schema, BaseModel), f"{event_type.name} has no schema"
    template = PROJECT_ROOT / "templates" / event_type.template
    assert template.exists(), f"{event_type.name}: no fragment at {template}"
    env = make_templates().env
    html = render_fragment(env, event_type, sample_payload(event_type.schema))
    assert html.strip(), f"{event_type.name}: empty fragment"
    assert "<script" not in html, f"{event_type.name}: user text is not escaped"
    assert html.lstrip().startswith("<"), f"{event_type.name}: fragment is not an element"
    if event_type.swap == "replace":
        assert re.match(r'<\w+[^>]*\sid="', html), (
            f"{event_type.name}: replaced fragments need an id"
        )


def test_every_event_sent_is_registered() -> None:
    sent: set[str] = set()
    pattern = re.compile(
        r"""(?:outbox\.add(?:_many)?|publish_transient)\(\s*[^,]+,\s*["']([a-z_.]+)["']""", re.S
    )
    for path in list((PROJECT_ROOT / "app").rglob("*.py")) + list(
        (PROJECT_ROOT / "captioning").rglob("*.py")
    ):
        sent.update(pattern.findall(Path(path).read_text()))
    assert sent, "found no events sent; the pattern needs updating"
    unregistered = sorted(name for name in sent if name not in REGISTRY)
    assert not unregistered, f"events sent but not registered: {unregistered}"
