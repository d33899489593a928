"""Decks made for tests: PDFs with fpdf2 (text, a busy photo-like picture, a password,
odd page sizes) and PowerPoint files with python-pptx."""

from __future__ import annotations

import io

from fpdf import FPDF
from PIL import Image

# 16:9, as presentation software exports slides (in millimetres).
SLIDE_MM = (190.5, 338.67)


def busy_picture(width: int = 800, height: int = 450) -> Image.Image:
    """Something like a photo of foliage: fine detail everywhere, which compresses badly."""
    noise = Image.effect_noise((width, height), 70).convert("RGB")
    mandel = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 200).convert("RGB")
    return Image.blend(noise, mandel, 0.45)


def slide_pdf(pages: int = 3, *, picture: bool = True, encrypt: bool = False) -> bytes:
    """`pages` slides with a title and a paragraph each, then (with `picture`) one more
    slide that is mostly a busy photo."""
    pdf = FPDF(orientation="L", format=SLIDE_MM)
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("helvetica", size=36)
        pdf.cell(text=f"Slide {number}: Why we listen")
        pdf.ln(22)
        pdf.set_font("helvetica", size=20)
        pdf.multi_cell(w=0, text=f"Point {number}. People know their own lives best. " * 4)
    if picture:
        pdf.add_page()
        pdf.set_font("helvetica", size=36)
        pdf.cell(text="A photo from the workshop")
        buffer = io.BytesIO()
        busy_picture().save(buffer, "PNG")
        pdf.image(buffer, x=0, y=25, w=338.67)
    if encrypt:
        pdf.set_encryption(owner_password="owner-secret", user_password="open-sesame")
    return bytes(pdf.output())


def many_pages_pdf(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for number in range(pages):
        pdf.add_page()
        pdf.cell(text=f"Page {number + 1}")
    return bytes(pdf.output())


def odd_page_pdf(width_mm: float, height_mm: float) -> bytes:
    """One page of a normal first page, then one of the given size."""
    pdf = FPDF(orientation="L", format=SLIDE_MM)
    pdf.set_font("helvetica", size=20)
    pdf.add_page()
    pdf.cell(text="A normal slide")
    pdf.add_page(format=(width_mm, height_mm))
    pdf.cell(text="A strange page")
    return bytes(pdf.output())


def slide_pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    for number, (title, body) in enumerate(
        [("Welcome to the webinar", "Today: what we heard"), ("What we heard", "Access first")],
        start=1,
    ):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = f"{body} ({number})"
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()
