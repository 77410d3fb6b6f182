"""Minibatch training: W ← W − η·∇W L (or momentum, Adam), with a progress bar.

Training stops at the first NaN or infinite loss or parameter with a ``NonFiniteError`` that
names the epoch, the batch and the first node that went non-finite. Finding it costs nothing
while training goes well: the fast step only has its loss (NumPy: every step) and the
parameters (every epoch) tested; when one is not finite, the epoch is replayed from a copy of
its start with a program compiled with ``check_finite``, which tests every node's value and
gradient, up to the failing step.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NoReturn

from graphbp.errors import InputError, NonFiniteError
from graphbp.op import Array
from graphbp.optim import Optimizer, make_optimizer
from graphbp.program import Program, TrainStep


def train(
    prog: Program,
    params: Mapping[Any, Array],
    data: Mapping[Any, Any],
    *,
    lr: float = 0.01,
    epochs: int = 100,
    batch_size: int = 32,
    optimizer: str | Optimizer = "sgd",
    seed: int = 0,
    progress: bool | None = None,
    callback: Callable[[int, float, dict[Any, Array]], None] | None = None,
) -> tuple[dict[Any, Array], list[float]]:
    """Train ``params`` by minibatch gradient descent on ``data``.

    Args:
        prog: the compiled network.
        params: initial parameters (not modified).
        data: one array per input node, all with the same number of rows (axis 0).
        lr: the learning rate η.
        epochs: passes over the data.
        batch_size: rows per step; each epoch visits the rows in a fresh seeded order.
        optimizer: ``"sgd"``, ``"momentum"``, ``"adam"`` or an optimizer object.
        seed: seeds the shuffling.
        progress: show a tqdm bar (None: only if the run lasts more than a second).
        callback: called after each epoch with (epoch, mean loss, params).

    Returns:
        The trained parameters and, per epoch, the mean of its minibatch losses (all finite).

    Raises:
        NonFiniteError: a training array or an initial parameter holds NaN or Inf, or
            training diverged: the message names the epoch, the batch, the first node whose
            value or gradient (or the parameter whose update) was not finite, and the
            learning rate to lower.
        InputError: a parameter or a training array is missing or does not fit.
    """
    import numpy as np

    from graphbp.progress import progress_bar

    opt = make_optimizer(optimizer, lr) if isinstance(optimizer, str) else optimizer
    if epochs < 0 or batch_size < 1:
        raise InputError(f"need epochs >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    names = prog.network.params
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"params has no value for parameter(s) {missing}; start from prog.init()")
    # NaN and overflow are detected below and reported as one NonFiniteError, not as warnings.
    with prog.backend.precision(prog.dtype), np.errstate(all="ignore"):
        arrays, rows = _columns(prog, data)
        current = prog.own({i: params[n] for i, n in enumerate(names)})
        if bad := _first_non_finite(prog, names, current):
            raise NonFiniteError(
                f"parameter {bad!r} holds NaN or Inf before training; give it finite values "
                "(its init in the graph, or the params passed to train)"
            )
        step = prog.train_step(opt)
        state = opt.init(current)
        rng = np.random.default_rng(seed)
        history: list[float] = []
        every_step = prog.backend.mutable  # its loss is on the host: testing it is free
        bar = progress_bar(
            range(epochs),
            desc="train",
            unit="epoch",
            file=sys.stderr,
            leave=False,
            disable=progress is False,
            delay=0 if progress else 1.0,
        )
        try:
            for epoch in bar:
                order = rng.permutation(rows)
                batches = [order[s : s + batch_size] for s in range(0, rows, batch_size)]
                start = _copy(prog, current), _copy(prog, state)  # to replay a divergence
                losses = []
                for batch, picked in enumerate(batches):
                    try:
                        current, state, loss = step(current, state, arrays, picked)
                    except NonFiniteError as exc:  # prog.check_finite: it names the node
                        where = _where(epoch, epochs, batch, len(batches))
                        raise NonFiniteError(f"{where}: {exc}{_lr_hint(opt)}") from None
                    losses.append(loss)  # kept as arrays: no wait for the device in an epoch
                    if every_step and not math.isfinite(float(loss)):
                        _diverged(prog, opt, start, arrays, batches, batch, (epoch, epochs))
                values = [float(v) for v in losses]
                if not all(map(math.isfinite, values)) or _first_non_finite(prog, names, current):
                    _diverged(prog, opt, start, arrays, batches, len(batches) - 1, (epoch, epochs))
                history.append(sum(values) / max(len(values), 1))
                bar.set_postfix(loss=f"{history[-1]:.4g}", refresh=False)
                if callback is not None:
                    callback(epoch, history[-1], _by_name(names, current))
        finally:
            bar.close()  # before any message: the error starts a clean line
        return _by_name(names, current), history


def _by_name(names: list[Hashable], values: Mapping[int, Array]) -> dict[Any, Array]:
    return {n: values[i] for i, n in enumerate(names)}


def _columns(prog: Program, data: Mapping[Any, Any]) -> tuple[list[Array], int]:
    """The arrays of the inputs the loss needs, in the order of the program's training step
    and where it computes, and their row count."""
    needed = [n for n, _ in prog.plan(with_grad=True).inputs]
    missing = [n for n in needed if n not in data]
    if missing:
        raise InputError(f"training data has no array for input(s) {missing}; it has {list(data)}")
    arrays = prog.own({n: data[n] for n in needed})
    rows = {n: (a.shape[0] if a.ndim else 0) for n, a in arrays.items()}
    if len(set(rows.values())) != 1 or 0 in rows.values():
        raise InputError(f"training arrays need the same, non-zero number of rows; got {rows}")
    for n, a in arrays.items():
        if not bool(prog.xp.all(prog.xp.isfinite(a))):
            import numpy as np

            row = int(np.argwhere(~np.isfinite(prog.backend.to_numpy(a)))[0][0])
            raise NonFiniteError(
                f"training input {n!r} holds NaN or Inf (first in row {row}); drop or fill "
                "those rows before training"
            )
    return [arrays[n] for n in needed], next(iter(rows.values()))


def _first_non_finite(
    prog: Program, names: Sequence[Hashable], values: Mapping[int, Array]
) -> Hashable | None:
    """The first parameter (in network order) holding NaN or Inf, or None."""
    xp = prog.xp
    for i, name in enumerate(names):
        if not bool(xp.all(xp.isfinite(values[i]))):
            return name
    return None


def _copy(prog: Program, tree: Any) -> Any:
    """A copy of the arrays in ``tree`` (dicts, tuples, lists of arrays and numbers): the
    step updates NumPy arrays in place and JAX's jitted step reuses (donates) their buffers."""
    if isinstance(tree, dict):
        return {k: _copy(prog, v) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(_copy(prog, v) for v in tree)
    if hasattr(tree, "shape"):
        return prog.xp.array(tree, copy=True)
    return tree


def _where(epoch: int, epochs: int, batch: int, batches: int) -> str:
    return f"training diverged in epoch {epoch + 1} of {epochs}, batch {batch + 1} of {batches}"


def _lr_hint(opt: Optimizer) -> str:
    """What to try: a learning rate a tenth of this one."""
    lr = opt.lr
    if not math.isfinite(lr):
        return f" (learning rate {lr}: use a finite one, e.g. 0.01)"
    return f" (learning rate {lr:g}: try a smaller one, e.g. {lr / 10:g})"


def _diverged(
    prog: Program,
    opt: Optimizer,
    start: tuple[dict[int, Array], Any],
    arrays: Sequence[Array],
    batches: Sequence[Any],
    last: int,
    epoch: tuple[int, int],
) -> NoReturn:
    """Replay an epoch's ``batches`` up to number ``last`` from ``start`` (its parameters and
    optimizer state) with every node's value and gradient and every updated parameter tested,
    and raise the NonFiniteError that names the first step and node that were not finite.

    Args:
        epoch: the epoch's index and the number of epochs.
    """
    checker = prog
    if not prog.check_finite:
        checker = Program(prog.network, prog.backend, prog.dtype, check_finite=True)
        checker.layout = prog.layout  # the arrays stay where the training put them
    step: TrainStep = checker.train_step(opt)
    names = prog.network.params
    current, state = _copy(prog, start)
    for batch, picked in enumerate(batches[: last + 1]):
        where = _where(*epoch, batch, len(batches))
        try:
            current, state, loss = step(current, state, arrays, picked)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{where}: {exc}{_lr_hint(opt)}") from None
        if bad := _first_non_finite(prog, names, current):
            raise NonFiniteError(
                f"{where}: the update made parameter {bad!r} NaN or Inf from a finite "
                f"gradient; the step was too large{_lr_hint(opt)}"
            )
        if not math.isfinite(float(loss)):  # the loss node's value is checked: not reached
            break
    raise NonFiniteError(
        f"{_where(*epoch, last, len(batches))}: the loss or a parameter is NaN or "
        f"Inf (replaying the epoch node by node did not reproduce it){_lr_hint(opt)}"
    )
