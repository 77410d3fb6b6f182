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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from graphbp.errors import InputError, NonFiniteError
from graphbp.op import Array, Shape, shape_fits
from graphbp.optim import Optimizer, make_optimizer
from graphbp.program import Program, TrainStep

if TYPE_CHECKING:
    import numpy as np


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
    initial_epoch: int = 0,
) -> tuple[dict[Any, Array], list[float]]:
    """Train ``params`` by minibatch gradient descent on ``data``.

    Epoch ``e`` visits the rows in the order seeded by ``(seed, e)``, so a run continued
    with ``initial_epoch`` (and the optimizer state: see :func:`train_state`) repeats
    exactly what one longer run does.

    Across the processes of a ``jax.distributed`` run (``prog`` compiled over a mesh of every
    process's devices), every process calls it with the same arguments, the whole ``data``
    included: the data stays on the host, and each process copies to its devices only their
    rows of every batch; the history and parameters are the same in every process.

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
        callback: called after each epoch with (epoch, mean loss, params); epochs count
            from ``initial_epoch``.
        initial_epoch: the number of epochs already run (Keras' name): the first epoch run
            is this one, shuffled as it would have been in one long run.

    Returns:
        The trained parameters and, per epoch, the mean of its minibatch losses (all finite).

    Raises:
        NonFiniteError: a training array or an initial parameter holds NaN or Inf, or
            training diverged: the message names the epoch, the batch, the first node whose
            value or gradient (or the parameter whose update) was not finite, and the
            learning rate to lower.
        InputError: a parameter or a training array is missing or does not fit, or (across
            processes) a process was given other arguments than process 0.
    """
    done = train_state(
        prog,
        params,
        data,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        seed=seed,
        progress=progress,
        callback=callback,
        initial_epoch=initial_epoch,
    )
    return done.params, done.history


@dataclass(frozen=True)
class Trained:
    """What :func:`train_state` returns: parameters, loss history and optimizer state.

    ``state`` is the optimizer's state flattened to NumPy arrays (momentum's velocities,
    Adam's step count and moments; none for SGD), in the order ``train_state`` takes it.
    """

    params: dict[Any, Array]
    history: list[float]
    state: list[np.ndarray[Any, Any]]


def train_state(
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
    initial_epoch: int = 0,
    state: Sequence[Any] | None = None,
) -> Trained:
    """:func:`train`, starting from and returning the optimizer's state as well.

    Args:
        state: the ``state`` of an earlier :class:`Trained` (None: a fresh optimizer);
            the other arguments are :func:`train`'s.

    Raises:
        InputError: as :func:`train`, or ``state`` does not fit the optimizer and parameters.
    """
    import numpy as np

    from graphbp.progress import progress_bar

    spread = prog.backend.processes(prog.layout) > 1  # a jax.distributed run: feed batches
    if spread:  # first: a process given other arguments would stop alone, or train on a mix
        settings = optimizer if isinstance(optimizer, str) else _settings(optimizer)
        needed = [n for n, _ in prog.plan(with_grad=True).inputs]
        _check_same_everywhere(
            prog,
            {  # the options first: a dtype or backend given alike names itself, not the arrays
                "other options (backend, dtype, check_finite)": [
                    (prog.backend.name, prog.dtype, prog.check_finite)
                ],
                "other options (lr, epochs, batch_size, seed, initial_epoch, optimizer)": [
                    (lr, epochs, batch_size, seed, initial_epoch, settings)
                ],
                "another network": [_network_form(prog.network)],
                "other training data": [data.get(n, "<missing>") for n in needed],
                "other initial parameters": [
                    params.get(n, "<missing>") for n in prog.network.params
                ],
                "other optimizer state": list(state) if state is not None else ["<fresh>"],
            },
        )
    opt = make_optimizer(optimizer, lr) if isinstance(optimizer, str) else optimizer
    if epochs < 0 or batch_size < 1 or initial_epoch < 0:
        raise InputError(
            f"need epochs >= 0, batch_size >= 1 and initial_epoch >= 0, got {epochs}, "
            f"{batch_size} and {initial_epoch}"
        )
    names = prog.network.params
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"params has no value for parameter(s) {missing}; start from prog.init()")
    # NaN and overflow are detected below and reported as one NonFiniteError, not as warnings.
    with prog.backend.precision(prog.dtype), np.errstate(all="ignore"):
        arrays, rows = _columns(prog, data, batch_size, spread)
        current = prog.own({i: params[n] for i, n in enumerate(names)})
        if bad := _first_non_finite(prog, names, current):
            raise NonFiniteError(
                f"parameter {bad!r} holds NaN or Inf before training; give it finite values "
                "(its init in the graph, or the params passed to train)"
            )
        step = prog.train_step(opt)
        fresh = opt.init(current)
        opt_state = fresh if state is None else _restored(prog, fresh, state)
        history: list[float] = []
        every_step = prog.backend.mutable  # its loss is on the host: testing it is free
        bar = progress_bar(
            total=epochs,
            desc="train",
            unit="epoch",
            file=sys.stderr,
            leave=False,
            disable=progress is False,
            delay=0 if progress else 1.0,
        )
        try:
            last = initial_epoch + epochs
            for epoch in range(initial_epoch, last):
                order = np.random.default_rng([seed, epoch]).permutation(rows)
                batches = [order[s : s + batch_size] for s in range(0, rows, batch_size)]
                start = _copy(prog, current), _copy(prog, opt_state)  # to replay a divergence
                losses = []
                for batch, picked in enumerate(batches):
                    try:
                        fed = _feed(prog, arrays, picked, spread)
                        current, opt_state, loss = step(current, opt_state, *fed)
                    except NonFiniteError as exc:  # prog.check_finite: it names the node
                        where = _where(epoch, last, batch, len(batches))
                        raise NonFiniteError(f"{where}: {exc}{_lr_hint(opt)}") from None
                    losses.append(loss)  # kept as arrays: no wait for the device in an epoch
                    if every_step and not math.isfinite(float(loss)):
                        _diverged(prog, opt, start, arrays, batches, batch, (epoch, last))
                values = [float(v) for v in losses]
                if not all(map(math.isfinite, values)) or _first_non_finite(prog, names, current):
                    _diverged(prog, opt, start, arrays, batches, len(batches) - 1, (epoch, last))
                history.append(sum(values) / max(len(values), 1))
                bar.set_postfix(loss=f"{history[-1]:.4g}", refresh=False)
                bar.update(1)
                if callback is not None:
                    callback(epoch, history[-1], _by_name(names, current))
        finally:
            bar.close()  # before any message: the error starts a clean line
        saved = [prog.backend.to_numpy(v) for v in _leaves(opt_state)]
        return Trained(_by_name(names, current), history, saved)


def state_shapes(optimizer: Optimizer, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The shapes of the arrays of ``optimizer``'s state (as :class:`Trained` holds them)
    for parameters of ``shapes``, in network order."""
    import numpy as np

    template = optimizer.init({i: np.zeros(s) for i, s in enumerate(shapes)})
    return [np.shape(leaf) for leaf in _leaves(template)]


def _leaves(tree: Any) -> list[Any]:
    """The arrays and numbers of an optimizer state (dicts, tuples, lists), in order."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    if isinstance(tree, tuple | list):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def _restored(prog: Program, template: Any, leaves: Sequence[Any]) -> Any:
    """``template`` (a fresh optimizer state) with its leaves replaced by ``leaves``.

    Raises:
        InputError: the number of leaves or a leaf's shape differs from the template's.
    """
    import numpy as np

    want = _leaves(template)
    if len(leaves) != len(want):
        raise InputError(
            f"the optimizer state has {len(leaves)} array(s) but this optimizer and network "
            f"need {len(want)}; resume with the optimizer the state was saved with"
        )
    for k, (have, need) in enumerate(zip(leaves, want, strict=True)):
        if np.shape(have) != np.shape(need):
            raise InputError(
                f"optimizer state array {k} has shape {np.shape(have)}, but the parameters "
                f"need {np.shape(need)}; resume with the network the state was saved with"
            )
    it = iter(leaves)

    def build(tree: Any) -> Any:
        if isinstance(tree, dict):
            return {k: build(tree[k]) for k in sorted(tree)}
        if isinstance(tree, tuple | list):
            return type(tree)(build(v) for v in tree)
        value = next(it)
        if isinstance(tree, int):
            return int(value)
        return prog.own({0: value})[0]

    return build(template)


def _by_name(names: list[Hashable], values: Mapping[int, Array]) -> dict[Any, Array]:
    return {n: values[i] for i, n in enumerate(names)}


def _columns(
    prog: Program, data: Mapping[Any, Any], batch_size: int, host: bool = False
) -> tuple[list[Array], int]:
    """The arrays of the inputs the loss needs, in the order of the program's training step
    and where it computes (``host``: NumPy copies, fed batch by batch), and their row count,
    checked to fit the network in batches of ``batch_size`` rows."""
    import numpy as np

    needed = [n for n, _ in prog.plan(with_grad=True).inputs]
    missing = [n for n in needed if n not in data]
    if missing:
        raise InputError(f"training data has no array for input(s) {missing}; it has {list(data)}")
    if host:
        to_numpy = prog.backend.to_numpy
        arrays = {n: np.array(to_numpy(data[n]), dtype=prog.dtype) for n in needed}
    else:
        arrays = prog.own({n: data[n] for n in needed})
    count = _row_count({n: tuple(a.shape) for n, a in arrays.items()})
    for n, a in arrays.items():
        _check_rows(n, tuple(a.shape), prog.network.shapes[n], count, batch_size)
    xp = np if host else prog.xp
    for n, a in arrays.items():
        if not bool(xp.all(xp.isfinite(a))):
            row = int(np.argwhere(~np.isfinite(prog.backend.to_numpy(a)))[0][0])
            raise NonFiniteError(
                f"training input {n!r} holds NaN or Inf (first in row {row}); drop or fill "
                "those rows before training"
            )
    return [arrays[n] for n in needed], count


def _feed(prog: Program, arrays: Sequence[Array], picked: Any, spread: bool) -> tuple[Any, Any]:
    """The training step's ``(data, rows)`` for the batch ``picked``: the device-resident
    arrays and the rows to gather, or, across processes (``spread``), the batch itself, each
    process feeding its devices only their rows from its host copy of the data."""
    if not spread:
        return arrays, picked
    return prog.backend.feed(prog.layout, arrays, picked), None


def _settings(opt: Optimizer) -> tuple[str, list[tuple[str, Any]]]:
    """An optimizer's class and numeric or text settings (lr, momentum, ...)."""
    settings = getattr(opt, "__dict__", {})
    plain = [(k, v) for k, v in sorted(settings.items()) if isinstance(v, int | float | str)]
    return type(opt).__qualname__, plain


def _check_same_everywhere(prog: Program, parts: Mapping[str, Sequence[Any]]) -> None:
    """Refuse a run across processes whose processes were given different training arguments
    (each of ``parts``, compared by a SHA-256 gathered from every process): every process must
    see the same batches, parameters and steps, or the run would silently train on a mix.

    Raises:
        InputError: naming the first process and argument that differ from process 0's.
    """
    import hashlib

    import numpy as np

    digests = []
    for values in parts.values():
        digest = hashlib.sha256()
        for value in values:
            _digest(prog, digest, value)
        digests.append(np.frombuffer(digest.digest(), np.uint8))
    everyone = prog.backend.gather_hosts(np.stack(digests))
    for process, theirs in enumerate(everyone):
        for name, mine, first in zip(parts, theirs, everyone[0], strict=True):
            if not np.array_equal(mine, first):
                raise InputError(
                    f"process {process} of {len(everyone)} was given {name} than "
                    "process 0: every process of a jax.distributed run calls gb.train with the "
                    "same arguments (the same network, compiled alike; the whole training data, "
                    "which gb.train splits into each process's rows of every batch; the same "
                    "parameters, optimizer state, seed and options); load the same data with "
                    "the same seed in every process"
                )


def _network_form(network: Any) -> Any:
    """The network in a form :func:`_digest` hashes alike in every process that built it alike:
    its node-link data (nodes, their ops and attributes, edges) and its loss."""
    import networkx as nx

    return [network.loss, nx.node_link_data(network.graph, edges="edges")]


def _digest(prog: Program, digest: Any, value: Any) -> None:
    """Feed ``value`` to ``digest`` in a form that is the same in every process given the same
    value: numbers and text by their repr, mappings (in sorted key order), lists and tuples item
    by item, arrays by dtype, shape and bytes, functions by their module and name, any other
    object by its type (never an address, which differs between processes)."""
    import functools

    import numpy as np

    if value is None or isinstance(value, str | int | float | complex | bytes):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key, item in sorted(value.items(), key=lambda kv: repr(kv[0])):
            _digest(prog, digest, key)
            _digest(prog, digest, item)
        digest.update(b"}")
    elif isinstance(value, list | tuple) and not all(_is_number(v) for v in value):
        digest.update(b"(" if isinstance(value, tuple) else b"[")
        for item in value:
            _digest(prog, digest, item)
        digest.update(b")")
    elif isinstance(value, functools.partial):
        digest.update(b"partial")
        _digest(prog, digest, [value.func, list(value.args), dict(value.keywords)])
    elif callable(value) and hasattr(value, "__qualname__"):
        name = f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        digest.update(f"function:{name};".encode())
    else:
        try:
            a = np.ascontiguousarray(prog.backend.to_numpy(value))
        except (TypeError, ValueError):  # not an array: refused, alike, after the check
            digest.update(f"object:{type(value).__qualname__};".encode())
            return
        digest.update(f"array:{a.dtype.str}{a.shape};".encode())
        if a.dtype.kind != "O":  # objects' bytes are addresses, other in each process
            digest.update(a.tobytes())


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a plain number (a list of them is hashed as one array)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _row_count(shapes: Mapping[Hashable, tuple[int, ...]]) -> int:
    """The number of rows every training input has (its first axis, split into batches).

    Raises:
        InputError: naming an input that has no batch axis (a scalar), or fewer or more rows
            than the others (a matrix argument, not a batch of rows), with the fix; or no rows.
    """
    fix = (
        "gb.train splits every input into batches of rows along its first axis; if it is no "
        "batch (a temperature, a mask, a weight matrix), bind it as a constant before importing "
        "(gb.from_jax(functools.partial(fn, NAME=VALUE), ...); a const node in a hand-built "
        "network), or make it a parameter (argnums) if it should be learned"
    )
    for n, shape in shapes.items():
        if not shape:
            raise InputError(f"input {n!r} is a scalar, with no batch axis to split; {fix}")
    counts = [shape[0] for shape in shapes.values()]
    common = max(counts, key=lambda c: (counts.count(c), c))  # most inputs have it; the most
    for n, shape in shapes.items():
        if shape[0] != common:
            other = next(m for m, s in shapes.items() if s[0] == common)
            raise InputError(
                f"input {n!r} has {shape[0]:,} rows (shape {shape}) but input {other!r} has "
                f"{common:,}; if {n!r} is a batch of rows, give every input the same number; "
                f"{fix}"
            )
    if common == 0:
        raise InputError(f"the training inputs have no rows (shapes {dict(shapes)}); give data")
    return common


def batch_sizes(rows: int, batch_size: int) -> list[int]:
    """The sizes of an epoch's steps: ``batch_size`` rows each, the last one the rest."""
    sizes = [batch_size] * (rows // batch_size)
    return [*sizes, rows % batch_size] if rows % batch_size else sizes


def _check_rows(
    name: Hashable, shape: tuple[int, ...], declared: Shape | None, rows: int, batch_size: int
) -> None:
    """Whether training input ``name`` of ``shape`` fits its declared shape in every step.

    Raises:
        InputError: its rows have another shape than the network's, or the network takes a
            fixed number of rows per step (a network imported from JAX, traced at one batch
            size) that ``batch_size`` and the row count do not give in every step.
    """
    if declared is None or not declared:
        return
    if not shape_fits(shape[1:], declared[1:]):
        raise InputError(
            f"training input {name!r} has rows of shape {shape[1:]}, but the network's input "
            f"{name!r} has shape {declared}, rows of shape {declared[1:]}; reshape the data "
            "(None axes take any size)"
        )
    fixed = declared[0]
    sizes = set(batch_sizes(rows, batch_size))
    if fixed is None or sizes == {fixed}:
        return
    steps = " and ".join(f"{s:,}" for s in sorted(sizes, reverse=True))
    usable = rows - rows % fixed
    example = f"e.g. the first {usable:,}" if usable else f"the data has only {rows:,}"
    raise InputError(
        f"input {name!r} has shape {declared}: the network takes exactly {fixed:,} rows per "
        f"step (its first axis is fixed, e.g. because gb.from_jax traced it at batch size "
        f"{fixed:,}), but batch_size={batch_size:,} on {rows:,} rows gives steps of {steps} "
        f"rows; train with batch_size={fixed} on a number of rows divisible by {fixed} "
        f"({example})"
    )


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
    spread = prog.backend.processes(prog.layout) > 1
    current, state = _copy(prog, start)
    for batch, picked in enumerate(batches[: last + 1]):
        where = _where(*epoch, batch, len(batches))
        try:
            current, state, loss = step(current, state, *_feed(prog, arrays, picked, spread))
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
