"""Finding an excerpt in an item's text: by positions, by its words, or both.

A browser's selection in rendered Markdown loses the markup and counts characters
differently from the source, so words are matched exactly first and then ignoring markup,
spacing and case, nearest the position the page gave."""

from __future__ import annotations


class ExcerptProblem(ValueError):
    """Why no excerpt was found; `code` is one of app.themes.coding.ERROR_MESSAGES."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message


# Characters of Markdown markup (and bullets) that are not in the text a reader selects
# on the page; whitespace differences are ignored too.
_MARKUP = frozenset("*_~`#>|-+")


def _normalised(text: str) -> tuple[str, list[int]]:
    """The text without markup and with single spaces, lower-cased, and for each character
    kept its position in the original."""
    out: list[str] = []
    positions: list[int] = []
    for index, ch in enumerate(text):
        if ch in _MARKUP:
            continue
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                positions.append(index)
            continue
        lower = ch.lower()
        out.append(lower if len(lower) == 1 else ch)
        positions.append(index)
    return "".join(out), positions


def _occurrences(haystack: str, needle: str) -> list[int]:
    found: list[int] = []
    at = haystack.find(needle)
    while at != -1 and len(found) < 1000:
        found.append(at)
        at = haystack.find(needle, at + 1)
    return found


def _find(text: str, needle: str, *, hint: int | None) -> tuple[int, int]:
    """The span of `needle` in `text`: exactly, or ignoring markup, spacing and case;
    the one nearest `hint` when given (an exact one on a tie), else the first exact one."""
    exact = [(at, at + len(needle)) for at in _occurrences(text, needle)]
    if exact and hint is None:
        return exact[0]
    haystack, positions = _normalised(text)
    wanted = _normalised(needle)[0].strip()
    loose = [
        (positions[at], positions[at + len(wanted) - 1] + 1)
        for at in (_occurrences(haystack, wanted) if wanted else [])
    ]
    candidates = exact + [span for span in loose if span not in exact]
    if not candidates:
        raise ExcerptProblem("excerpt_not_found")
    if hint is None:
        return candidates[0]
    return min(candidates, key=lambda span: abs(span[0] - hint))


def locate_excerpt(
    text: str, *, excerpt: str, start: int | None, end: int | None
) -> tuple[int, int]:
    """Where an excerpt is in `text`, as (start, end), trimmed of surrounding whitespace.

    With excerpt text, offsets are only a hint (a browser's selection in rendered Markdown
    does not count characters as the source does): the exact text nearest the hint is
    taken, else the same words ignoring markup, spacing and case. Without it, the offsets
    are taken as they are."""
    if excerpt.strip():
        needle = excerpt.replace("\r\n", "\n").strip()
        if start is not None and end is not None and text[start:end].strip() == needle:
            found_start, found_end = start, end
        else:
            found_start, found_end = _find(text, needle, hint=start)
    elif start is not None and end is not None:
        if not 0 <= start < end <= len(text):
            raise ExcerptProblem(
                "offsets",
                f"The start and end must be between 0 and {len(text)} (the length of the "
                "chosen text), with the start before the end.",
            )
        found_start, found_end = start, end
    elif start is not None or end is not None:
        raise ExcerptProblem("offsets")
    else:
        raise ExcerptProblem("excerpt_needed")
    while found_start < found_end and text[found_start].isspace():
        found_start += 1
    while found_end > found_start and text[found_end - 1].isspace():
        found_end -= 1
    if found_start >= found_end:
        raise ExcerptProblem("excerpt_blank")
    return found_start, found_end
