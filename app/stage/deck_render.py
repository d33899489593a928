"""Rendering a PDF's pages to WebP images and reading their text, in a process of its own.

Run as `python deck_render.py <pdf> <out dir> <limits as JSON>` by app/stage/deck_files.py:
a separate process keeps the CPU work off the server's event loop and its GIL, lets the
server end it when it takes too long, and bounds its memory (a PDF can hold a compressed
image that decodes to gigabytes). PDFium (pypdfium2) parses and draws; Pillow encodes.

It prints one JSON object on stdout: {"pages": [...]} when every page was rendered, or
{"refused": "<message for people>"} (exit status 3) when the file cannot be used. Only the
standard library, pypdfium2 and Pillow are imported, so it starts quickly."""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image, ImageFilter

REFUSED_EXIT = 3
TITLE_MAX = 200
TEXT_MAX = 20_000
# WebP qualities tried in turn until the common width fits its byte budget; a page busy
# enough not to fit even at the lowest (a photo of noise) is smoothed a little more each
# step (blur radii) until it does.
QUALITIES = (82, 70, 58, 46, 34, 22, 12)
SMOOTHING = (1.0, 2.0, 4.0, 8.0)


class Refused(Exception):
    """The file cannot be used as slides; the message says why, for people."""


@dataclass(frozen=True)
class Limits:
    widths: tuple[int, ...]
    common_width: int
    common_max_bytes: int
    max_pages: int
    # A page's longer side, in points (1/72 inch); PDF itself allows 14,400 (200 inches).
    max_side_points: float
    # The longer side over the shorter: a page ten times taller than wide would be a
    # huge image at the widest width (a decompression bomb's way in).
    max_aspect: float
    memory_bytes: int

    @classmethod
    def from_json(cls, raw: str) -> Limits:
        data = json.loads(raw)
        data["widths"] = tuple(data["widths"])
        return cls(**data)


def _open(path: Path, limits: Limits) -> pdfium.PdfDocument:
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Refused(
                "This PDF is protected by a password. Save a copy without the password "
                "(or print it to PDF) and upload that."
            ) from None
        raise Refused(
            "This file is damaged or is not a complete PDF (it may have been cut short "
            "while downloading). Export it again and upload the new copy."
        ) from None
    count = len(document)
    if count == 0:
        raise Refused("This PDF has no pages.")
    if count > limits.max_pages:
        raise Refused(
            f"This deck has {count} pages; a deck may have at most {limits.max_pages}. "
            "Split it into smaller decks."
        )
    return document


def _check_size(number: int, width: float, height: float, limits: Limits) -> None:
    longer, shorter = max(width, height), min(width, height)
    if shorter < 1 or longer > limits.max_side_points:
        raise Refused(
            f"Page {number} is {width / 72:.0f} × {height / 72:.0f} inches, larger than a slide "
            f"can be (at most {limits.max_side_points / 72:.0f} inches a side)."
        )
    if longer / shorter > limits.max_aspect:
        raise Refused(
            f"Page {number} is {longer / shorter:.0f} times longer than it is wide; a slide may "
            f"be at most {limits.max_aspect:.0f} times. Export the deck with normal page sizes."
        )


def _text_and_title(page: pdfium.PdfPage) -> tuple[str, str]:
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_range()
    finally:
        textpage.close()
    lines = [
        " ".join(line.replace("\x00", "").split())
        for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    text = "\n".join(line for line in lines if line)[:TEXT_MAX]
    title = next((line for line in lines if line), "")[:TITLE_MAX]
    return text, title


def _render(page: pdfium.PdfPage, width: int) -> Image.Image:
    page_width = page.get_width()
    image = page.render(scale=width / page_width, draw_annots=True).to_pil().convert("RGB")
    if image.width != width:  # rounding, or a rotated page
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


def _encode(image: Image.Image, quality: int, blur: float) -> bytes:
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    out = io.BytesIO()
    # Method 2 of 0-6: within a few per cent of method 4's size at under half its time.
    image.save(out, "WEBP", quality=quality, method=2)
    return out.getvalue()


def _fit_common(image: Image.Image, max_bytes: int) -> tuple[bytes, int, float]:
    """The common-width image within `max_bytes`, and the quality and smoothing it took:
    the best quality that fits (most slides fit at the first; a busy page is found by
    halving the list), else the lowest quality smoothed as little as fits."""
    best = _encode(image, QUALITIES[0], 0.0)
    if len(best) <= max_bytes:
        return best, QUALITIES[0], 0.0
    fits: tuple[bytes, int] | None = None
    low, high = 1, len(QUALITIES) - 1  # QUALITIES[low..high] not tried yet
    while low <= high:
        middle = (low + high) // 2
        data = _encode(image, QUALITIES[middle], 0.0)
        if len(data) <= max_bytes:
            fits, high = (data, QUALITIES[middle]), middle - 1
        else:
            low = middle + 1
    if fits is not None:
        return fits[0], fits[1], 0.0
    for blur in SMOOTHING:
        data = _encode(image, QUALITIES[-1], blur)
        if len(data) <= max_bytes:
            return data, QUALITIES[-1], blur
    # Smoothed at radius 8 a page is a few colour fields: it always fits. Still, say so.
    raise Refused("A page is too detailed to show as a slide image.")


def render_page(page: pdfium.PdfPage, number: int, out: Path, limits: Limits) -> dict[str, Any]:
    started = time.perf_counter()
    width, height = page.get_size()
    _check_size(number, width, height, limits)
    text, title = _text_and_title(page)
    common = _render(page, limits.common_width)
    data, quality, blur = _fit_common(common, limits.common_max_bytes)
    encoded = {limits.common_width: (data, common.height)}
    for target in limits.widths:
        if target != limits.common_width:
            image = _render(page, target)
            encoded[target] = (_encode(image, quality, blur), image.height)
    images: dict[str, Any] = {}
    for target, (blob, image_height) in encoded.items():
        name = f"{number}-{target}.webp"
        (out / name).write_bytes(blob)
        images[str(target)] = {"file": name, "bytes": len(blob), "height": image_height}
    widest = max(limits.widths)
    return {
        "number": number,
        "width": widest,
        "height": encoded[widest][1],
        "images": images,
        "text": text,
        "title": title,
        "quality": quality,
        # Drawing, reading and encoding this page (benchmarks compare it with PDFium's own
        # rendering of the same page).
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def render_document(path: Path, out: Path, limits: Limits) -> list[dict[str, Any]]:
    document = _open(path, limits)
    pages = []
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                pages.append(render_page(page, index + 1, out, limits))
            finally:
                page.close()
    finally:
        document.close()
    return pages


def main(argv: list[str]) -> int:
    pdf, out, raw_limits = argv
    limits = Limits.from_json(raw_limits)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    try:
        pages = render_document(Path(pdf), Path(out), limits)
    except Refused as exc:
        json.dump({"refused": str(exc)}, sys.stdout)
        return REFUSED_EXIT
    except MemoryError:
        message = "This deck needs more memory to draw than a deck may use."
        json.dump({"refused": message}, sys.stdout)
        return REFUSED_EXIT
    json.dump({"pages": pages}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
