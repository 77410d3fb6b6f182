"""Progress bars: Jupyter's widget bar inside a notebook kernel that has ipywidgets, the plain
text bar everywhere else, and never tqdm's warning about a missing IProgress."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(iterable: Any = None, **options: Any) -> Any:
    """A ``tqdm`` bar over ``iterable``, taking tqdm's options (``file``, ``delay``, ...).

    Inside a Jupyter kernel with ipywidgets installed it is ``tqdm.notebook``'s widget; in
    a terminal, a script, a Qt console, Spyder, or a kernel without ipywidgets it is the
    plain bar, written to ``file`` (stderr by default). Decided at each call, unlike
    ``tqdm.auto``, which decides once at import and warns where ipywidgets is missing.
    """
    if in_widget_kernel():
        from tqdm.notebook import tqdm as notebook_bar

        return notebook_bar(iterable, **options)
    from tqdm.std import tqdm as text_bar

    return text_bar(iterable, **options)


def in_widget_kernel() -> bool:
    """Whether this process is a Jupyter kernel whose front end can show ipywidgets: an
    IPython kernel shell, not a Qt console or Spyder, with ipywidgets importable."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel.zmqshell" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    kind = type(shell).__name__.lower()
    if shell is None or "zmq" not in kind or "qt" in kind or "spyder" in kind:
        return False
    if any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ):
        return False  # Qt console and Spyder run a kernel but show no widgets
    from tqdm.notebook import IProgress  # None when ipywidgets is missing (tqdm would warn)

    return IProgress is not None
