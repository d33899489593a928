"""Typed notes: Markdown as people write it, shown as sanitised HTML.

Two layers keep a note from running anything in a reader's browser: markdown-it does not
pass raw HTML through (and refuses `javascript:` and similar links), and nh3 then keeps only
a small set of tags and attributes, with links limited to http, https and mailto."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

NOTE_MAX = 20_000
PREVIEW_CHARS = 600

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "em",
        "s",
        "ul",
        "ol",
        "li",
        "blockquote",
        "code",
        "pre",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

# A note sits under the page's h1 and the section's h2, so its own headings start at h3;
# on a board card, under the card's own heading, they are all h6.
PAGE_TOP_HEADING = 3
CARD_TOP_HEADING = 6

_BLOCK_ENDS = frozenset(
    {"paragraph_close", "heading_close", "list_item_close", "tr_close", "blockquote_close"}
)


def _parser() -> MarkdownIt:
    # "commonmark" with raw HTML off; tables and ~~strikethrough~~ are what people expect.
    # Images are off: a note cannot pull pictures from other sites (they would also learn
    # who reads it); evidence images are uploaded instead.
    return (
        MarkdownIt("commonmark", {"html": False})
        .enable(["table", "strikethrough"])
        .disable("image")
    )


_MD = _parser()


def _shift_headings(tokens: list[Token], top: int) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + top - 1, 6)
            token.tag = f"h{level}"


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        url_relative="deny",
    )


@lru_cache(maxsize=512)
def _render(markdown: str, top: int) -> str:
    tokens = _MD.parse(markdown)
    _shift_headings(tokens, top)
    return sanitise(_MD.renderer.render(tokens, _MD.options, {}))


def render_note(markdown: str, *, top_heading: int = PAGE_TOP_HEADING) -> Markup:
    """The note as HTML that is safe to put in a page as it is; its `#` headings become
    `h{top_heading}` (and deeper ones follow, down to h6)."""
    return Markup(_render(markdown, top_heading))  # noqa: S704 - sanitised by nh3 just above


def note_plain_text(markdown: str) -> str:
    """What the note says, without its Markdown: for previews, exports and search snippets."""
    out: list[str] = []
    for token in _MD.parse(markdown):
        if token.type == "inline" and token.children:
            for child in token.children:
                if child.type in ("text", "code_inline"):
                    out.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    out.append(" ")
        elif token.type in ("code_block", "fence"):
            out.append(token.content.rstrip("\n"))
            out.append("\n")
        elif token.type in _BLOCK_ENDS:
            out.append("\n")
        elif token.type in ("td_close", "th_close"):
            out.append(" ")
    lines = (" ".join(line.split()) for line in "".join(out).splitlines())
    return "\n".join(line for line in lines if line)


def note_preview(markdown: str, limit: int = PREVIEW_CHARS) -> tuple[Markup, bool]:
    """The whole rendered note when it is short; otherwise its first `limit` characters
    as plain text (escaped), cut at a word. The flag says whether it was shortened."""
    text = note_plain_text(markdown)
    if len(text) <= limit:
        return render_note(markdown, top_heading=CARD_TOP_HEADING), False
    cut = text[:limit]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    paragraphs = [p for p in cut.split("\n") if p]
    body = Markup("").join(Markup("<p>{}</p>").format(p) for p in paragraphs[:-1])
    body += Markup("<p>{}…</p>").format(paragraphs[-1] if paragraphs else "")
    return body, True
