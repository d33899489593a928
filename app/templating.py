"""Jinja2 environment for server-rendered pages and fragments."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from starlette.requests import Request

from app.config import PROJECT_ROOT
from app.db import utcnow
from app.live.text import linkify
from app.state import get_app_state

TEMPLATE_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"


def asset_digest(data: bytes) -> str:
    """The content hash in a static URL's `?v=` (app/compression.py checks it)."""
    return hashlib.sha256(data).hexdigest()[:12]


class StaticUrls:
    """Content-hashed static URLs so browsers may cache assets for a long time."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        url = self._cache.get(name)
        if url is None:
            try:
                digest = asset_digest((self._root / name).read_bytes())
            except OSError:
                digest = "missing"
            url = f"/static/{name}?v={digest}"
            self._cache[name] = url
        return url


def local_time(value: Any, tz: str = "Europe/London", fmt: str = "%a %d %b %Y, %H:%M") -> str:
    if value is None:
        return ""
    return str(value.astimezone(ZoneInfo(tz)).strftime(fmt))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    env = templates.env
    env.globals["static_url"] = StaticUrls(STATIC_DIR)
    env.filters["local_time"] = local_time
    env.filters["linkify"] = linkify
    # For fragments that mark what is upcoming (sessions/_list.html).
    env.globals["utcnow"] = utcnow
    return templates


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Any:
    templates: Jinja2Templates = get_app_state(request).templates
    ctx = {"request": request, **(context or {})}
    ctx.setdefault("user", getattr(request.state, "user", None))
    ctx.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
