"""Text for a terminal: columns as wide as a terminal shows them (wide characters, marks)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from graphbp.errors import visible

MAX_CELL = 60
"""Table cells wider than this many columns are cut, with an ellipsis (labels
and local-derivative texts are a plugin's: any length)."""


def table(rows: Sequence[Sequence[str]], cell: int = MAX_CELL) -> str:
    """``rows`` as columns two spaces apart, each as wide as its widest cell as a terminal
    shows it (:func:`display_width`); control characters in a cell are shown escaped, and
    a cell wider than ``cell`` columns is cut there, with an ellipsis."""
    cells = [[cut(visible(str(text)), cell) for text in row] for row in rows]
    widths = [max(display_width(row[k]) for row in cells) for k in range(len(cells[0]))]
    lines = []
    for row in cells:
        padded = [
            cell + " " * (w - display_width(cell)) for cell, w in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def display_width(text: str) -> int:
    """The columns a terminal gives ``text``: two for a wide East Asian character (and for
    a character that U+FE0F asks to be drawn as an emoji); none for a mark drawn on the
    character before it (the hat of ŷ written as y and U+0302, Thai vowel and tone marks:
    categories Mn and Me), a format character (Cf: zero-width space and joiner, U+FE0F) or a
    Hangul vowel or final consonant jamo, which joins the syllable before it; one for
    anything else."""
    width, last = 0, 0
    for c in text:
        w = _char_width(c)
        if c == "\ufe0f" and last == 1:  # emoji presentation: ❤ is 1 column, ❤️ 2
            w = 1
        width += w
        last = w if w else last
    return width


def _char_width(c: str) -> int:
    if unicodedata.category(c) in ("Mn", "Me", "Cf") or "\u1160" <= c <= "\u11ff":
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def cut(text: str, columns: int) -> str:
    """``text`` if it takes at most ``columns`` terminal columns, else its start and ``…``
    in that many (the marks on its last character kept with it)."""
    if display_width(text) <= columns:
        return text
    used = 0
    for k, c in enumerate(text):
        used += _char_width(c)
        if used > columns - 1:
            return text[:k] + "…"
    return text  # not reached: the text is wider than ``columns``
