"""The slide deck bench/stage.py uploads, and the baseline for rendering it: the same pages
rendered by pypdfium2 alone and encoded by Pillow alone, in the same run.

The deck is made here with fpdf2: `PAGES` pages of a title, a few lines of text and a
picture (a chart drawn with Pillow, different on each page), landscape 16:9 as slides are.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGES = 10
# The widths the server renders each page at (docs: the stage contract; 960 is the common
# width, the one the stage shows and the one the benchmark's viewers fetch).
WIDTHS = (480, 960, 1600)
COMMON_WIDTH = 960
# The server's encoder settings (app/stage/deck_render.py): its first quality, method 2.
WEBP_QUALITY, WEBP_METHOD = 82, 2

TOPICS = [
    "Why we meet",
    "What people told us",
    "Getting to the hospital",
    "Housing repairs",
    "Food prices",
    "Young people at night",
    "Street lights and safety",
    "The library as a warm place",
    "What the council can do",
    "Next steps",
]
LINES = [
    "Each group reads the notes from last week's session.",
    "Bus times are the most common complaint in three groups out of ten.",
    "Older people rarely use the council's website; letters are hard to read.",
    "We will ask the housing office to come to the next meeting.",
]


def chart_jpeg(page: int) -> bytes:
    """A bar chart over a photo-like gradient: something a slide would show."""
    import numpy as np
    from PIL import Image, ImageDraw

    width, height = 640, 400
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [
            120 + 100 * np.sin((xx + page * 40) / 90),
            140 + 80 * np.cos((yy + page * 25) / 70),
            180 + 60 * np.sin((xx + yy) / 120),
        ],
        axis=-1,
    )
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for bar in range(6):
        value = 60 + ((page * 37 + bar * 53) % 250)
        left = 50 + bar * 95
        draw.rectangle((left, height - 30 - value, left + 60, height - 30), fill=(30, 60, 120))
        draw.text((left + 10, height - 24), f"Q{bar + 1}", fill=(0, 0, 0))
    draw.line((40, height - 30, width - 20, height - 30), fill=(0, 0, 0), width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_deck(path: Path, pages: int = PAGES) -> bytes:
    """A `pages`-page PDF deck (16:9, text and a picture on each page), written to `path`."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", unit="mm", format=(190.5, 338.7))  # 13.33 x 7.5 in
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 34)
        pdf.set_xy(18, 16)
        pdf.cell(0, 16, f"{number}. {TOPICS[(number - 1) % len(TOPICS)]}")
        pdf.set_font("Helvetica", "", 18)
        y = 44.0
        for line in LINES:
            pdf.set_xy(18, y)
            pdf.multi_cell(140, 9, f"- {line}")
            y = pdf.get_y() + 3
        pdf.image(io.BytesIO(chart_jpeg(number)), x=170, y=44, w=150)
        pdf.set_font("Helvetica", "I", 12)
        pdf.set_xy(18, 170)
        pdf.cell(0, 8, f"Benchmark deck, page {number} of {pages}")
    data = bytes(pdf.output())
    path.write_bytes(data)
    return data


@dataclass
class RawRender:
    """pypdfium2 and Pillow alone on the same pages, per page (ms)."""

    render_ms: list[float] = field(default_factory=list)  # every width, one page
    render_common_ms: list[float] = field(default_factory=list)  # COMMON_WIDTH only
    webp_ms: list[float] = field(default_factory=list)  # every width, one page
    text_ms: list[float] = field(default_factory=list)
    common_bytes: list[int] = field(default_factory=list)  # WebP at COMMON_WIDTH

    @property
    def pages(self) -> int:
        return len(self.render_ms)


def raw_render(data: bytes, rounds: int = 3) -> RawRender:
    """Each page rendered to a bitmap at every width (pypdfium2: `page.render` at the scale
    that gives the width, then `to_pil`), its text extracted, and each bitmap encoded to
    WebP by Pillow; the best of `rounds` for each page, so that a busy moment of the shared
    machine does not count against the library."""
    import pypdfium2 as pdfium

    best = RawRender()
    for _ in range(rounds):
        now = RawRender()
        pdf = pdfium.PdfDocument(data)
        try:
            for index in range(len(pdf)):
                page_figures(pdf[index], now)
        finally:
            pdf.close()
        if not best.render_ms:
            best = now
            continue
        for name in ("render_ms", "render_common_ms", "webp_ms", "text_ms"):
            setattr(
                best,
                name,
                [min(a, b) for a, b in zip(getattr(best, name), getattr(now, name), strict=True)],
            )
    return best


def page_figures(page: object, into: RawRender) -> None:
    width_pt = page.get_width()  # type: ignore[attr-defined]
    render = webp = common = 0.0
    for width in WIDTHS:
        t0 = time.perf_counter()
        image = page.render(scale=width / width_pt).to_pil()  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        out = io.BytesIO()
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
        t2 = time.perf_counter()
        render, webp = render + t1 - t0, webp + t2 - t1
        if width == COMMON_WIDTH:
            common = t1 - t0
            into.common_bytes.append(out.tell())
    t0 = time.perf_counter()
    text = page.get_textpage()  # type: ignore[attr-defined]
    text.get_text_range()
    text.close()
    into.text_ms.append((time.perf_counter() - t0) * 1000)
    into.render_ms.append(render * 1000)
    into.render_common_ms.append(common * 1000)
    into.webp_ms.append(webp * 1000)
    page.close()  # type: ignore[attr-defined]
