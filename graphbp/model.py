"""A trained network as a folder (what ``graphbp train`` writes), and ``load`` to use it again.

The folder holds:

- ``network.json``: the network (node-link JSON, as ``Network.to_json`` writes it);
- ``params.npz``: one ``NAME.npy`` member per parameter (no pickles);
- ``optimizer.npz``: the optimizer's state (members ``0``, ``1``, ...), for ``--resume``;
- ``model.json``: what the model means: feature and target columns, task and class labels,
  the standardisation statistics (of the training rows), where the data came from (embedded
  example, or CSV path, sha256 and row count), the split (seed, fraction held out, and the
  held-out rows' count and sha256: the rows are recomputed from the seed, never listed), the
  output node, the hyperparameters, backend and dtype, graphbp version;
- ``metrics.json``, ``history.csv`` (train and test loss per epoch), ``loss.png``/``loss.svg``.

Every file is read as hostile: bounded in size, JSON strict (no NaN, no duplicate keys) and
type-checked, arrays read without pickles from uncompressed members whose shapes and sizes are
checked against the network before they are allocated; a missing or malformed file is one
GraphFileError naming it.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from graphbp.errors import (
    GraphError,
    GraphFileError,
    InputError,
    article,
    exc_text,
    index_text,
    show,
)
from graphbp.io import read_json, read_regular_file
from graphbp.npz import NPZ_LIMIT as NPZ_LIMIT
from graphbp.npz import npz_bytes as npz_bytes
from graphbp.npz import read_npz
from graphbp.optim import OPTIMIZERS

if TYPE_CHECKING:
    from graphbp.datasets import Standardisation
    from graphbp.graph import Network
    from graphbp.program import Program

FORMAT = "graphbp-model"
VERSION = 1
"""model.json's ``format`` and ``version``; a reader refuses other values."""
MODEL_JSON_LIMIT = 16 * 2**20
"""The largest model.json read or written (its size is set by the column names; parsing
the most it may hold takes a fraction of a second)."""
MAX_ROWS = 2**28
"""The most rows model.json may say the data had (a CSV file graphbp reads has fewer)."""
TEXT_LIMIT = 256 * 2**20
"""The largest history.csv read."""
METRICS_LIMIT = 64 * 2**10
"""The largest metrics.json read (it holds a few dozen numbers: about 1 KB)."""
HISTORY_LINE = 80
"""The most bytes a line of history.csv takes (an epoch number and two float reprs)."""
CHUNK_ROWS = 8192
"""Rows predicted at a time (bounds the memory a large input needs)."""

LOSS_UNITS = {
    "regression": "mean squared error per row on the standardised target",
    "classification": "mean cross-entropy per row, in nats, of the softmax of the output",
}
"""The one loss unit of a task: the console table, history.csv, metrics.json and loss.png."""


def loss_per_row(task: str, pred: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float:
    """The loss in the task's unit (:data:`LOSS_UNITS`) of predictions ``pred`` for the
    standardised or one-hot target ``y``."""
    pred, y = np.asarray(pred, np.float64), np.asarray(y, np.float64)
    if task == "classification":
        shifted = pred - pred.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.sum(y * log_p) / len(y))
    return float(np.sum((pred - y) ** 2) / len(y))


# ---------------------------------------------------------------------------- the output


def prediction(net: Network, output: Hashable | None = None) -> Hashable:
    """The node that predicts the target, as graphbp train and :func:`load` use it:
    ``output`` (default: :attr:`Network.output`), an op node computed from the features
    ``x`` and not from the target ``y``, of ``y``'s shape where both are known.

    Raises:
        GraphError: naming the node and the fix (set ``graph["output"]``, or ``output=`` of
            ``Builder.network``).
    """
    import networkx as nx

    from graphbp.graph import LOSSES
    from graphbp.op import OP, shapes_agree

    fix = "set graph['output'] (b.network(loss, output=...)) to the node that predicts 'y'"
    loss = net.loss
    output = net.output if output is None else output
    if output is None:
        kind = net.op_name(loss)
        if net.kind[loss] != OP:
            raise GraphError(
                f"the loss {show(loss)} is {article(kind)} node, with no prediction to compare; "
                f"make the loss an op node whose first operand predicts 'y', or {fix}"
            )
        first = net.operands[loss][0] if net.operands[loss] else None
        why = (
            f"its first operand {show(first)} is {article(net.kind[first])} node, not a prediction"
            if kind in LOSSES and first is not None
            else f"its op {kind!r} is not one of {', '.join(LOSSES)}, whose first operand is "
            "the prediction"
        )
        raise GraphError(f"no output node: the loss {show(loss)} names none ({why}); {fix}")
    if output not in net.kind or net.kind[output] != OP:
        raise GraphError(f"the output {show(output)} is not an op node of the network; {fix}")
    what = f"the output node {show(output)} (op {net.op_name(output)!r})"
    before = nx.ancestors(net.graph, output)
    if "x" not in before:
        raise GraphError(
            f"{what} is not computed from the features 'x', so it predicts nothing; {fix}"
        )
    if "y" in before:
        raise GraphError(f"{what} is computed from the target 'y', so it cannot predict it; {fix}")
    have, want = net.shapes.get(output), net.shapes.get("y")
    if have is not None and want is not None and not shapes_agree(have, want):
        raise GraphError(
            f"{what} has shape {have} but the target 'y' has shape {want}; graphbp train "
            f"compares them, so fix its shape or {fix}"
        )
    return output


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Source:
    """Where training data came from: an embedded example, or a CSV file."""

    example: str | None
    csv: str | None
    sha256: str
    rows: int

    def as_json(self) -> dict[str, Any]:
        """The ``data`` entry of model.json."""
        return {"example": self.example, "csv": self.csv, "sha256": self.sha256, "rows": self.rows}


def history_csv(train: Sequence[float], test: Sequence[float]) -> bytes:
    """history.csv: ``epoch,train_loss,test_loss``, one row per epoch, floats exact."""
    rows = "".join(
        f"{i + 1},{a!r},{b!r}\n" for i, (a, b) in enumerate(zip(train, test, strict=True))
    )
    return ("epoch,train_loss,test_loss\n" + rows).encode()


def description(
    *,
    task: str,
    features: Sequence[str],
    target: str,
    classes: Sequence[int] | None,
    stats: Standardisation,
    source: Source,
    seed: int,
    test_fraction: float,
    test_rows: np.ndarray[Any, Any],
    output: Hashable,
    hyperparameters: Mapping[str, Any],
    backend: str,
    dtype: str,
    epochs: int,
) -> dict[str, Any]:
    """model.json's content (see :func:`read_description` for what each entry means)."""
    from importlib.metadata import version

    def floats(a: Any) -> list[float] | None:
        return None if a is None else [float(v) for v in np.asarray(a).reshape(-1)]

    return {
        "format": FORMAT,
        "version": VERSION,
        "graphbp_version": version("graphbp"),
        "task": task,
        "features": list(features),
        "target": target,
        "classes": None if classes is None else [int(c) for c in classes],
        "standardisation": {
            "x_mean": floats(stats.x_mean),
            "x_std": floats(stats.x_std),
            "y_mean": floats(stats.y_mean),
            "y_std": floats(stats.y_std),
        },
        "data": source.as_json(),
        "split": {
            "seed": seed,
            "test_fraction": test_fraction,
            "test_rows": len(test_rows),
            "test_rows_sha256": rows_digest(test_rows),
        },
        "output": output,
        "loss_unit": LOSS_UNITS[task],
        "epochs": epochs,
        "hyperparameters": dict(hyperparameters),
        "trained_with": {"backend": backend, "dtype": dtype},
    }


def rows_digest(rows: Any) -> str:
    """The sha256 of row indices as little-endian int64s: model.json's check that the
    held-out rows recomputed from the seed are those the model was tested on."""
    return hashlib.sha256(np.asarray(rows, dtype="<i8").tobytes()).hexdigest()


# ---------------------------------------------------------------------------- reading


def _json(path: Path, limit: int) -> Any:
    """A strict JSON file of the model folder, bounded (:func:`graphbp.io.read_json`)."""
    return read_json(path, what="model file", limit=limit, fix="train again")


class _Check:
    """Typed access to a JSON object, each failure a GraphFileError naming file and key."""

    def __init__(self, path: Path, data: Any, where: str = "") -> None:
        self.path, self.data, self.where = path, data, where
        if not isinstance(data, dict):
            self.fail(where or "the file", f"is {type(data).__name__}, not an object")

    def fail(self, key: str, problem: str) -> NoReturn:
        raise GraphFileError(f"{self.path}: {key} {problem}; train again to rewrite the model")

    def get(self, key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        name = f"{self.where}{key!r}"
        if key not in self.data:
            if optional:
                return None
            self.fail(name, "is missing")
        value = self.data[key]
        if value is None and optional:
            return None
        bad_bool = isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )
        if bad_bool or not isinstance(value, kind):
            self.fail(name, f"is {show(value, 30)}, not of the expected type")
        return value

    def floats(self, key: str, length: int) -> np.ndarray[Any, Any]:
        values = self.get(key, list)
        if len(values) != length or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            self.fail(f"{self.where}{key!r}", f"must be {length} finite number(s)")
        return np.array(values, dtype=np.float64)

    def statistics(self, mean: str, std: str, length: int) -> tuple[Any, Any]:
        """A mean and a standard deviation per column, checked to be usable."""
        from graphbp.datasets import STD_SPAN, unusable_columns

        m, s = self.floats(mean, length), self.floats(std, length)
        bad = unusable_columns(m, s)
        if bad.any():
            self.fail(
                f"{self.where}{mean!r}/{std!r}",
                f"are unusable in column {int(np.argmax(bad))} (a deviation must be a normal "
                f"positive float, and mean ± {STD_SPAN:g} deviations must be finite)",
            )
        return m, s

    def sub(self, key: str) -> _Check:
        return _Check(self.path, self.get(key, dict), f"{self.where}{key!r}.")


@dataclass(frozen=True)
class Description:
    """model.json, validated: what a model's columns, statistics and data mean."""

    task: str
    features: list[str]
    target: str
    classes: list[int] | None
    stats: Standardisation
    source: Source
    seed: int
    test_fraction: float
    test_rows_sha256: str
    output: Hashable
    hyperparameters: dict[str, Any]
    backend: str
    dtype: str
    epochs: int

    @cached_property
    def test_rows(self) -> list[int]:
        """The held-out rows' indices into the data (computed from the split's seed).

        Raises:
            GraphFileError: this NumPy shuffles differently from the one that trained the
                model (their sha256 is not the saved one).
        """
        from graphbp.datasets import held_out_rows

        rows = held_out_rows(self.source.rows, self.test_fraction, self.seed)[0]
        if rows_digest(rows) != self.test_rows_sha256:
            raise GraphFileError(
                "model.json: the held-out rows this NumPy computes from the split's seed are "
                "not those the model was tested on (their sha256 differs); train anew"
            )
        return [int(r) for r in rows]


def read_description(path: Path) -> Description:
    """Read and validate model.json.

    Raises:
        GraphFileError: naming the file and entry: missing, not strict JSON, another format
            or version, a wrong type, a non-finite or non-positive statistic, mismatched
            lengths, duplicate column names.
    """
    from graphbp.datasets import Standardisation

    c = _Check(path, _json(path, MODEL_JSON_LIMIT))
    if c.get("format", str) != FORMAT or c.get("version", int) != VERSION:
        c.fail("'format'/'version'", f"are not {FORMAT!r} version {VERSION}")
    task = c.get("task", str)
    if task not in LOSS_UNITS:
        c.fail("'task'", f"is {show(task)}; expected regression or classification")
    features = c.get("features", list)
    target = c.get("target", str)
    if not target:
        c.fail("'target'", "is empty; it names the column the model predicts")
    names = [*features, target]
    if (
        not features
        or not all(isinstance(f, str) and f for f in features)
        or len(set(names)) != len(names)
    ):
        c.fail("'features'", "must be distinct non-empty column names, the target not among them")
    classes = c.get("classes", list, optional=True)
    if task == "classification":
        if not classes or not all(
            isinstance(k, int) and not isinstance(k, bool) and -(2**63) <= k < 2**63
            for k in classes
        ):
            c.fail("'classes'", "must list the class labels (64-bit integers) of a classifier")
        if len(set(classes)) != len(classes):
            c.fail("'classes'", "has a label twice")
    elif classes is not None:
        c.fail("'classes'", "is given, but a regression has no classes (null)")
    s = c.sub("standardisation")
    n = len(features)
    regression = task == "regression"
    y_stats = s.statistics("y_mean", "y_std", 1) if regression else (None, None)
    stats = Standardisation(*s.statistics("x_mean", "x_std", n), *y_stats)
    d = c.sub("data")
    example, csv = d.get("example", str, optional=True), d.get("csv", str, optional=True)
    if (example is None) == (csv is None):
        c.fail("'data'", "must name either an embedded example or a CSV file")
    rows = d.get("rows", int)
    if not 3 <= rows <= MAX_ROWS:
        c.fail("'data'.'rows'", f"must be from 3 to {MAX_ROWS}")
    source = Source(example, csv, d.get("sha256", str), rows)
    sp = c.sub("split")
    seed = sp.get("seed", int)
    fraction = sp.get("test_fraction", float)
    if seed < 0 or seed >= 2**32 or not 0 < fraction < 1:
        c.fail("'split'", "has a seed or test_fraction out of range")
    held_out = sp.get("test_rows", int)
    if held_out != max(1, round(rows * fraction)):
        c.fail("'split'.'test_rows'", f"is not the count of rows {fraction} of {rows} holds out")
    rows_sha256 = sp.get("test_rows_sha256", str)
    output = c.get("output", (str, int))
    hyper = c.get("hyperparameters", dict)
    h = c.sub("hyperparameters")
    if h.get("optimizer", str) not in OPTIMIZERS:
        h.fail("'hyperparameters'.'optimizer'", f"is not one of {', '.join(OPTIMIZERS)}")
    if not 0 < h.get("lr", (int, float)) < math.inf:
        h.fail("'hyperparameters'.'lr'", "is not a positive number")
    if not 1 <= h.get("batch_size", int) < 2**63:
        h.fail("'hyperparameters'.'batch_size'", "is not a positive whole number")
    trained = c.sub("trained_with")
    epochs = c.get("epochs", int)
    if not 0 <= epochs < 2**63:
        c.fail("'epochs'", "is out of range")
    return Description(
        task,
        list(features),
        target,
        None if classes is None else list(classes),
        stats,
        source,
        seed,
        fraction,
        rows_sha256,
        output,
        hyper,
        trained.get("backend", str),
        trained.get("dtype", str),
        epochs,
    )


def read_history(path: Path, epochs: int) -> tuple[list[float], list[float]]:
    """history.csv's train and test loss for each of the ``epochs`` epochs model.json counts.

    Raises:
        GraphFileError: naming the file and line: missing, larger than so many epochs need,
            not the expected header or rows, or another number of epochs.
    """
    limit = min(TEXT_LIMIT, 64 + HISTORY_LINE * epochs)
    raw = read_regular_file(path, what="model file", limit=limit)
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise GraphFileError(f"{path}: not UTF-8 text; train again") from None
    if not lines or lines[0] != "epoch,train_loss,test_loss":
        raise GraphFileError(f"{path}:1: expected the header epoch,train_loss,test_loss")
    train: list[float] = []
    test: list[float] = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        try:
            values = [float(v) for v in cells[1:]]
            ok = len(cells) == 3 and int(cells[0]) == number - 1
        except ValueError:
            ok = False
        if not ok or not all(map(math.isfinite, values)):
            raise GraphFileError(f"{path}:{number}: expected epoch {number - 1} and two losses")
        train.append(values[0])
        test.append(values[1])
    if len(train) != epochs:
        raise GraphFileError(
            f"{path}: has {len(train)} epochs but model.json says {epochs}; the files do not "
            "belong together"
        )
    return train, test


def read_optimizer_state(
    folder: Path, optimizer: str, params: Mapping[Any, Any]
) -> list[np.ndarray[Any, Any]]:
    """optimizer.npz's arrays, in the order ``train_state`` takes them.

    Args:
        folder: the model folder.
        optimizer: the optimizer's name (its state's layout).
        params: the model's parameters, in network order (their shapes fix the state's).
    """
    from graphbp.optim import make_optimizer
    from graphbp.train import state_shapes

    shapes = state_shapes(make_optimizer(optimizer, 1.0), [np.shape(p) for p in params.values()])
    arrays = read_npz(folder / "optimizer.npz", {str(k): s for k, s in enumerate(shapes)})
    return [arrays[str(k)] for k in range(len(shapes))]


# ---------------------------------------------------------------------------- the model


def load(
    folder: str | Path, backend: str | None = None, dtype: npt.DTypeLike | None = None
) -> Model:
    """Load a model folder written by ``graphbp train``.

    Args:
        folder: the ``--out`` folder.
        backend: the backend to compile for (default: ``$GRAPHBP_BACKEND`` if set, else the
            one the model was trained with if it is installed, else numpy).
        dtype: ``"float64"`` or ``"float32"``, or a NumPy dtype or type of those (default:
            the one the model was trained with).

    Raises:
        GraphFileError: a file is missing or malformed, naming it.
        InputError: ``dtype`` is not float64 or float32.
    """
    from graphbp.graph import Network

    folder = Path(folder)
    if not folder.is_dir():
        problem = "is not a folder" if os.path.lexists(folder) else "no such folder"
        raise GraphFileError(f"{folder}: {problem}; give the --out folder of graphbp train")
    about = read_description(folder / "model.json")
    net = Network.from_json(folder / "network.json")
    where = folder / "model.json"
    try:
        prediction(net, about.output)
    except GraphError as exc:
        raise GraphFileError(
            f"{where}: output {show(about.output)} does not predict with network.json ({exc}); "
            "the files do not belong together"
        ) from None
    width = (net.shapes.get("x") or (None, None))[-1]
    if width != len(about.features):
        raise GraphFileError(
            f"{where}: lists {len(about.features)} feature(s) but network.json's input 'x' has "
            f"{width} column(s); the files do not belong together"
        )
    outputs = 1 if about.classes is None else len(about.classes)
    if (net.shapes.get(about.output) or (None, None))[-1] != outputs:
        raise GraphFileError(
            f"{where}: the output {show(about.output)} does not have {outputs} column(s) "
            f"({'one per class' if about.classes else 'the target'}); the files do not belong "
            "together"
        )
    shapes = {str(n): tuple(net.graph.nodes[n]["shape"]) for n in net.params}
    arrays = read_npz(folder / "params.npz", shapes)
    metrics = _json(folder / "metrics.json", METRICS_LIMIT)
    if not isinstance(metrics, dict):
        raise GraphFileError(f"{folder / 'metrics.json'}: is not a JSON object; train again")
    backend, dtype = backend_and_dtype(about, backend, dtype)
    prog = net.compile(backend, dtype)
    params = {n: prog.backend.asarray(arrays[str(n)], dtype) for n in net.params}
    return Model(folder, net, prog, params, about, metrics)


def backend_and_dtype(
    about: Description, backend: str | None, dtype: npt.DTypeLike | None
) -> tuple[str, str]:
    """The backend and dtype to compile a saved model for: those asked for, else
    ``$GRAPHBP_BACKEND`` and the saved ones (the saved backend only if it is installed)."""
    from graphbp.errors import BackendNotInstalledError
    from graphbp.registry import default_backend, get_backend

    backend = backend or default_backend()
    if backend is None:
        backend = about.backend
        try:
            get_backend(backend)
        except BackendNotInstalledError:  # trained elsewhere, e.g. with jax: numpy predicts too
            backend = "numpy"
    if dtype is None:
        dtype = about.dtype if about.dtype in ("float64", "float32") else "float64"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = ""
    if name not in ("float64", "float32"):
        raise InputError(f"dtype {show(dtype, 40)} is not float64 or float32; choose one of them")
    return backend, name


class Model:
    """A trained network with its columns and statistics: predicts from raw feature rows.

    Attributes:
        path: the folder it was loaded from.
        network: the :class:`Network`; ``program``: it compiled; ``params``: its parameters.
        features: the feature columns, in the order a 2-D input holds them.
        features, target, classes, task, stats, output: model.json's (properties).
        metrics: metrics.json; ``history``: ``{"train_loss": [...], "test_loss": [...]}``
            (history.csv, read when first asked for: predicting never reads it).
        description: model.json, validated (where the data came from, the split, ...).
    """

    def __init__(
        self,
        path: Path,
        network: Network,
        program: Program,
        params: dict[Any, Any],
        about: Description,
        metrics: dict[str, Any],
    ) -> None:
        self.path, self.network, self.program, self.params = path, network, program, params
        self.description = about
        self.metrics = metrics

    @property
    def features(self) -> list[str]:
        """The feature columns, in the order a 2-D input holds them."""
        return self.description.features

    @property
    def target(self) -> str:
        """The target column."""
        return self.description.target

    @property
    def classes(self) -> list[int] | None:
        """A classifier's labels (None: a regression)."""
        return self.description.classes

    @property
    def task(self) -> str:
        """``"regression"`` or ``"classification"``."""
        return self.description.task

    @property
    def stats(self) -> Standardisation:
        """The training rows' standardisation statistics."""
        return self.description.stats

    @property
    def output(self) -> Hashable:
        """The node that predicts the (standardised) target."""
        return self.description.output

    @cached_property
    def history(self) -> dict[str, list[float]]:
        """The train and test loss per epoch, from history.csv (read on first use).

        Raises:
            GraphFileError: history.csv is missing or malformed, naming it.
        """
        train, test = read_history(self.path / "history.csv", self.description.epochs)
        return {"train_loss": train, "test_loss": test}

    def __repr__(self) -> str:
        kind = f"classifier of {len(self.classes)} classes" if self.classes else "regression"
        return (
            f"<Model {self.task if not self.classes else kind}: {len(self.features)} features → "
            f"{show(self.target)}, {self.description.epochs} epochs, "
            f"{self.program.backend.name} {self.program.dtype}, from {str(self.path)!r}>"
        )

    def predict(self, rows: Any) -> np.ndarray[Any, Any]:
        """Predictions for raw (unstandardised) feature rows.

        Args:
            rows: a 2-D array (rows × features, in :attr:`features` order) of bools, integers
                or floats (a list of lists works too); a mapping of column name → 1-D values
                (any order; a pandas DataFrame or a NumPy structured array works too); or the
                path of a CSV file with a header (read as ``graphbp train`` reads one). A
                column of the target may be present and is ignored; any other missing or
                extra column is an error. A 1-D array is refused (as in scikit-learn): use
                ``x.reshape(1, -1)`` for one row or ``x.reshape(-1, 1)`` for one feature.

        Returns:
            Regression: a 1-D float64 array, one prediction per row in the target's units.
            Classification: a 1-D int64 array of class labels (the most probable class).

        Raises:
            InputError: a missing or extra column, a wrong shape; NaN, Inf or a masked value
                in the rows, or values that are not real numbers (complex, dates, text); rows
                so far from the training rows that the prediction is not finite.
            GraphFileError: the CSV file cannot be read (naming the file and line).
        """
        scores = self._scores(rows)
        if self.classes is not None:
            labels: np.ndarray[Any, Any] = np.asarray(self.classes, dtype=np.int64)
            picked: np.ndarray[Any, Any] = labels[np.argmax(scores, axis=1)]
            return picked
        with np.errstate(all="ignore"):  # read_description gives a regression y_mean, y_std
            values: np.ndarray[Any, Any] = (scores * self.stats.y_std + self.stats.y_mean)[:, 0]
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(
                f"row {row}: the prediction of {show(self.target)} overflows float64 in the "
                "target's units; the row lies far outside the rows the model was trained on"
            )
        return values

    def predict_proba(self, rows: Any) -> np.ndarray[Any, Any]:
        """A classifier's class probabilities (rows × classes, columns in :attr:`classes`
        order) for raw feature rows; ``rows`` as in :meth:`predict`.

        Raises:
            InputError: the model is a regression, or as :meth:`predict`.
        """
        if self.classes is None:
            raise InputError(
                f"predict_proba needs a classifier; this model predicts {show(self.target)} by "
                "regression: use predict"
            )
        scores = self._scores(rows)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba: np.ndarray[Any, Any] = e / e.sum(axis=1, keepdims=True)
        return proba

    def feature_rows(self, rows: Any) -> np.ndarray[Any, Any]:
        """``rows`` (as :meth:`predict` takes them) as a float64 array in column order."""
        if isinstance(rows, str | Path):
            return self.csv_rows(rows)[0]
        if hasattr(rows, "columns") and hasattr(rows, "__getitem__"):  # a pandas DataFrame
            rows = {c: rows[c] for c in rows.columns}
        elif isinstance(rows, np.ndarray) and rows.dtype.names:  # a structured array
            rows = {n: rows[n] for n in rows.dtype.names}
        if isinstance(rows, Mapping):
            return self.columns_to_rows(rows, "the mapping")
        x = _real(rows, "rows", self.features)
        if x.ndim != 2:
            one = (
                "; one row: x.reshape(1, -1), one feature: x.reshape(-1, 1)" if x.ndim == 1 else ""
            )
            raise InputError(
                f"rows must be 2-D (rows × {len(self.features)} features), got shape {x.shape}{one}"
            )
        if x.shape[1] != len(self.features):
            raise InputError(
                f"rows have {x.shape[1]} column(s) but the model takes {len(self.features)} "
                f"features ({_listed(self.features)}), in that order"
            )
        return _finite(x, self.features)

    def csv_rows(
        self, path: str | Path
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """A CSV file's feature rows (as :meth:`feature_rows` gives them) and its target
        column (NaN where a cell is empty), None if it has none.

        Raises:
            GraphFileError: the file cannot be read (naming the file and line).
            InputError: a feature column missing or extra, naming it.
        """
        from graphbp.datasets import load_csv

        data = load_csv(path, self.target, target_required=False)
        columns = dict(zip(data.feature_names, data.x.T, strict=True))
        return self.columns_to_rows(columns, str(path)), data.y[:, 0] if data.y.shape[1] else None

    def columns_to_rows(
        self, columns: Mapping[Any, Any], what: str = "the mapping"
    ) -> np.ndarray[Any, Any]:
        """Named 1-D columns (the target's may be among them) as a 2-D array of the
        feature columns in order; ``what`` names them in messages (e.g. the file)."""
        names = [str(k) for k in columns]
        if len(set(names)) != len(names):
            twice = next(n for i, n in enumerate(names) if n in names[:i])
            raise InputError(f"{what} names column {show(twice)} twice (keys are compared as text)")
        missing = [f for f in self.features if f not in names]
        extra = [n for n in names if n not in self.features and n != self.target]
        if missing:
            raise InputError(
                f"{what} has no column {show(missing[0])}; the model takes {_listed(self.features)}"
            )
        if extra:
            raise InputError(
                f"{what} has column {show(extra[0])}, which the model was not trained on; it takes "
                f"{_listed(self.features)} (and ignores the target {show(self.target)})"
            )
        by_name = {str(k): v for k, v in columns.items()}
        values = []
        for f in self.features:
            v = _real(by_name[f], f"column {show(f)}")
            if v.ndim != 1:
                raise InputError(
                    f"column {show(f)} must be 1-D (one value per row), got shape {v.shape}"
                )
            values.append(v)
        if len({len(v) for v in values}) != 1:
            lengths = {f: len(v) for f, v in zip(self.features, values, strict=True)}
            raise InputError(f"columns of {what} differ in length: {show(lengths, 120)}")
        return _finite(np.stack(values, axis=1), self.features)

    def _scores(self, rows: Any) -> np.ndarray[Any, Any]:
        """The output node's values (standardised target, or class scores) for raw rows."""
        raw = self.feature_rows(rows)
        with np.errstate(all="ignore"):
            x = (raw - self.stats.x_mean) / self.stats.x_std
        _finite(
            x,
            self.features,
            "is too far from the training rows' mean to be standardised",
            "check its units",
        )
        prog, out = self.program, self.output
        chunks = [np.empty((0, 1 if self.classes is None else len(self.classes)))]
        with np.errstate(all="ignore"):
            for start in range(0, len(x), CHUNK_ROWS):
                part = prog.forward(self.params, {"x": x[start : start + CHUNK_ROWS]}, [out])
                chunks.append(np.asarray(prog.backend.to_numpy(part[out]), dtype=np.float64))
        scores: np.ndarray[Any, Any] = np.concatenate(chunks)
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            far = int(np.argmax(np.abs(x[row])))
            raise InputError(
                f"row {row}: the network's output {show(self.output)} is NaN or Inf; the row lies "
                f"far outside the rows the model was trained on (column {show(self.features[far])}"
                f" is {x[row, far]:.3g} standard deviations from their mean)"
            )
        return scores


_KINDS = {
    "c": "complex numbers",
    "M": "dates (datetime64)",
    "m": "durations (timedelta64)",
    "U": "text",
    "S": "bytes",
    "V": "raw records",
}


def _real(value: Any, what: str, names: Sequence[str] | None = None) -> np.ndarray[Any, Any]:
    """``value`` as a float64 array, if it holds real numbers (bools, integers, floats, or
    objects that are real numbers) within float64's range; complex numbers, dates, text or
    masked values are refused rather than converted (a conversion would drop an imaginary
    part or a mask, or parse). ``names``: the columns of a 2-D ``value``, for messages."""
    if np.ma.isMaskedArray(value):
        mask = np.ma.getmaskarray(value)
        if mask.any():
            at = index_text(np.argwhere(mask)[0]) or "()"  # () indexes a 0-d array
            raise InputError(f"{what}: a masked value at {at}; fill it (np.ma.filled) or drop it")
        value = np.ma.getdata(value)
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} cannot be read as an array ({exc_text(exc)})") from None
    if a.dtype.kind == "O":
        for v in a.flat:
            if not isinstance(v, numbers.Real | np.bool_):
                raise InputError(
                    f"{what}: {show(v, 30)} ({article(type(v).__name__)}) is not a real number; "
                    "fill in missing values and convert the values to numbers"
                )
    elif a.dtype.kind not in "biuf":
        hint = ": pass x.real if the imaginary parts are 0" if a.dtype.kind == "c" else ""
        raise InputError(
            f"{what}: {_KINDS.get(a.dtype.kind, 'values')} (dtype {show(str(a.dtype), 40)}), "
            f"not real numbers (bool, integer or float){hint}"
        )
    with np.errstate(all="ignore"):
        try:
            out: np.ndarray[Any, Any] = a.astype(np.float64)
        except OverflowError:  # an int beyond float64's range, among objects
            out = np.array([_float_or_inf(v) for v in a.flat]).reshape(a.shape)
        beyond = np.isinf(out)
        if beyond.any() and a.dtype.kind in "fO":  # inf because it was too large for float64?
            beyond &= np.array([not _is_inf(v) for v in a.flat]).reshape(a.shape)
    if beyond.any():
        index = [int(i) for i in np.argwhere(beyond)[0]]
        where = f"{what}, row {index[0]}" if len(index) == 1 else f"{what} at {index_text(index)}"
        if names is not None and len(index) == 2:
            where = f"column {show(names[index[1]])}, row {index[0]}"
        raise InputError(
            f"{where}: {show(a[tuple(index)], 30)} is beyond float64's range (±1.8e308); rescale it"
        )
    return out


def _float_or_inf(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.inf


def _is_inf(v: Any) -> bool:
    """Whether ``v`` is itself infinite (not merely too large for float64)."""
    try:
        return bool(np.isinf(v))
    except (TypeError, OverflowError):
        return False


def _listed(names: Sequence[str], shown: int = 10) -> str:
    text = ", ".join(show(n) for n in names[:shown])
    return text if len(names) <= shown else f"{text}, … ({len(names)} columns)"


def _finite(
    x: np.ndarray[Any, Any],
    names: Sequence[str],
    problem: str = "holds NaN or Inf",
    fix: str = "fill or drop it",
) -> np.ndarray[Any, Any]:
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"column {show(names[col])} {problem} (row {row}); {fix}")
    return x
