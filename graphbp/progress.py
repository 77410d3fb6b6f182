"""Progress bars: Jupyter's widget bar inside a notebook kernel that has ipywidgets, the plain
text bar everywhere else, and never tqdm's warning about a missing IProgress."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, Protocol


class ProgressBar(Protocol):
    """What graphbp uses of a tqdm bar (tqdm itself has no type hints)."""

    n: float
    """The steps done so far."""

    def update(self, n: float | None = 1) -> bool | None:
        """Move the bar ``n`` steps on."""

    def set_postfix(
        self,
        ordered_dict: Mapping[str, Any] | None = None,
        refresh: bool | None = True,
        **kwargs: Any,
    ) -> None:
        """Show ``key=value`` pairs after the bar."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Show ``s`` after the bar."""

    def close(self) -> None:
        """Clear (or leave) the bar and stop drawing it."""

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc_info: object) -> None: ...


def progress_bar(iterable: Any = None, **options: Any) -> ProgressBar:
    """A ``tqdm`` bar over ``iterable``, taking tqdm's options (``file``, ``delay``, ...).

    Inside a Jupyter kernel with ipywidgets installed it is ``tqdm.notebook``'s widget; in
    a terminal, a script, a Qt console, Spyder, or a kernel without ipywidgets it is the
    plain bar, written to ``file`` (stderr by default). Decided at each call, unlike
    ``tqdm.auto``, which decides once at import and warns where ipywidgets is missing.
    """
    if in_widget_kernel():
        from tqdm.notebook import tqdm as notebook_bar

        bar: ProgressBar = notebook_bar(iterable, **options)
        return bar
    from tqdm.std import tqdm as text_bar

    bar = text_bar(iterable, **options)
    return bar


def in_widget_kernel() -> bool:
    """Whether this process is a notebook kernel (``in_notebook_kernel``) whose front end
    can show tqdm's widget: ipywidgets is importable."""
    if not in_notebook_kernel():
        return False
    from tqdm.notebook import IProgress  # None when ipywidgets is missing (tqdm would warn)

    return IProgress is not None


def in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel behind a notebook (JupyterLab, Notebook,
    VS Code, Colab): an IPython kernel shell, not a Qt console or Spyder."""
    ipython, zmqshell = sys.modules.get("IPython"), sys.modules.get("ipykernel.zmqshell")
    if ipython is None or zmqshell is None:  # no kernel was ever started in this process
        return False
    shell = ipython.get_ipython()
    if not isinstance(shell, zmqshell.ZMQInteractiveShell):  # Colab's shell is a subclass
        return False
    kind = type(shell).__name__.lower()  # Qt console and Spyder run a kernel, show no widgets
    if "qt" in kind or "spyder" in kind:
        return False
    return not any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ)
