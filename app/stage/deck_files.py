"""A deck's file, from upload to rendered pages, in a private working folder.

The type comes from the content, never the name: a PDF starts with `%PDF-`; a PowerPoint
file is a ZIP whose `[Content_Types].xml` names presentationml; an Impress file is a ZIP
whose `mimetype` member is the OpenDocument presentation type. PowerPoint and Impress
files are converted to PDF by LibreOffice, and every PDF's pages are rendered to WebP and
read for their text by app/stage/deck_render.py, in a process of its own with a time and
a memory limit. Nothing here touches storage or the database (app/stage/decks.py does)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from app.refusals import Refused
from app.stage import deck_render
from app.stage.urls import COMMON_WIDTH, SLIDE_WIDTHS

MB = 1024 * 1024
DECK_MAX_BYTES = 50 * MB
MAX_PAGES = 200
COMMON_MAX_BYTES = 60 * 1024
CONVERT_SECONDS = 60.0
RENDER_SECONDS_BASE = 20.0
RENDER_SECONDS_PER_PAGE = 2.0
RENDER_MEMORY_BYTES = 1536 * MB
CONTENT_TYPES_MAX_BYTES = 1 * MB

PDF, PPTX, ODP = "pdf", "pptx", "odp"
CONTENT_TYPES = {
    PDF: "application/pdf",
    PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ODP: "application/vnd.oasis.opendocument.presentation",
}
ACCEPT = ".pdf,.pptx,.odp,application/pdf," + ",".join(CONTENT_TYPES.values())
NO_LIBREOFFICE = (
    "PowerPoint and Impress files need LibreOffice on the server; please upload a PDF "
    "(in PowerPoint or Impress: File, Export, PDF)."
)
NOT_A_DECK = (
    "This file is not a PDF, PowerPoint (.pptx) or Impress (.odp) presentation, whatever its "
    "name says. Export your slides as a PDF and upload that."
)


class DeckRefused(Refused):
    """A deck we cannot take, with the reason for people (415, 413 or 422)."""

    status_default = 422


def render_limits() -> deck_render.Limits:
    return deck_render.Limits(
        widths=SLIDE_WIDTHS,
        common_width=COMMON_WIDTH,
        common_max_bytes=COMMON_MAX_BYTES,
        max_pages=MAX_PAGES,
        max_side_points=14_400.0,
        max_aspect=4.0,
        memory_bytes=RENDER_MEMORY_BYTES,
    )


def sniff_head(head: bytes) -> str | None:
    """ "pdf", "zip" (look inside with `sniff_zip`) or None, from the first bytes."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def sniff_zip(path: Path) -> str | None:
    """PPTX or ODP from what the ZIP holds; None for any other ZIP (or a broken one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                if archive.getinfo("mimetype").file_size > 200:
                    return None
                mimetype = archive.read("mimetype").strip()
                return ODP if mimetype == CONTENT_TYPES[ODP].encode() else None
            if "[Content_Types].xml" in names:
                info = archive.getinfo("[Content_Types].xml")
                if info.file_size > CONTENT_TYPES_MAX_BYTES:
                    return None
                listing = archive.read(info)
                return PPTX if b"presentationml" in listing else None
    except (zipfile.BadZipFile, OSError, KeyError, NotImplementedError, RuntimeError):
        return None
    return None


async def receive(
    chunks: AsyncIterator[bytes], folder: Path, *, max_bytes: int
) -> tuple[Path, str]:
    """Write the upload into `folder`, refusing it from its first bytes when it is no deck
    and as soon as it passes `max_bytes`; its path and type ("pdf", "pptx", "odp")."""
    target = folder / "upload"
    size = 0
    kind: str | None = None
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in chunks:
            if not chunk:
                continue
            if kind is None:
                kind = sniff_head(chunk)
                if kind is None:
                    raise DeckRefused(NOT_A_DECK, status=415)
            size += len(chunk)
            if size > max_bytes:
                raise DeckRefused(
                    f"This file is larger than the {max_bytes // MB} MB limit for a deck. "
                    "Make it smaller (for example, export the PDF with compressed images).",
                    status=413,
                )
            await out.write(chunk)
    if kind is None:
        raise DeckRefused("This file is empty. Choose the deck's file and try again.")
    if kind == "zip":
        kind = await anyio.to_thread.run_sync(sniff_zip, target)
        if kind is None:
            raise DeckRefused(NOT_A_DECK, status=415)
    named = target.with_name(f"original.{kind}")
    target.rename(named)
    return named, kind


def soffice_path() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


async def _run_limited(
    argv: Sequence[str],
    *,
    seconds: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, bytes, bool]:
    """Run a program in a process group of its own; (status, stdout, timed out). On time
    out (or when the request is cancelled) the whole group is killed."""
    process: Process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    output = bytearray()
    try:
        with anyio.move_on_after(seconds) as scope:
            assert process.stdout is not None
            async for block in process.stdout:
                output += block
            await process.wait()
        if scope.cancelled_caught:
            return -1, bytes(output), True
        return process.returncode or 0, bytes(output), False
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.wait()


def _kill_group(pid: int) -> None:
    # The group's id is its leader's pid (a new session).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


async def convert_to_pdf(source: Path, folder: Path) -> Path:
    """PPTX or ODP to PDF with LibreOffice, with its own throwaway profile (so that
    conversions never share or wait for one), within CONVERT_SECONDS."""
    soffice = soffice_path()
    if soffice is None:
        raise DeckRefused(NO_LIBREOFFICE, status=415)
    profile = folder / "lo-profile"
    outdir = folder / "converted"
    outdir.mkdir()
    env = {**os.environ, "HOME": str(folder)}
    argv = [
        soffice,
        "--headless",
        "--norestore",
        "--nolockcheck",
        f"-env:UserInstallation={profile.as_uri()}",
        "--convert-to",
        "pdf",
        "--outdir",
        str(outdir),
        str(source),
    ]
    status, _, timed_out = await _run_limited(argv, seconds=CONVERT_SECONDS, env=env, cwd=folder)
    converted = outdir / f"{source.stem}.pdf"
    if timed_out:
        raise DeckRefused(
            f"Converting this presentation took longer than {CONVERT_SECONDS:.0f} seconds, so "
            "we stopped. Export it as a PDF yourself and upload that."
        )
    if status != 0 or not converted.is_file() or converted.stat().st_size == 0:
        raise DeckRefused(
            "LibreOffice could not convert this presentation (it may be damaged). Export it "
            "as a PDF yourself and upload that."
        )
    return converted


@dataclass(frozen=True)
class RenderedPage:
    number: int
    width: int
    height: int
    text: str
    title: str
    # width -> (file in the pages folder, bytes, height)
    images: dict[int, tuple[Path, int, int]]
    # The renderer's time for this page (all widths, text and encoding).
    render_ms: float = 0.0


async def render_pages(pdf: Path, folder: Path) -> list[RenderedPage]:
    """Every page rendered at SLIDE_WIDTHS into `folder/pages`, with its text; refused
    (with the renderer's reason) when the PDF is encrypted, broken, too long or odd-sized."""
    limits = render_limits()
    pages_dir = folder / "pages"
    pages_dir.mkdir()
    argv = [sys.executable, deck_render.__file__, str(pdf), str(pages_dir)]
    argv.append(json.dumps(asdict(limits)))
    seconds = RENDER_SECONDS_BASE + RENDER_SECONDS_PER_PAGE * limits.max_pages
    status, output, timed_out = await _run_limited(argv, seconds=seconds)
    if timed_out:
        raise DeckRefused("Drawing this deck's pages took too long, so we stopped.")
    result = _parse_output(output)
    if status == deck_render.REFUSED_EXIT and "refused" in result:
        raise DeckRefused(str(result["refused"]))
    if status != 0 or "pages" not in result:
        raise DeckRefused(
            "We could not draw this deck's pages; the file may be damaged. Export it again "
            "and upload the new copy."
        )
    return [_page(raw, pages_dir) for raw in result["pages"]]


def _parse_output(output: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(output)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _page(raw: dict[str, Any], pages_dir: Path) -> RenderedPage:
    images = {
        int(width): (
            pages_dir / Path(entry["file"]).name,
            int(entry["bytes"]),
            int(entry["height"]),
        )
        for width, entry in raw["images"].items()
    }
    return RenderedPage(
        number=int(raw["number"]),
        width=int(raw["width"]),
        height=int(raw["height"]),
        text=str(raw["text"]),
        title=str(raw["title"]),
        images=images,
        render_ms=float(raw.get("ms", 0.0)),
    )
