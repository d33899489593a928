"""Serving evidence files so that a browser can never run them.

The type a response declares comes only from a fixed list of safe types (never HTML or
SVG); anything else is a download of bytes. Pictures and sound are shown in the page
(`inline`, for `<img>` and `<audio>`), everything else is a download (`attachment`). Every
file response also forbids sniffing and carries a sandboxing Content-Security-Policy, so
even a file opened directly in a tab has no scripts, no origin and no network."""

from __future__ import annotations

from pathlib import Path

from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from app.evidence.filetypes import SAFE_CONTENT_TYPES, Family, sniff
from app.programmes.papers import content_disposition

OCTET_STREAM = "application/octet-stream"
FILE_CSP = "default-src 'none'; sandbox"
INLINE_PREFIXES = ("image/", "audio/")
FORBIDDEN = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")


def safe_content_type(declared: str) -> str:
    base = declared.split(";", 1)[0].strip().lower()
    if base in SAFE_CONTENT_TYPES and base not in FORBIDDEN:
        return base
    return OCTET_STREAM


def shown_inline(content_type: str) -> bool:
    return content_type.startswith(INLINE_PREFIXES)


def thumbnail_content_type(path: Path) -> str:
    """Thumbnails are images we made; the type still comes from their bytes."""
    with path.open("rb") as f:
        found = sniff(f.read(64))
    if found is None or found.family is not Family.IMAGE:
        return OCTET_STREAM
    return safe_content_type(found.content_type)


def disposition(filename: str, *, inline: bool) -> str:
    value = content_disposition(filename)
    return "inline" + value.removeprefix("attachment") if inline else value


def file_response(
    path: Path,
    *,
    filename: str,
    content_type: str,
    download: bool = False,
    cache: str = "private, max-age=300",
    background: BackgroundTask | None = None,
) -> FileResponse:
    """`download` asks for `attachment` even for a picture or sound."""
    media_type = safe_content_type(content_type)
    inline = shown_inline(media_type) and not download
    return FileResponse(
        path,
        media_type=media_type,
        headers={
            "Content-Disposition": disposition(filename, inline=inline),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": cache,
            "Cross-Origin-Resource-Policy": "same-origin",
        },
        background=background,
    )
