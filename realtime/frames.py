"""Reading what a client sends on a live connection: size and nesting are checked before
any JSON decoding, so no frame can make the decoder recurse (Python's `json` raises
RecursionError, not ValueError, at about a thousand levels), allocate a huge number or
carry values the rest of the server would choke on.

Refusals are `FrameError`s with a short code and a message for the person; the transport
answers them with an `error` and closes a connection that keeps sending them
(docs/live.md, "Malformed frames")."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 8 * 1024
# A hello is two levels deep ({"cursors": {...}}); nothing we accept needs more than three.
MAX_DEPTH = 8
# Enough for any id or count (2**64 has 20 digits); more is a hostile number.
MAX_NUMBER_CHARS = 24

# A JSON string (with its escapes) or a bracket: enough to count nesting without decoding.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_nesting(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse text whose arrays and objects nest deeper than `max_depth`, counting only
    brackets outside strings. Linear in the text, and free for ordinary frames."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for token in _TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise FrameError("too_deep", f"frames may nest at most {max_depth} levels deep")
        elif bracket in ("]", "}"):
            depth -= 1


def _number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise FrameError("bad_number", f"numbers may have at most {MAX_NUMBER_CHARS} characters")


def _int(text: str) -> int:
    _number(text)
    return int(text)


def _float(text: str) -> float:
    _number(text)
    value = float(text)
    if not math.isfinite(value):
        raise FrameError("bad_number", "numbers must be finite")
    return value


def _constant(name: str) -> Any:
    raise FrameError("bad_number", f"{name} is not a number JSON allows")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise FrameError("duplicate_key", "a key appears twice in one object")
    return out


def _check_text(value: Any) -> None:
    """Strings must be real text: an escaped lone surrogate ("\\ud800") decodes to a str
    that cannot be encoded, stored or sent on."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise FrameError("bad_text", "text must be valid Unicode")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def loads(text: str, *, max_bytes: int = MAX_FRAME_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """JSON decoding with limits: size, nesting, number length, finite numbers, no
    duplicated keys, valid text. Raises FrameError."""
    if len(text) > max_bytes or len(text.encode(errors="surrogatepass")) > max_bytes:
        raise FrameError("too_big", f"frames are at most {max_bytes} bytes")
    check_nesting(text, max_depth=max_depth)
    try:
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except FrameError:
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen, see above
        raise FrameError("bad_json", "frames must be JSON objects") from exc
    if "\\u" in text or _SURROGATE.search(text):
        _check_text(value)
    return value


def parse_frame(text: str) -> dict[str, Any]:
    """A live WebSocket frame: a JSON object with a string "type". A refusal is logged as
    a warning (it is the client's mistake, not the server's)."""
    try:
        frame = loads(text)
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_frame", 'frames are JSON objects with a "type"')
    except FrameError as exc:
        logger.warning("refused a live frame of %d characters: %s", len(text), exc.code)
        raise
    return frame
