"""The README's folded drawing of an imported 12-block model is what graphbp draws now."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import graphbp as gb
from graphbp.outline import Outline

README = Path(__file__).resolve().parent.parent / "README.md"
FIGURE = README.parent / "docs/blocks12.svg"


def _drawing(path: Path) -> list[tuple[str, str, str]]:
    """Each element's tag, id and text, and every stroke colour: the SVG without coordinates."""
    root = ET.parse(path).getroot()
    return [(e.tag, e.get("id", ""), (e.text or "") + e.get("stroke", "")) for e in root.iter()]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_readme_folded_drawing_is_what_graphbp_draws_now(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    text = README.read_text()
    block = re.search(r"```python\n(from graphbp import jax_examples\n.*?)```", text, re.S)
    assert block is not None and "](docs/blocks12.svg)" in text
    ns: dict[str, Any] = {"gb": gb}
    code = block[1].replace('"blocks12.svg"', repr(str(tmp_path / "blocks12.svg")))
    exec(compile(code, str(README), "exec"), ns)
    big = ns["big"]
    assert len(big.order) == 1023  # as the comment says
    (fold,) = [g for g in Outline(big).groups.values() if g.kind == "fold"]
    assert fold.repeats == 12 and len(fold.members) == 12 * 81
    now = tmp_path / "blocks12.svg"
    svg = now.read_text()
    assert f'id="{fold.id}"' in svg and "× 12 (81 nodes each)" in svg
    assert _drawing(FIGURE) == _drawing(now), f"the drawing now is {now}: copy it to {FIGURE}"
