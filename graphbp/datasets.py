"""Tabular data: the embedded examples and user CSV files, split and standardised."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from graphbp.errors import GraphFileError

EXAMPLES = {
    "diabetes": ("diabetes.csv", "target", "regression"),
    "digits": ("digits.csv", "label", "classification"),
}
"""Embedded data sets (graphbp/data/, provenance in its README.md): file, target, task."""


@dataclass(frozen=True)
class Dataset:
    """Features (rows × columns) and a 2-D target, with their column names."""

    name: str
    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    feature_names: list[str]
    target_name: str


@dataclass(frozen=True)
class Split:
    """A seeded train/test split, standardised with statistics of the training rows only."""

    x_train: np.ndarray[Any, Any]
    y_train: np.ndarray[Any, Any]
    x_test: np.ndarray[Any, Any]
    y_test: np.ndarray[Any, Any]


def load_example(name: str = "diabetes") -> Dataset:
    """Load an embedded data set by name (its task is ``EXAMPLES[name][2]``)."""
    if name not in EXAMPLES:
        raise GraphFileError(f"no embedded example {name!r}; choose one of {', '.join(EXAMPLES)}")
    file, target, _ = EXAMPLES[name]
    with resources.as_file(resources.files("graphbp") / "data" / file) as path:
        return load_csv(path, target, name=name)


def load_csv(path: str | Path, target: str = "target", name: str | None = None) -> Dataset:
    """Read a numeric CSV with a header row; ``target`` is predicted from the other columns.

    Raises:
        GraphFileError: naming the file (and line) of a missing file, a missing target column,
            a ragged row or a non-numeric cell.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise GraphFileError(f"{path}: cannot read CSV ({reason})") from exc
    if len(rows) < 2:
        raise GraphFileError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise GraphFileError(
            f"{path}: no target column {target!r}; the columns are {', '.join(header)} "
            "(choose one with --target)"
        )
    values = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise GraphFileError(
                f"{path}:{line}: {len(row)} cells but the header has {len(header)} columns"
            )
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise GraphFileError(
                    f"{path}:{line}: column {header[j]!r} has non-numeric cell {cell!r}"
                ) from None
    if not np.isfinite(values).all():
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise GraphFileError(f"{path}:{i + 2}: column {header[j]!r} is not finite")
    t = header.index(target)
    features = [h for k, h in enumerate(header) if k != t]
    if not features:
        raise GraphFileError(f"{path}: no feature columns besides the target {target!r}")
    return Dataset(
        name or path.stem, np.delete(values, t, axis=1), values[:, t : t + 1], features, target
    )


def split(
    data: Dataset, test_fraction: float = 0.2, seed: int = 0, classes: int | None = None
) -> Split:
    """Shuffle with ``seed``, hold out ``test_fraction`` of rows, standardise x and y.

    Means and standard deviations come from the training rows only, so nothing about the
    test rows leaks into training. With ``classes``, y holds labels 0..classes−1 and becomes
    one-hot rows instead of being standardised.
    """
    n = len(data.x)
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction)) if n > 1 else 0
    test, train = order[:n_test], order[n_test:]

    def standardise(a: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        mean, std = a[train].mean(axis=0), a[train].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return (a[train] - mean) / std, (a[test] - mean) / std

    x_train, x_test = standardise(data.x)
    if classes is None:
        y_train, y_test = standardise(data.y)
    else:
        y_train, y_test = one_hot(data.y[train], classes), one_hot(data.y[test], classes)
    return Split(x_train, y_train, x_test, y_test)


def one_hot(labels: np.ndarray[Any, Any], classes: int) -> np.ndarray[Any, Any]:
    """Rows of 0/1 with a 1 in each label's column (labels: integers 0..classes−1)."""
    flat = labels.reshape(-1)
    if not np.all((flat == np.round(flat)) & (flat >= 0) & (flat < classes)):
        raise GraphFileError(f"class labels must be integers 0..{classes - 1}")
    rows: np.ndarray[Any, Any] = np.eye(classes)[flat.astype(int)]
    return rows


def accuracy(one_hot_labels: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> float:
    """The fraction of rows whose highest score is in the labelled class."""
    return float(np.mean(np.argmax(scores, axis=1) == np.argmax(one_hot_labels, axis=1)))


def r2_score(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    """Coefficient of determination, 1 − SS_res / SS_tot (SS_tot about y's own mean)."""
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean(axis=0)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def least_squares(s: Split) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Linear least squares with an intercept, fitted on the training rows.

    Returns:
        Predictions for the training rows and for the test rows.
    """

    def design(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.hstack([x, np.ones((len(x), 1))])

    coef, *_ = np.linalg.lstsq(design(s.x_train), s.y_train, rcond=None)
    return design(s.x_train) @ coef, design(s.x_test) @ coef
