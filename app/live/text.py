"""User-written text made safe for the page: escaped, with web links made clickable."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

URL = re.compile(r"\bhttps?://[^\s<>\"'`]{1,500}", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def linkify(text: str) -> Markup:
    """Escape everything, then turn http(s) addresses into links that open safely."""
    out: list[str] = []
    position = 0
    for match in URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(TRAILING_PUNCTUATION)
        end = match.start() + len(trimmed)
        out.append(str(escape(text[position : match.start()])))
        href = escape(trimmed)
        out.append(
            f'<a href="{href}" rel="nofollow noopener noreferrer ugc" target="_blank">{href}</a>'
        )
        position = end
    out.append(str(escape(text[position:])))
    return Markup("".join(out))  # noqa: S704 - every piece above is escaped


def clean_message(text: str) -> str:
    """Strip control characters (but keep line breaks) and surrounding space."""
    kept = "".join(c for c in text if c.isprintable() or c in "\n\t")
    return re.sub(r"\n{3,}", "\n\n", kept).strip()
