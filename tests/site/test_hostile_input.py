"""Malformed and hostile input to every route: always a clear 4xx (or a handled page),
never a 500, never a stack trace, never unescaped markup.

Routes and their fields come from the OpenAPI document, so new routes are covered as
they are added."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from app.config import Settings
from app.factory import create_app
from tests.factories import make_world
from tests.people.test_authorization import QUERY_FOR, path_values, seed_extras, url_for

SCRIPT = "<script>alert('rt')</script>"
HOSTILE_STRINGS = [
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "x" * 100_000,
    "\x00\x01\x02\x1b[31m",
    "' OR 1=1 --",
    "../../../etc/passwd",
    "🙂" * 500,
    "",
    "   ",
    "-1",
    "1e309",
    "NaN",
    "null",
    '=HYPERLINK("http://example.invalid")',
    "\u202eevil",
    # Digits that str.isdigit() accepts and int() refuses.
    "²",
    "①",
]
HOSTILE_IDS = ["0", "-1", "99999999999999999999999", "abc", "1.5", "%2e%2e", "2147483648", "²"]
STACK_TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/', "sqlalchemy.exc")


def openapi() -> dict[str, Any]:
    app = create_app(Settings(_env_file=None, environment="test"))  # type: ignore[call-arg]
    return app.openapi()


SPEC = openapi()
OPERATIONS = [
    (method.upper(), path, op) for path, ops in SPEC["paths"].items() for method, op in ops.items()
]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return SPEC["components"]["schemas"][name]
    return schema


def body_fields(op: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The request body's content type and its properties."""
    body = op.get("requestBody")
    if not body:
        return None, {}
    for content_type, media in body["content"].items():
        schema = resolve(media.get("schema", {}))
        return content_type, schema.get("properties", {})
    return None, {}


def is_file(prop: dict[str, Any]) -> bool:
    prop = resolve(prop)
    if prop.get("format") == "binary" or prop.get("contentMediaType"):
        return True
    if prop.get("type") == "array":
        return is_file(prop.get("items", {}))
    return any(is_file(p) for p in prop.get("anyOf", []))


def nasty_json_values(rng: random.Random) -> list[Any]:
    values: list[Any] = [
        None,
        True,
        -1,
        0,
        2**63,
        1.5,
        float("1e308"),
        "",
        SCRIPT,
        "x" * 50_000,
        [],
        [None],
        {},
        {"$where": "1"},
        [SCRIPT] * 100,
        {"nested": {"deeper": [1, {"x": []}]}},
    ]
    values += [rng.choice(HOSTILE_STRINGS) for _ in range(3)]
    return values


def check(response: Any, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    text = response.text
    for marker in STACK_TRACE_MARKERS:
        assert marker not in text, f"{label}: response shows internals ({marker})"
    ctype = response.headers.get("content-type", "")
    if "html" in ctype:
        assert SCRIPT not in text, f"{label}: unescaped script in the page"
        assert "<img src=x onerror" not in text, f"{label}: unescaped markup in the page"
    if response.request.url.path.startswith("/api/") and response.status_code >= 400:
        assert "json" in ctype, f"{label}: API error is not JSON"
        assert "detail" in response.json(), f"{label}: API error has no detail"


def quick(url: str) -> dict[str, str]:
    """Query parameters that make live streams answer at once."""
    for suffix, params in QUERY_FOR.items():
        if url.split("?")[0].endswith(suffix):
            return dict(params)
    return {}


async def send(
    browser: Any,
    method: str,
    url: str,
    content_type: str | None,
    fields: dict[str, Any],
    files: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> Any:
    headers = {"X-CSRF-Token": browser.csrf_token()}
    if quick(url):
        return await browser.request(method, url, params=quick(url), headers=headers)
    if raw is not None:
        headers["content-type"] = content_type or "application/json"
        return await browser.request(method, url, content=raw, headers=headers)
    if content_type == "application/json":
        return await browser.request(method, url, json=fields, headers=headers)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        if content_type == "multipart/form-data" or files:
            return await browser.request(
                method, url, data=data, files=files or {"_": ("x", b"")}, headers=headers
            )
        return await browser.request(method, url, data=data, headers=headers)
    return await browser.request(method, url, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
async def test_route_survives_hostile_input(
    method: str, path: str, op: dict[str, Any], app_and_state: Any, browser_factory: Any, db: Any
) -> None:
    rng = random.Random(f"{method} {path}")
    _app, state = app_and_state
    w = await make_world(db)
    await seed_extras(db, w, state.storage)
    values = await path_values(db, w)
    other = {
        "programme_id": w.other_programme.id,
        "group_id": w.other_group.id,
        "session_id": w.other_session.id,
    }
    content_type, props = body_fields(op)
    # The most powerful role in the programme, and a participant, try everything.
    for user in (w.host, w.participant_a):
        browser = browser_factory(user)
        url = url_for(path, values)

        # 1. Every path parameter: nonsense, out of range, and other programmes' ids.
        for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
            for bad in HOSTILE_IDS + ([str(other[name])] if name in other else []):
                bad_url = path.format(**{**values, name: bad})
                response = await send(browser, method, bad_url, content_type, {})
                check(response, f"{method} {bad_url}")
                if name in other and bad == str(other[name]):
                    assert response.status_code in (403, 404), (
                        f"{bad_url} reached another programme"
                    )

        # 2. Query parameters with hostile values.
        for q in [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]:
            for bad in [b[:8000] for b in HOSTILE_STRINGS]:
                params = {**quick(url), q: bad}
                response = await browser.request(
                    method, url, params=params, headers={"X-CSRF-Token": browser.csrf_token()}
                )
                check(response, f"{method} {url}?{q}=…")

        if content_type is None:
            continue
        file_fields = {k for k, v in props.items() if is_file(v)}
        text_fields = [k for k in props if k not in file_fields]

        # 3. Every field at once with each hostile string.
        for bad in HOSTILE_STRINGS:
            fields = {k: bad for k in text_fields}
            files = {
                k: ("evil.csv", bad.encode("utf-8", "surrogatepass")) for k in file_fields
            } or None
            response = await send(browser, method, url, content_type, fields, files)
            check(response, f"{method} {url} with {bad[:20]!r}")

        # 4. Wrong types (JSON) and structures.
        if content_type == "application/json":
            for value in nasty_json_values(rng):
                response = await send(
                    browser, method, url, content_type, {k: value for k in text_fields}
                )
                check(response, f"{method} {url} with {str(value)[:20]}")
            for raw in (b"{", b"[]", b"null", b'{"a":' * 2000, b"\xff\xfe\x00", b'"just a string"'):
                response = await send(browser, method, url, content_type, {}, raw=raw)
                check(response, f"{method} {url} raw {raw[:10]!r}")
                assert 400 <= response.status_code < 500, f"{method} {url} accepted {raw[:10]!r}"
            response = await send(browser, method, url, content_type, {"unexpected_field": 1})
            check(response, f"{method} {url} with an unknown field")
        else:
            # A form with the wrong encoding, a truncated multipart body, and binary junk.
            for raw, ctype in (
                (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
                (
                    b'--boundary\r\nContent-Disposition: form-data; name="x"\r\n\r\nunterminated',
                    "multipart/form-data; boundary=boundary",
                ),
                (bytes(range(256)), "multipart/form-data"),
                (b"{}", "application/json"),
            ):
                response = await send(browser, method, url, ctype, {}, raw=raw)
                check(response, f"{method} {url} raw {ctype}")
            for field in file_fields:
                for name, blob in (
                    ("roster.csv", "name,email\nJosé,jose@example.org\n".encode("latin-1")),
                    ("../../etc/passwd", b"root:x:0:0"),
                    ("a" * 5000 + ".csv", b"name,email\n"),
                    ("empty.csv", b""),
                    ("binary.csv", bytes(range(256)) * 10),
                ):
                    fields = {k: "x" for k in text_fields}
                    response = await send(
                        browser, method, url, content_type, fields, {field: (name, blob)}
                    )
                    check(response, f"{method} {url} file {name[:20]}")
