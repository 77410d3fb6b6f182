"""A ``graphbp train`` run: from the options to a trained network and its model folder.

:func:`train` reads the data and the network (or the model folder ``--resume`` names),
trains, prints the run's header and its comparison with baselines, and writes the folder's
files (see :mod:`graphbp.model`) through an :class:`~graphbp.outputs.OutputFolder`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from graphbp.chain import counted
from graphbp.errors import (
    GraphbpError,
    GraphFileError,
    GraphvizError,
    InputError,
    NonFiniteError,
    show,
)

if TYPE_CHECKING:
    import numpy as np

    from graphbp.datasets import Dataset, Split
    from graphbp.graph import Network
    from graphbp.model import Source
    from graphbp.op import Array
    from graphbp.outputs import OutputFolder
    from graphbp.processes import Start
    from graphbp.program import Program

EXAMPLE_DEFAULTS = {
    "diabetes": {"epochs": 150, "lr": 0.003, "hidden": 16},
    "digits": {"epochs": 100, "lr": 0.5, "hidden": 32},
}
"""Hyper-parameters per embedded example (and for --data, those of diabetes)."""
DEFAULTS = {"batch_size": 32, "optimizer": "sgd"}


def train(args: argparse.Namespace) -> int:
    """``graphbp train``: train as ``args`` say (a new model, or one continued with
    ``--resume``) and write the model folder ``--out``, swapped in whole when the run
    succeeds.

    Raises:
        InputError, GraphFileError: options that contradict each other or the model, a file
            that cannot be read or written (before training where it can be known).
        NonFiniteError: the run diverged.
    """
    from graphbp.processes import Start, join, stdout_to_stderr_from_now

    spread = getattr(args, "coordinator", None) is not None
    refused = None
    if spread:
        refused = join(args)  # first: a process that then stops tells the others (Start)
        if args.process_id != 0:
            stdout_to_stderr_from_now()  # it prints nothing; gloo's lines go to stderr
    ready = Start(spread, args.num_processes if spread else 1)
    try:
        if refused is not None:
            raise refused
        return _train(args, ready)
    except Exception:
        with contextlib.suppress(Exception):  # this process's own error is the one to show
            ready.settle(failed=True)  # before training: every process stops
        raise


def _train(args: argparse.Namespace, ready: Start) -> int:
    """:func:`train`, ``ready`` settled before the training begins."""
    from graphbp.outputs import OutputFolder

    given: set[str] = getattr(args, "given", set())
    if args.resume is not None and "out" not in given:
        args.out = args.resume  # continued in place, swapped in whole as any run
    if args.resume is not None:
        inside = Path(os.path.realpath(args.out))
        if inside != Path(os.path.realpath(args.resume)) and inside.is_relative_to(
            os.path.realpath(args.resume)
        ):
            raise InputError(
                f"--out {args.out} lies inside the --resume folder {args.resume}, which could "
                "then not be resumed in place again; choose an --out outside it"
            )
    if getattr(args, "coordinator", None) is not None and args.process_id != 0:
        return _train_into(args, None, ready)  # the same job; only process 0 writes and prints
    # --out is checked and locked before anything else, so a run that cannot keep its
    # outputs fails before it trains; the outputs are written beside it and swapped in whole.
    folder = OutputFolder(args.out)
    for option, path in (("--data", args.data), ("--graph", args.graph)):
        if path is not None:
            folder.check_input(path, option)
    try:
        with folder:
            return _train_into(args, folder, ready)
    except KeyboardInterrupt as exc:  # say what --out holds now, found on the disk
        exc.add_note(f" {folder.phase}; {folder.state()}")
        raise


@dataclasses.dataclass
class _Run:
    """What a run trains: the data, its split, the network and where it starts."""

    data: Dataset
    source: Source
    split: Split
    task: str
    classes: list[int] | None
    net: Network
    what: str
    hyper: dict[str, Any]
    test_fraction: float  # the fraction of rows held out
    params: dict[Hashable, Array] | None = None  # None: fresh, from the seed
    state: list[np.ndarray[Any, Any]] | None = None  # the optimizer's saved state
    history: tuple[list[float], list[float]] = ([], [])
    epochs_done: int = 0
    backend: str | None = None  # None: as the options say
    dtype: str | None = None
    output: Hashable | None = None  # None: the network's (a resumed run: the saved one)


def _new_run(args: argparse.Namespace) -> _Run:
    """A run from scratch, as the options say."""
    from graphbp import Network, mlp
    from graphbp.datasets import EXAMPLES, TEST_FRACTION, load_csv, load_example, split
    from graphbp.folder import network_file
    from graphbp.model import Source

    example = "diabetes" if args.data else args.example
    hyper: dict[str, Any] = {
        k: v if getattr(args, k) is None else getattr(args, k)
        for k, v in EXAMPLE_DEFAULTS[example].items()
    }
    hyper.update(batch_size=args.batch_size, optimizer=args.optimizer, seed=args.seed, graph=None)
    data = load_csv(args.data, args.target) if args.data else load_example(example)
    classify = not args.data and EXAMPLES[example][2] == "classification"
    classes = list(range(int(data.y.max()) + 1)) if classify else None
    s = split(data, TEST_FRACTION, args.seed, classes=len(classes) if classes else None)
    source = Source(
        None if args.data else example,
        str(Path(os.path.abspath(args.data))) if args.data else None,
        data.sha256,
        len(data.x),
    )
    n_in, n_out, hidden = s.x_train.shape[1], s.y_train.shape[1], hyper["hidden"]
    sizes = (n_in, hidden, hidden, n_out)
    if args.graph:
        file = network_file(args.graph)  # a folder's network.json
        what = str(args.graph)
        net = _fit_to_data(Network.from_json(file), file, n_in, n_out)
        hyper.update(hidden=None, graph=str(args.graph))
    elif classify:
        net = Network(mlp(sizes, "sigmoid", "softmax_cross_entropy"))
        what = f"network {'-'.join(map(str, sizes))} (σ, softmax cross-entropy)"
    else:
        net = Network(mlp(sizes, "sigmoid", "sse"))
        what = f"seed network {'-'.join(map(str, sizes))} (σ, Σ‖y−ŷ‖²)"
    task = "classification" if classify else "regression"
    return _Run(data, source, s, task, classes, net, what, hyper, TEST_FRACTION)


def _resumed_run(args: argparse.Namespace) -> _Run:
    """A run that continues the model folder ``args.resume``; options that contradict it
    are refused, one line each."""
    from graphbp.datasets import DataChangedError, load_csv, load_example, split
    from graphbp.model import Source, backend_and_dtype, load, read_optimizer_state

    folder = args.resume
    model = load(folder, "numpy", "float64")
    about = model.description
    given: set[str] = getattr(args, "given", set())
    saved = about.hyperparameters

    def refuse(option: str, why: str) -> NoReturn:
        raise InputError(f"{option} conflicts with --resume {folder}: {why}; drop {option}")

    if args.graph is not None:
        refuse("--graph", "a resumed run keeps the network of its network.json")
    if args.hidden is not None and args.hidden != saved.get("hidden"):
        hidden = saved.get("hidden")
        has = "came from --graph" if hidden is None else f"has hidden width {show(hidden)}"
        refuse("--hidden", f"the saved network {has}")
    src = about.source
    if "example" in given and args.example != src.example:
        refuse("--example", f"the model was trained on {src.example or src.csv!r}")
    if args.data is not None and src.csv is None:
        refuse("--data", f"the model was trained on the embedded example {src.example!r}")
    if "target" in given and args.target != about.target:
        refuse("--target", f"the model predicts {about.target!r}")
    if "seed" in given and args.seed != about.seed:
        refuse("--seed", f"the model's split and shuffling use seed {about.seed}")
    optimizer: str = saved["optimizer"]  # read_description checked it
    if "optimizer" in given and args.optimizer != optimizer:
        refuse("--optimizer", f"the saved optimizer state is {show(optimizer)}'s")
    csv_path = args.data or (Path(src.csv) if src.csv else None)  # --data: the same file, moved
    try:  # the bytes' sha256 is checked before they are parsed: a file that differs (any
        # file a hostile model.json names) is never quoted in a message
        data = (
            load_csv(csv_path, about.target, sha256=src.sha256)
            if csv_path
            else load_example(src.example or "", sha256=src.sha256)
        )
    except DataChangedError as exc:
        if csv_path is None:  # an embedded example does not change: model.json was edited
            raise GraphFileError(
                f"{folder / 'model.json'}: names the example {show(src.example)}, but its sha256 "
                "describes other data; the model folder was edited: train anew"
            ) from None
        raise InputError(
            f"{exc.path}: the data changed since {folder} was trained on it (sha256 "
            f"{exc.sha256[:12]}…; then: {exc.expected[:12]}…); train anew instead of resuming"
        ) from None
    except GraphFileError as exc:
        if args.data is not None or csv_path is None or os.path.lexists(csv_path):
            raise
        raise InputError(
            f"{csv_path}: the CSV file {folder} was trained on is not there; if it moved, give "
            "--data NEW_PATH (the same file, moved)"
        ) from exc
    if len(data.x) != src.rows:
        raise GraphFileError(
            f"{folder / 'model.json'}: says the data had {src.rows} rows, but its file has "
            f"{len(data.x)}; the model folder was edited: train anew"
        )
    if csv_path is not None:
        src = Source(None, str(Path(os.path.abspath(csv_path))), src.sha256, src.rows)
    classes = about.classes
    s = split(
        data,
        about.test_fraction,
        about.seed,
        classes=len(classes) if classes else None,
        stats=about.stats,
    )
    if s.test_rows.tolist() != about.test_rows:  # about.test_rows checks their sha256
        raise InputError(f"{folder}: the split differs from the saved one; train anew")
    hyper: dict[str, Any] = {
        "lr": args.lr if args.lr is not None else saved["lr"],
        "epochs": args.epochs or EXAMPLE_DEFAULTS[src.example or "diabetes"]["epochs"],
        "hidden": saved.get("hidden"),
        "batch_size": args.batch_size if "batch_size" in given else saved["batch_size"],
        "optimizer": optimizer,
        "seed": about.seed,
        "graph": saved.get("graph"),
    }
    state = read_optimizer_state(folder, optimizer, model.params)
    history = (model.history["train_loss"], model.history["test_loss"])  # about.epochs each
    first, last = about.epochs + 1, about.epochs + hyper["epochs"]
    what = f"{folder} (epoch {first})" if first == last else f"{folder} (epochs {first}–{last})"
    run = _Run(data, src, s, about.task, classes, model.network, what, hyper, about.test_fraction)
    run.params, run.state, run.history, run.epochs_done = model.params, state, history, about.epochs
    run.backend, run.dtype = backend_and_dtype(about, args.backend, args.dtype)
    run.output = about.output
    return run


def _train_into(args: argparse.Namespace, folder: OutputFolder | None, ready: Start) -> int:
    """Train as ``args`` say, then write the model folder through ``folder`` (None: a process
    of a run across processes other than process 0, which trains alike and writes nothing);
    ``ready`` is settled just before training."""
    import numpy as np

    from graphbp.figures import loss_curve
    from graphbp.model import (
        LOSS_UNITS,
        MODEL_JSON_LIMIT,
        description,
        history_csv,
        loss_per_row,
        npz_bytes,
        prediction,
    )
    from graphbp.processes import all_devices, stdout_to_stderr
    from graphbp.progress import progress_bar
    from graphbp.registry import default_backend
    from graphbp.train import train_state

    run = _resumed_run(args) if args.resume is not None else _new_run(args)
    s, net, hyper, task = run.split, run.net, run.hyper, run.task
    output = prediction(net, run.output)
    backend = run.backend or args.backend or default_backend() or "numpy"
    spread = getattr(args, "coordinator", None) is not None
    prog = net.compile(
        backend,
        run.dtype or args.dtype or "float64",
        check_finite=args.check_finite,
        devices=all_devices(args) if spread else args.devices,
    )
    # Across processes, predictions and diagrams are computed by each process on its own
    # device from host copies of the parameters: no collective after training, so process 0
    # alone can draw; every process evaluates alike, so an error stops them all.
    judge = net.compile(backend, prog.dtype, check_finite=args.check_finite) if spread else prog
    if folder is not None:
        folder.phase = "during training"
    say = print if folder is not None else _silent
    say(
        f"graphbp train: {run.what} on {run.data.name} ({len(s.x_train)} train / "
        f"{len(s.x_test)} test rows), {hyper['optimizer']} lr={hyper['lr']}, "
        f"{counted(hyper['epochs'], 'epoch')}, batch {hyper['batch_size']}, "
        f"{prog.backend.name} {prog.dtype}"
    )
    # (train_state places them; placing is a collective across processes, after ``ready``)
    start = prog.init(hyper["seed"]) if run.params is None else run.params

    def predict(
        params: Mapping[Hashable, Array], x: np.ndarray[Any, Any], rows: str, when: str
    ) -> np.ndarray[Any, Any]:
        if spread:
            params = {k: prog.backend.to_numpy(v) for k, v in params.items()}
        y = judge.backend.to_numpy(judge.forward(params, {"x": x}, [output])[output])
        if not np.isfinite(y).all():  # finite parameters, yet it overflows on these rows
            raise NonFiniteError(
                f"{when}, the network's output {output!r} on the {rows} rows is NaN or Inf; "
                "lower the learning rate (--lr) or rescale the data"
            )
        return y

    train_loss, test_loss = list(run.history[0]), list(run.history[1])
    # The bar shows the loss in the unit of the table, history.csv and loss.png (per row, of
    # the parameters after each epoch), not train_state's mean minibatch loss (of the loss
    # node, which for Σ‖y−ŷ‖² grows with the batch size).
    bar = progress_bar(
        total=hyper["epochs"],
        desc="train",
        unit="epoch",
        file=sys.stderr,
        leave=False,
        disable=folder is None,
    )

    def evaluate(epoch: int, _: float, params: dict[Any, Any]) -> None:
        when = f"after epoch {epoch + 1}"
        with np.errstate(all="ignore"):
            train_loss.append(
                loss_per_row(task, predict(params, s.x_train, "training", when), s.y_train)
            )
            test_loss.append(loss_per_row(task, predict(params, s.x_test, "test", when), s.y_test))
        bar.set_postfix_str(
            f"loss per row: train {train_loss[-1]:.4g}, test {test_loss[-1]:.4g}", refresh=False
        )
        bar.update(1)

    try:
        ready.settle(failed=False)  # every process is ready, or all stop here
        with stdout_to_stderr() if spread else contextlib.nullcontext():
            done = train_state(
                prog,
                start,
                {"x": s.x_train, "y": s.y_train},
                lr=hyper["lr"],
                epochs=hyper["epochs"],
                batch_size=hyper["batch_size"],
                optimizer=hyper["optimizer"],
                seed=hyper["seed"],
                progress=False,
                callback=evaluate,
                initial_epoch=run.epochs_done,
                state=run.state,
            )
    finally:
        bar.close()  # before any message: the error starts a clean line
    params = done.params
    unit = LOSS_UNITS[task]
    with np.errstate(all="ignore"):  # overflow is reported as a NonFiniteError instead
        when = "training ended, but"
        fits = predict(params, s.x_train, "training", when), predict(params, s.x_test, "test", when)
        if folder is None:  # trained alike; process 0 reports and writes
            return 0
        compare = _compare_classifiers if task == "classification" else _compare_with_baselines
        metrics = compare(s, *fits)
        final = loss_per_row(task, fits[0], s.y_train), loss_per_row(task, fits[1], s.y_test)
        print(f"loss: train {final[0]:.4f}, test {final[1]:.4f} ({unit})")
        epochs = run.epochs_done + hyper["epochs"]
        metrics.update(
            loss_unit=unit, final_train_loss=final[0], final_test_loss=final[1], epochs=epochs
        )
        about = description(
            task=task,
            features=run.data.feature_names,
            target=run.data.target_name,
            classes=run.classes,
            stats=s.stats,
            source=run.source,
            seed=hyper["seed"],
            test_fraction=run.test_fraction,
            test_rows=s.test_rows,
            output=output,
            hyperparameters={k: v for k, v in hyper.items() if k != "epochs"},
            backend=prog.backend.name,
            dtype=prog.dtype,
            epochs=epochs,
        )
        arrays = {str(k): prog.backend.to_numpy(v) for k, v in params.items()}
        model_json = strict_json(about, "model.json").encode()
        if len(model_json) > MODEL_JSON_LIMIT:  # gb.load would refuse it
            raise InputError(
                f"model.json would have {len(model_json):,} bytes, more than the "
                f"{MODEL_JSON_LIMIT:,} a model may have: the data has too many or too long "
                "column names"
            )
        outputs = {
            "model.json": model_json,
            "network.json": net.to_json_bytes(),
            "params.npz": npz_bytes(arrays),
            "optimizer.npz": npz_bytes({str(k): v for k, v in enumerate(done.state)}),
            "metrics.json": strict_json(metrics, "metrics.json").encode(),
            "history.csv": history_csv(train_loss, test_loss),
            **loss_curve(train_loss, test_loss, unit),
        }
        train_data = {"x": s.x_train, "y": s.y_train}
        try:
            with folder.writing() as new:
                written = _write_outputs(new, outputs)
                host = {k: prog.backend.to_numpy(v) for k, v in params.items()}
                drawn, shows, warning = _write_diagrams(new, net, judge, host, train_data)
        except GraphFileError as exc:  # named by --out, not by the folder it was written in
            raise GraphFileError(f"{folder.shown(str(exc))}; {folder.state()}") from exc
    out = args.out  # swapped in: say what it now holds, by the name the user gave
    print(f"wrote {', '.join(str(out / n) for n in written)}")
    if warning:
        print(f"graphbp train: warning: {folder.shown(warning)}", file=sys.stderr)
    if drawn:
        print(f"wrote {', '.join(str(out / n) for n in drawn)} ({shows})")
    return 0


def _silent(*_: object) -> None:
    """``print`` in a process that prints nothing."""


def _write_diagrams(
    out: Path,
    net: Network,
    prog: Program,
    params: Mapping[Hashable, Array],
    data: dict[str, np.ndarray[Any, Any]],
) -> tuple[list[str], str, str | None]:
    """The trained network's chain rule for its deepest parameter, with the final values and
    gradients on the training data: chain_rule.svg, and graph.html to click through all.

    Returns:
        What to report: the names of the files written, what they show, and a warning if
        Graphviz failed (the other outputs stand; the DOT source is written instead).
    """
    from graphbp.chain import explain
    from graphbp.diagram import write_diagram

    per_param = explain(net).per_param
    if not per_param:
        return [], "", None
    deepest = max(per_param, key=lambda p: per_param[p][1] / per_param[p][0])
    to_numpy = prog.backend.to_numpy
    values = {k: to_numpy(v) for k, v in prog.forward(params, data, net.order).items()}
    grads = {k: to_numpy(v) for k, v in prog.value_and_grad(params, data)[1].items()}
    written = []
    for name in ("chain_rule.svg", "graph.html"):
        try:
            written.append(write_diagram(net, out / name, deepest, values=values, grads=grads))
        except GraphFileError:  # a failing write fails the run: no partial output set
            raise
        except GraphvizError as exc:  # no dot: training's outputs stand; say what is missing
            source = [n for n in ("chain_rule.dot",) if (out / n).is_file()]
            skipped = "graph.html (the same drawing, clickable) was not written either"
            return source, f"the Graphviz source of ∂L/∂{deepest}'s diagram", f"{exc}; {skipped}"
    return [p.name for p in written], f"∂L/∂{deepest} with the final gradients", None


def _compare_with_baselines(
    s: Split, fit_train: np.ndarray[Any, Any], fit_test: np.ndarray[Any, Any]
) -> dict[str, Any]:
    """Print (and return) train/test MSE and R² of the network, the mean and least squares."""
    import numpy as np

    from graphbp.datasets import least_squares, r2_score

    ls_train, ls_test = least_squares(s)
    rows = {
        "mean predictor": (np.zeros_like(s.y_train), np.zeros_like(s.y_test)),
        "linear least squares": (ls_train, ls_test),
        "graphbp network": (fit_train, fit_test),
    }
    print(
        f"{'(standardised target)':<24}{'train MSE':>11}{'test MSE':>11}{'train R²':>10}"
        f"{'test R²':>10}"
    )
    metrics: dict[str, Any] = {}
    for name, (p_train, p_test) in rows.items():
        m = metrics[name] = {
            "train_mse": float(np.mean((s.y_train - p_train) ** 2)),
            "test_mse": float(np.mean((s.y_test - p_test) ** 2)),
            "train_r2": r2_score(s.y_train, p_train),
            "test_r2": r2_score(s.y_test, p_test),
        }
        print(
            f"{name:<24}{m['train_mse']:>11.4f}{m['test_mse']:>11.4f}{m['train_r2']:>10.4f}"
            f"{m['test_r2']:>10.4f}"
        )
    return metrics


def _compare_classifiers(
    s: Split, fit_train: np.ndarray[Any, Any], fit_test: np.ndarray[Any, Any]
) -> dict[str, Any]:
    """Print (and return) train/test accuracy of the network, the majority class and a
    one-vs-rest least-squares linear classifier."""
    import numpy as np

    from graphbp.datasets import accuracy, least_squares

    majority = np.eye(s.y_train.shape[1])[np.argmax(s.y_train.sum(axis=0))]
    ls_train, ls_test = least_squares(s)
    rows = {
        "majority class": (
            np.tile(majority, (len(s.y_train), 1)),
            np.tile(majority, (len(s.y_test), 1)),
        ),
        "linear least squares": (ls_train, ls_test),
        "graphbp network": (fit_train, fit_test),
    }
    print(f"{'':<24}{'train accuracy':>16}{'test accuracy':>15}")
    metrics: dict[str, Any] = {}
    for name, (p_train, p_test) in rows.items():
        m = metrics[name] = {
            "train_accuracy": accuracy(s.y_train, p_train),
            "test_accuracy": accuracy(s.y_test, p_test),
        }
        print(f"{name:<24}{m['train_accuracy']:>16.4f}{m['test_accuracy']:>15.4f}")
    return metrics


def _write_outputs(out: Path, outputs: dict[str, bytes]) -> list[str]:
    """Write each file of ``outputs`` into ``out``, atomically; returns their names."""
    from graphbp.io import write_file

    for name, content in outputs.items():
        write_file(out / name, content)
    return list(outputs)


def strict_json(value: dict[str, Any], name: str) -> str:
    """``value`` as strict JSON (:func:`graphbp.io.dumps_strict`).

    Raises:
        NonFiniteError: naming the first entry that is NaN or infinite.
    """
    from graphbp.io import dumps_strict

    try:
        return dumps_strict(value)
    except ValueError as exc:
        raise NonFiniteError(f"{name}: {exc}; the run produced no finite value") from None


def _fit_to_data(net: Network, path: Path, features: int, targets: int) -> Network:
    """The network of a --graph file with its inputs given the data's widths, ``x`` as
    (None, features) and ``y`` as (None, targets), and validated again with them, so that a
    graph that does not fit the data fails here, naming the node, and not in training."""
    from graphbp import Network
    from graphbp.model import prediction
    from graphbp.op import shapes_agree

    if set(net.inputs) != {"x", "y"}:
        raise GraphFileError(
            f"{path}: graphbp train feeds input nodes 'x' (features) and 'y' (target), but the "
            f"graph's inputs are {net.inputs}; rename them"
        )
    graph = net.graph.copy()
    for name, width, what in (("x", features, "feature"), ("y", targets, "target")):
        declared, given = net.shapes[name], (None, width)
        if declared is not None and not shapes_agree(declared, given):
            raise GraphFileError(
                f"{path}: input {name!r} declares shape {declared}, but the data has {width} "
                f"{what} column(s), so it is fed rows of shape (batch, {width}); fix the shape"
            )
        if declared is None:
            graph.nodes[name]["shape"] = given
        elif declared and declared[0] is not None:
            rows = declared[0]
            raise GraphFileError(
                f"{path}: input {name!r} has shape {declared}: the network takes exactly "
                f"{rows:,} rows at a time (its first axis is fixed, e.g. because gb.from_jax "
                f"traced it at batch size {rows:,}), but graphbp train also computes its output "
                "on all training and all test rows at once, so it needs inputs whose first axis "
                f"is None (any number of rows); train this network from Python with "
                f"gb.train(..., batch_size={rows}) on a number of rows divisible by {rows}"
            )
    try:
        fitted = Network(graph)
        prediction(fitted)  # the output node, checked against y's shape
        return fitted
    except GraphbpError as exc:
        raise GraphFileError(
            f"{path}: with 'x' of {features} feature and 'y' of {targets} target column(s) "
            f"from the data: {exc}"
        ) from exc
