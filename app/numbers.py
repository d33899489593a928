"""Reading whole numbers from text people (or scripts) send."""

from __future__ import annotations


def is_digits(value: str) -> bool:
    """0-9 only. str.isdigit() also accepts digits that int() refuses ("²", "①"), which
    turned such input into a server error instead of a clear refusal."""
    return value.isascii() and value.isdigit()
