"""The loss curve of a training run, drawn with matplotlib (PNG and SVG bytes).

Uses ``matplotlib.figure.Figure`` with the Agg and SVG canvases directly, never pyplot: no
GUI backend, safe in notebooks. The same losses draw the same bytes: the SVG's element ids
are salted with a constant (``svg.hashsalt``, set only while drawing) and neither file
records a date.
"""

from __future__ import annotations

import io
from collections.abc import Sequence


def loss_curve(train: Sequence[float], test: Sequence[float], unit: str) -> dict[str, bytes]:
    """The train and test loss per epoch, as ``{"loss.png": ..., "loss.svg": ...}``.

    Args:
        train: the training rows' loss after each epoch (epoch 1 first).
        test: the held-out rows' loss after each epoch.
        unit: what the loss is, for the y axis (e.g. "mean squared error per row ...").
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.add_subplot()
    epochs = range(1, len(train) + 1)
    marker = "o" if len(train) <= MARKED_EPOCHS else None  # one epoch: a point, not a line
    axes.plot(epochs, train, label="train", marker=marker)
    axes.plot(epochs, test, label="test (held out)", marker=marker)
    positive = all(v > 0 for v in (*train, *test))
    if positive and len(train) > 1 and max(*train, *test) > 10 * min(*train, *test):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(unit, fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend()
    out = {}
    for name, canvas in (("loss.png", FigureCanvasAgg), ("loss.svg", FigureCanvasSVG)):
        buffer = io.BytesIO()
        with rc_context({"svg.hashsalt": "graphbp"}):
            canvas(figure).print_figure(buffer, format=name[-3:], dpi=100, metadata=_metadata(name))
        out[name] = buffer.getvalue()
    return out


MARKED_EPOCHS = 30
"""Up to this many epochs, each epoch's loss is also drawn as a dot."""


def _metadata(name: str) -> dict[str, str | None]:
    """No creation date (the same run draws the same bytes) and graphbp as the creator."""
    if name.endswith(".svg"):
        return {"Date": None, "Creator": "graphbp"}
    return {"Software": "graphbp"}
