"""Where a deck, its slides' images and its downloads live (the one place that spells them).

The slide sync (app/stage/present.py) and the decks' pages build their links here, so a
route and the links to it cannot drift apart."""

from __future__ import annotations

# The widths every slide is rendered at, and the one pages show unless told otherwise.
SLIDE_WIDTHS: tuple[int, ...] = (480, 960, 1600)
COMMON_WIDTH = 960


def decks_url(programme_id: int, session_id: int) -> str:
    """The session's decks: the list and the upload form."""
    return f"/programmes/{programme_id}/sessions/{session_id}/decks"


def deck_url(programme_id: int, session_id: int, deck_id: int) -> str:
    """One deck: its slides, their text, alt text and speaker notes."""
    return f"{decks_url(programme_id, session_id)}/{deck_id}"


def slide_image_url(
    programme_id: int, session_id: int, deck_id: int, number: int, width: int = COMMON_WIDTH
) -> str:
    """A slide's image (WebP) at one of SLIDE_WIDTHS; slides are numbered from 1."""
    if width not in SLIDE_WIDTHS:
        raise ValueError(f"slides are rendered at {SLIDE_WIDTHS}, not {width}")
    return f"{deck_url(programme_id, session_id, deck_id)}/slides/{number}.webp?w={width}"


def deck_original_url(programme_id: int, session_id: int, deck_id: int) -> str:
    """The file as it was uploaded (PDF, PPTX or ODP)."""
    return f"{deck_url(programme_id, session_id, deck_id)}/original"


def deck_pdf_url(programme_id: int, session_id: int, deck_id: int) -> str:
    """The deck as PDF (the original itself when it was a PDF)."""
    return f"{deck_url(programme_id, session_id, deck_id)}/pdf"


def signed_slide_image_url(key: str, signature: str) -> str:
    """A slide's image by its storage key, loadable by whoever holds the link (the stage
    gives it only to those who may see the deck): served without a look in the database,
    so that a room of viewers fetching a new slide at once costs little."""
    return f"/slide-images/{key}.webp?s={signature}"
