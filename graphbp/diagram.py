"""Diagram files: a network drawn into .dot, .gv, .svg, .png, .pdf or an interactive .html page.

Without Graphviz's ``dot`` the drawing's DOT source is written beside the file asked for.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from graphbp.errors import GraphFileError, GraphvizError, InputError, show
from graphbp.graph import Network
from graphbp.io import write_atomic, write_file
from graphbp.page import page
from graphbp.render import INSTALL_DOT, render, run_dot

FORMATS = (".dot", ".gv", ".svg", ".png", ".pdf", ".html")


def diagram_format(path: Path, top: Any = None) -> str:
    """The format ``path``'s extension picks (lower case, with its dot), checked before any
    drawing (or the values ``top`` ranks paths at) is computed.

    Raises:
        GraphFileError: the extension is not one of ``FORMATS``.
        InputError: ``top`` is given for an .html page.
    """
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GraphFileError(
            f"{path}: cannot tell the format from {suffix or 'no extension'!r}; use one of "
            f"{' '.join(FORMATS)}"
        )
    if suffix == ".html" and top is not None:
        raise InputError(
            f"{path}: top={show(top)} highlights the strongest paths in a drawing "
            "(.svg .png .pdf .dot); the .html page highlights every path of the parameter "
            "clicked: drop top, or write another format"
        )
    return suffix


def write_diagram(
    net: Network,
    path: str | Path,
    wrt: Hashable | None = None,
    **options: Any,
) -> Path:
    """Draw ``net`` (see ``render``) into ``path``; the extension picks the format.

    .dot/.gv is Graphviz source (naming its layout engine when it is not dot, so that
    ``dot -Tsvg file.dot`` lays it out as graphbp does); .svg, .png and .pdf run Graphviz with
    the drawing's engine (``dot`` or ``sfdp``); .html is one self-contained page with the SVG
    inline where clicking a parameter highlights its paths.
    The file is written atomically.

    Raises:
        GraphvizError: ``dot`` is missing or failed; the drawing's source is written first to
            ``path`` with the suffix .dot.
        GraphFileError: the extension is not one of .dot .gv .svg .png .pdf .html, or a file
            cannot be written.
        InputError: ``top`` is given for an .html page.
    """
    path = Path(path)
    suffix = diagram_format(path, options.get("top"))
    try:
        if suffix == ".html":
            content = page(net, wrt, **options).encode()
        else:
            drawing = render(net, wrt, **options)
            source = drawing.source
            content = (
                source.encode()
                if suffix in (".dot", ".gv")
                else run_dot(source, suffix[1:], drawing.engine)
            )
    except GraphvizError as exc:
        reason = str(exc).removesuffix(f"; {INSTALL_DOT}")  # the fix goes last, as ever
        fix = f"; {INSTALL_DOT}" if reason != str(exc) else ""
        raise GraphvizError(
            f"cannot write {path}: {reason}; {_fallback(path, exc.source)}{fix}", exc.source
        ) from None
    write_file(path, content)
    return path


def _fallback(path: Path, source: str) -> str:
    """Write the drawing's DOT source beside ``path`` and say where: ``name.dot``, or
    ``name.svg.dot`` where a ``name.dot`` is there already; never over an existing file (it
    may be the user's own)."""
    candidates = (path.with_suffix(".dot"), path.with_name(path.name + ".dot"))
    free = [p for p in candidates if not os.path.lexists(p)]
    if not free:
        return f"its DOT source was not written: {' and '.join(map(str, candidates))} exist"
    fallback = free[0]
    try:
        write_atomic(fallback, source.encode())
    except OSError as exc:
        return f"its DOT source could not be written to {fallback} either ({exc.strerror})"
    return f"the graph's source is in {fallback}"
