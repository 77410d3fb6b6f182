"""Minibatch training: W ← W − η·∇W L (or momentum, Adam), with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from graphbp.errors import InputError
from graphbp.op import Array
from graphbp.optim import Optimizer, make_optimizer
from graphbp.program import Program


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
        The trained parameters and, per epoch, the mean of its minibatch losses.
    """
    import numpy as np
    from tqdm.auto import tqdm

    opt = make_optimizer(optimizer, lr) if isinstance(optimizer, str) else optimizer
    if epochs < 0 or batch_size < 1:
        raise InputError(f"need epochs >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    names = prog.network.params
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"params has no value for parameter(s) {missing}; start from prog.init()")
    with prog.backend.precision(prog.dtype):  # JAX: the optimizer state in float64 too
        arrays, rows = _columns(prog, data)
        current = prog.own({i: params[n] for i, n in enumerate(names)})
        step = prog.train_step(opt)
        state = opt.init(current)
        rng = np.random.default_rng(seed)
        history: list[float] = []
        bar = tqdm(
            range(epochs),
            desc="train",
            unit="epoch",
            file=sys.stderr,
            leave=False,
            disable=progress is False,
            delay=0 if progress else 1.0,
        )
        for epoch in bar:
            order = rng.permutation(rows)
            losses = []
            for start in range(0, rows, batch_size):
                current, state, loss = step(
                    current, state, arrays, order[start : start + batch_size]
                )
                losses.append(loss)  # kept as arrays: no wait for the device inside an epoch
            history.append(sum(float(v) for v in losses) / max(len(losses), 1))
            bar.set_postfix(loss=f"{history[-1]:.4g}", refresh=False)
            if callback is not None:
                callback(epoch, history[-1], _by_name(names, current))
        bar.close()
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
    return [arrays[n] for n in needed], next(iter(rows.values()))
