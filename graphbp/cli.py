"""The command line: graphbp train | render | explain | ops | check | bench.

``graphbp --version`` prints the version; ``python -m graphbp`` runs the same command line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import io
import os
import sys
import unicodedata
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from graphbp import __version__
from graphbp.chain import MAX_PATHS, MAX_PATHS_LIMIT, counted
from graphbp.errors import (
    BackendNotInstalledError,
    GradientCheckError,
    GraphbpError,
    GraphFileError,
    GraphvizError,
    InputError,
    NonFiniteError,
    PluginError,
    show,
    visible,
)
from graphbp.optim import OPTIMIZERS
from graphbp.registry import default_backend, get_backend

if TYPE_CHECKING:
    from graphbp.outputs import OutputFolder

EXAMPLE_DEFAULTS = {
    "diabetes": {"epochs": 150, "lr": 0.003, "hidden": 16},
    "digits": {"epochs": 100, "lr": 0.5, "hidden": 32},
}
"""Hyper-parameters per embedded example (and for --data, those of diabetes)."""
DEFAULTS = {"batch_size": 32, "optimizer": "sgd"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Every failure is one line on stderr, never a traceback: 2 for bad input (a usage error or
    a GraphbpError), 1 for a failed check, a diverged run (NonFiniteError) or an unexpected
    error (``GRAPHBP_DEBUG=1`` shows its traceback), 130 for Ctrl-C, and 141, quietly, when
    standard output is closed early (``graphbp ops | head -1``), the status a shell shows for
    a tool that SIGPIPE ended.
    """
    for stream in (sys.stdout, sys.stderr):  # a legacy encoding: σ and ∂ shown escaped
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    status = 1
    try:
        try:
            status = _main(argv)
        except SystemExit as exc:  # argparse's --help and usage errors
            status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
        if sys.stdout is not None:  # None: started with standard output closed
            sys.stdout.flush()  # a closed pipe or a full disk is noticed here, not at exit
    except BrokenPipeError:
        _discard_stdout()
        return 141
    except OSError as exc:
        if exc.filename is not None or _debug():  # not the flush: _main let it through
            raise
        _discard_stdout()
        if status == 0:
            print(f"graphbp: cannot write the output ({exc.strerror})", file=sys.stderr)
        return 1
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):  # no command: what the commands are
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, args.command)
            status: int = args.run(args)
    except GradientCheckError as exc:
        print(f"graphbp {args.command}: check failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except NonFiniteError as exc:  # the input was valid; the run failed
        print(f"graphbp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except GraphbpError as exc:
        print(f"graphbp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        notes = getattr(exc, "__notes__", None)  # what the command had done, if it says
        done = notes[-1] if notes else "; nothing was written"
        print(f"graphbp {args.command}: interrupted{done}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # main() exits quietly
    except OSError as exc:  # the system refused (a full disk, standard output closed): not a bug
        if _debug():
            raise
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(
            f"graphbp {args.command}: error: {visible(where)}{exc.strerror or _one_line(exc)} "
            "(set GRAPHBP_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug, in graphbp or a plugin: one line, the traceback on request
        if _debug():
            raise
        print(
            f"graphbp {args.command}: unexpected {type(exc).__name__}: {_one_line(exc, 300)} "
            "(set GRAPHBP_DEBUG=1 to see the traceback; please report it if it is a bug)",
            file=sys.stderr,
        )
        return 1
    return status


def _show_warning(command: str, message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """A warning as the command line writes it: ``graphbp COMMAND: warning: ...``, one line
    (not Python's file, line number and source line)."""
    exc = message if isinstance(message, Warning) else Warning(message)
    print(f"graphbp {command}: warning: {_one_line(exc)}", file=sys.stderr)


def _debug() -> bool:
    """Whether GRAPHBP_DEBUG asks for tracebacks (any value but empty or 0)."""
    return os.environ.get("GRAPHBP_DEBUG", "").strip() not in ("", "0")


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so the flush at exit cannot fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


MAX_MESSAGE = 2000
"""The most characters of an error message the command line prints (a message may quote a
file's column names or attribute values, which a hostile file can make megabytes long)."""


def _one_line(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The message of ``exc`` on one line: control characters (newlines, escapes that a
    terminal would obey) shown escaped, and at most ``limit`` characters."""
    text = visible(str(exc))
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _check_arguments(args: argparse.Namespace) -> None:
    """What the options mean together: one line each, before any file is read."""
    if args.command == "train":
        if args.target is not None and args.data is None:
            raise InputError(
                f"--target {args.target!r} names a column of the --data CSV file, but no --data "
                "was given (it would be ignored); add --data FILE or drop --target"
            )
        if args.target is None:
            args.target = "target"


class _HelpFormatter(argparse.HelpFormatter):
    """--help that states every option's default and choices where its text does not."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.metavar is not None and not isinstance(action, argparse._SubParsersAction)
        if action.choices is not None and hidden:  # else the {a,b,c} metavar lists them
            text += f" (choices: {', '.join(str(c) for c in action.choices)})"
        if shows_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def shows_default(action: argparse.Action) -> bool:
    """Whether --help states ``action``'s default: it has one, and the option takes a value
    (a flag's default is being off; a default of None means the option is not used)."""
    takes_value = action.nargs != 0 and (bool(action.option_strings) or action.nargs == "?")
    return takes_value and action.default not in (None, argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to find help), exit status 2, and
    --help shows every option's default and choices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = visible(message)
        if len(message) > 300:  # a 4,000-digit --epochs, quoted back
            message = f"{message[:300]}…"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


MAX_COUNT = 2**31 - 1
"""The largest --epochs, --hidden, --batch-size and --devices (what a C int holds)."""
MAX_SEED = 2**32 - 1
"""Seeds are 0..MAX_SEED (NumPy seeds from unsigned 32-bit words)."""


def _number(text: str) -> str:
    """A number as the user wrote it, abbreviated if it is long."""
    text = text.strip()
    return text if len(text) <= 30 else f"{text[:12]}…({len(text)} characters)"


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_COUNT`."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {_number(text)}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT:,}, got {_number(text)}")
    return value


def seed(text: str) -> int:
    """An argparse type: a random seed, a whole number from 0 to :data:`MAX_SEED`."""
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is from 0 to {MAX_SEED:,}, got {_number(text)}")
    return value


def learning_rate(text: str) -> float:
    """An argparse type: a positive float (inf is taken, and training then says it diverged)."""
    value = float(text)
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"learning rate must be positive, got {value}")
    return value


def backend_name(text: str) -> str:
    """An argparse type: a non-empty backend name (whether it is installed is checked on use)."""
    if not text.strip():
        from graphbp.registry import backends

        raise argparse.ArgumentTypeError(f"name a backend: {' or '.join(backends())}")
    return text


def max_paths_int(text: str) -> int:
    """--max-paths: an integer from 1 to MAX_PATHS_LIMIT (the rest are counted, not listed)."""
    value = int(text)
    if not 1 <= value <= MAX_PATHS_LIMIT:
        raise argparse.ArgumentTypeError(
            f"lists from 1 to {MAX_PATHS_LIMIT:,} paths (the rest are counted exactly), "
            f"got {_number(text)}"
        )
    return value


class _Given(argparse.Action):
    """Store the value and note the option in ``namespace.given``: a resumed run tells an
    option the user gave from its default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        given = getattr(namespace, "given", None)
        if not isinstance(given, set):
            given = set()
            namespace.given = given
        given.add(self.dest)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graphbp",
        description="Backpropagation on NetworkX graphs of op plugins.",
        epilog="graphbp COMMAND --help lists the command's options, each with its default.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, title="commands"
    )

    train = sub.add_parser(
        "train",
        help="train a network (default: the seed network on diabetes) into a model folder",
    )

    def by_example(option: str) -> str:  # the default of a hyper-parameter, per example
        return ", ".join(f"{k} {d[option]}" for k, d in EXAMPLE_DEFAULTS.items())

    train.add_argument(
        "--example",
        action=_Given,
        choices=tuple(EXAMPLE_DEFAULTS),
        default="diabetes",
        help="embedded data: diabetes (regression, σ network with Σ‖y−ŷ‖²) or digits "
        "(10 classes, softmax cross-entropy)",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        help="passes over the data; with --resume, how many more "
        f"(default: {by_example('epochs')})",
    )
    train.add_argument(
        "--lr",
        type=learning_rate,
        help=f"learning rate η (default: {by_example('lr')}; --resume: the saved one)",
    )
    train.add_argument(
        "--hidden",
        type=positive_int,
        help=f"hidden width of the network, ignored with --graph (default: {by_example('hidden')})",
    )
    train.add_argument(
        "--batch-size",
        action=_Given,
        type=positive_int,
        default=DEFAULTS["batch_size"],
        help="rows per training step (an epoch's last step takes the rows left over; "
        "--resume: the saved one)",
    )
    train.add_argument(
        "--optimizer",
        action=_Given,
        choices=tuple(OPTIMIZERS),
        default=DEFAULTS["optimizer"],
        help="the update rule: plain SGD, SGD with momentum, or Adam (--resume: the saved one)",
    )
    train.add_argument(
        "--seed",
        action=_Given,
        type=seed,
        default=0,
        help=f"seeds the split, init and shuffling: 0 to {MAX_SEED}",
    )
    train.add_argument(
        "--data",
        type=Path,
        help="a numeric CSV with a header row (regression; replaces --example) "
        "(default: none, the --example data)",
    )
    train.add_argument(
        "--target", action=_Given, help="the --data column to predict (default: target)"
    )
    train.add_argument(
        "--graph",
        type=Path,
        help="a node-link JSON network with inputs 'x' and 'y' (default: the seed network, "
        "two σ layers of --hidden units)",
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue training the model folder DIR (a graphbp train --out) for --epochs more "
        "epochs: same network, data, split and statistics, its parameters and optimizer state; "
        "written back into DIR unless --out is given (default: none, a new model)",
    )
    train.add_argument(
        "--out",
        action=_Given,
        type=_out_folder,
        default=Path("graphbp-out"),
        help="the model folder: model.json, network.json, params.npz, optimizer.npz, "
        "metrics.json, history.csv, loss.png, loss.svg and the chain-rule diagrams "
        "chain_rule.svg and graph.html; written beside it and swapped in whole when the run "
        "succeeds, so it holds the old or the new outputs, never a mix (default: graphbp-out)",
    )
    train.add_argument(
        "--check-finite",
        action="store_true",
        help="test every node's value and gradient for NaN and Inf at every step (slower; "
        "jax runs unjitted); without it a divergence is still stopped and its node named",
    )
    _backend_options(train)
    train.add_argument(
        "--devices",
        type=positive_int,
        help="jax: split each batch across this many devices, data parallel (default: one device)",
    )
    train.set_defaults(run=_train)

    predict = sub.add_parser(
        "predict", help="predict the target of the rows of a CSV file with a trained model"
    )
    predict.add_argument("model", type=Path, metavar="DIR", help="a graphbp train --out folder")
    predict.add_argument(
        "data",
        type=Path,
        metavar="CSV",
        help="rows to predict: a CSV file with a header naming the model's feature columns "
        "(any order; the target column may be present, with empty cells where it is unknown, "
        "and then the score on the rows where it is known is printed)",
    )
    predict.add_argument(
        "-o",
        "--output",
        default="-",
        help="the CSV file to write (replaced whole; not the input, not inside DIR), one "
        "column named after the target (quoted as CSV needs; a name that a spreadsheet would "
        "take for a formula, starting with = + - or @, gets a leading ') (default: - for "
        "standard output)",
    )
    predict.add_argument(
        "--proba",
        action="store_true",
        help="a classifier: also write each class's probability, one column per class "
        "named proba_LABEL, after the predicted label",
    )
    _backend_options(predict)
    predict.set_defaults(run=_predict)

    render = sub.add_parser(
        "render", help="draw a network and the chain-rule paths from the loss to a parameter"
    )
    render.add_argument(
        "graph", nargs="?", type=Path, help="a node-link JSON network (default: the seed network)"
    )
    render.add_argument(
        "--wrt",
        help="highlight the paths from the loss down to this parameter and caption their "
        "chain rule (default: none, no path highlighted)",
    )
    render.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("graph.svg"),
        help="the file to write; its extension picks the format: .dot .svg .png .pdf .html "
        "(default: graph.svg)",
    )
    render.add_argument(
        "--max-paths",
        type=max_paths_int,
        default=MAX_PATHS,
        help=f"paths the formula lists, 1 to {MAX_PATHS_LIMIT:,} (the rest are counted)",
    )
    render.add_argument(
        "--scopes",
        choices=("cluster", "collapse", "ignore"),
        default="cluster",
        help="nodes with a 'scope' attribute: one cluster per scope, one node per scope, or "
        "drawn as unscoped (default: cluster)",
    )
    render.add_argument(
        "--rankdir",
        choices=("LR", "TB", "RL", "BT"),
        default="LR",
        help="the drawing's direction, from inputs to loss: left to right, top to bottom, ...",
    )
    render.set_defaults(run=_render)

    explain = sub.add_parser(
        "explain", help="count what backprop's reuse saves against path-by-path expansion"
    )
    explain.add_argument(
        "graph", nargs="?", type=Path, help="a node-link JSON network (default: the seed network)"
    )
    explain.add_argument(
        "--wrt", help="also write out the chain rule for this parameter (default: none)"
    )
    explain.set_defaults(run=_explain)

    ops = sub.add_parser("ops", help="list the ops and backends and who provides them")
    ops.set_defaults(run=_ops)

    check = sub.add_parser("check", help="gradient-check every op and a network, or one op")
    check.add_argument(
        "graph", nargs="?", type=Path, help="a node-link JSON network (default: the seed network)"
    )
    check.add_argument(
        "--op",
        metavar="NAME",
        help="check this op alone (on each backend checked, and against jax.vjp where jax is "
        "installed) (default: none, every op and a network)",
    )
    check.add_argument(
        "--backend",
        type=backend_name,
        help="check one backend (default: $GRAPHBP_BACKEND, else every installed one); "
        "with jax, plugin vjps are also checked against jax.vjp and NumPy against JAX",
    )
    check.set_defaults(run=_check)

    bench = sub.add_parser("bench", help="time graphbp against hand-written NumPy and JAX")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, smaller chain")
    bench.add_argument(
        "--backend",
        type=backend_name,
        help="bench one backend (default: $GRAPHBP_BACKEND, else every installed one)",
    )
    bench.set_defaults(run=_bench)
    for action in sub._choices_actions:  # each command's help line heads its own --help
        summary = action.help or ""
        sub.choices[action.dest].description = f"{summary[:1].upper()}{summary[1:]}."
    return parser


def _backend_options(p: argparse.ArgumentParser) -> None:
    from graphbp.registry import backends

    p.add_argument(
        "--backend",
        type=backend_name,
        default=None,
        help=f"{' or '.join(backends())} (default: $GRAPHBP_BACKEND, else numpy; predict and "
        "--resume: else the model's, if installed)",
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        help="the floating-point type parameters and data are computed in (default: float64; "
        "predict and --resume: the model's)",
    )


# ------------------------------------------------------------------------------------ train


def _out_folder(text: str) -> Path:
    """--out as a path; an empty one would be Path("."), the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a folder, got {text!r}")
    return Path(text)


def _train(args: argparse.Namespace) -> int:
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
    # --out is checked and locked before anything else, so a run that cannot keep its
    # outputs fails before it trains; the outputs are written beside it and swapped in whole.
    folder = OutputFolder(args.out)
    for option, path in (("--data", args.data), ("--graph", args.graph)):
        if path is not None:
            folder.check_input(path, option)
    try:
        with folder:
            return _train_into(args, folder)
    except KeyboardInterrupt as exc:  # say what --out holds now, found on the disk
        exc.add_note(f" {folder.phase}; {folder.state()}")
        raise


@dataclasses.dataclass
class _Run:
    """What a run trains: the data, its split, the network and where it starts."""

    data: Any
    source: Any
    split: Any
    task: str
    classes: list[int] | None
    net: Any
    what: str
    hyper: dict[str, Any]
    params: Any = None  # None: fresh, from the seed
    state: Any = None  # the optimizer's saved state
    history: tuple[list[float], list[float]] = ([], [])
    epochs_done: int = 0
    backend: str | None = None  # None: as the options say
    dtype: str | None = None
    output: Hashable | None = None  # None: the network's (a resumed run: the saved one)
    test_fraction: float = 0.0  # the fraction of rows held out (set by _new_run, _resumed_run)


def _new_run(args: argparse.Namespace) -> _Run:
    """A run from scratch, as the options say."""
    from graphbp import Network, mlp
    from graphbp.datasets import EXAMPLES, TEST_FRACTION, load_csv, load_example, split
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
        net = Network.from_json(args.graph)
        what = str(args.graph)
        net = _fit_to_data(net, args.graph, n_in, n_out)
        hyper.update(hidden=None, graph=str(args.graph))
    elif classify:
        net = Network(mlp(sizes, "sigmoid", "softmax_cross_entropy"))
        what = f"network {'-'.join(map(str, sizes))} (σ, softmax cross-entropy)"
    else:
        net = Network(mlp(sizes, "sigmoid", "sse"))
        what = f"seed network {'-'.join(map(str, sizes))} (σ, Σ‖y−ŷ‖²)"
    task = "classification" if classify else "regression"
    return _Run(data, source, s, task, classes, net, what, hyper, test_fraction=TEST_FRACTION)


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
    what = f"{folder} (epochs {about.epochs + 1}–{about.epochs + hyper['epochs']})"
    run = _Run(data, src, s, about.task, classes, model.network, what, hyper)
    run.params, run.state, run.history, run.epochs_done = model.params, state, history, about.epochs
    run.backend, run.dtype = backend_and_dtype(about, args.backend, args.dtype)
    run.output, run.test_fraction = about.output, about.test_fraction
    return run


def _train_into(args: argparse.Namespace, folder: OutputFolder) -> int:
    """Train as ``args`` say, then write the model folder through ``folder``."""
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
    from graphbp.progress import progress_bar
    from graphbp.train import train_state

    run = _resumed_run(args) if args.resume is not None else _new_run(args)
    s, net, hyper, task = run.split, run.net, run.hyper, run.task
    output = prediction(net, run.output)
    prog = net.compile(
        run.backend or args.backend,
        run.dtype or args.dtype or "float64",
        check_finite=args.check_finite,
        devices=args.devices,
    )
    folder.phase = "during training"
    print(
        f"graphbp train: {run.what} on {run.data.name} ({len(s.x_train)} train / "
        f"{len(s.x_test)} test rows), {hyper['optimizer']} lr={hyper['lr']}, "
        f"{counted(hyper['epochs'], 'epoch')}, batch {hyper['batch_size']}, "
        f"{prog.backend.name} {prog.dtype}"
    )
    start = prog.init(hyper["seed"]) if run.params is None else prog.own(run.params)

    def predict(params: Any, x: Any, rows: str, when: str) -> Any:
        y = prog.backend.to_numpy(prog.forward(params, {"x": x}, [output])[output])
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
        total=hyper["epochs"], desc="train", unit="epoch", file=sys.stderr, leave=False
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
        model_json = _strict_json(about, "model.json").encode()
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
            "metrics.json": _strict_json(metrics, "metrics.json").encode(),
            "history.csv": history_csv(train_loss, test_loss),
            **loss_curve(train_loss, test_loss, unit),
        }
        train_data = {"x": s.x_train, "y": s.y_train}
        try:
            with folder.writing() as new:
                written = _write_outputs(new, outputs)
                drawn, shows, warning = _write_diagrams(new, net, prog, params, train_data)
        except GraphFileError as exc:  # named by --out, not by the folder it was written in
            raise GraphFileError(f"{folder.shown(str(exc))}; {folder.state()}") from exc
    out = args.out  # swapped in: say what it now holds, by the name the user gave
    print(f"wrote {', '.join(str(out / n) for n in written)}")
    if warning:
        print(f"graphbp train: warning: {folder.shown(warning)}", file=sys.stderr)
    if drawn:
        print(f"wrote {', '.join(str(out / n) for n in drawn)} ({shows})")
    return 0


def _write_diagrams(
    out: Path, net: Any, prog: Any, params: Any, data: dict[str, Any]
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
            return [], "", str(exc)
    return [p.name for p in written], f"∂L/∂{deepest} with the final gradients", None


def _compare_with_baselines(s: Any, fit_train: Any, fit_test: Any) -> dict[str, Any]:
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


def _compare_classifiers(s: Any, fit_train: Any, fit_test: Any) -> dict[str, Any]:
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


def _strict_json(value: dict[str, Any], name: str) -> str:
    """``value`` as strict JSON (:func:`graphbp.io.dumps_strict`).

    Raises:
        NonFiniteError: naming the first entry that is NaN or infinite.
    """
    from graphbp.io import dumps_strict

    try:
        return dumps_strict(value)
    except ValueError as exc:
        raise NonFiniteError(f"{name}: {exc}; the run produced no finite value") from None


def _fit_to_data(net: Any, path: Path, features: int, targets: int) -> Any:
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
    try:
        fitted = Network(graph)
        prediction(fitted)  # the output node, checked against y's shape
        return fitted
    except GraphbpError as exc:
        raise GraphFileError(
            f"{path}: with 'x' of {features} feature and 'y' of {targets} target column(s) "
            f"from the data: {exc}"
        ) from exc


# ---------------------------------------------------------------------------------- predict


def _predict(args: argparse.Namespace) -> int:
    """Predict the rows of a CSV file with a model folder; write the target's column (and,
    with --proba, a classifier's probabilities)."""
    import numpy as np

    from graphbp.io import write_file
    from graphbp.model import load

    output = _prediction_file(args.output, args.data, args.model)
    model = load(args.model, args.backend, args.dtype)
    if args.proba and model.classes is None:
        raise InputError(
            f"--proba needs a classifier; {args.model} predicts {model.target!r} by regression"
        )
    rows, target = model.csv_rows(args.data)
    predicted = model.predict(rows)
    header, table = [spreadsheet_safe(model.target)], [[f"{v!r}" for v in predicted.tolist()]]
    if args.proba and model.classes is not None:
        header += [f"proba_{c}" for c in model.classes]
        table += [[f"{v!r}" for v in p] for p in model.predict_proba(rows).T.tolist()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes a name holding , " or a newline
    writer.writerow(header)
    writer.writerows(zip(*table, strict=True))
    text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        write_file(output, text.encode(), args.output)
        print(f"wrote {args.output} ({counted(len(predicted), 'row')})", file=sys.stderr)
    known = np.zeros(len(rows), bool) if target is None else ~np.isnan(target)
    if target is not None and known.any():  # say how well the model does where it is known
        score = _score(model, target[known], predicted[known])
        some = "" if known.all() else f"{int(known.sum())} of "
        which = "the row" if len(known) == 1 else f"the {len(known)} rows"
        print(
            f"graphbp predict: {score} on {some}{which} of {args.data} (target "
            f"{model.target!r} in its own units{'' if known.all() else ', where it is given'})",
            file=sys.stderr,
        )
    return 0


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet (CSV injection)."""


def spreadsheet_safe(name: str) -> str:
    """A column name for a CSV header that a spreadsheet shows as text: one that starts as a
    formula would (``=HYPERLINK(...)``, ``-x``) gets a leading apostrophe, as OWASP advises."""
    return f"'{name}" if name.startswith(FORMULA_START) else name


def _score(model: Any, y: Any, predicted: Any) -> str:
    """Accuracy, or R² (defined on 2 rows or more, of targets not all equal) and MSE."""
    import numpy as np

    from graphbp.datasets import r2_score

    if model.classes is not None:
        return f"accuracy {float(np.mean(predicted == y)):.4f}"
    with np.errstate(over="ignore", invalid="ignore"):  # far-off predictions: an MSE of inf
        mse = float(np.mean((predicted - y) ** 2))
        if len(y) < 2 or (y == y[0]).all():
            return f"MSE {mse:.6g}, R² undefined (it needs 2 or more rows whose targets differ)"
        return f"R² {r2_score(y[:, None], predicted[:, None]):.4f}, MSE {mse:.6g}"


def _prediction_file(text: str, data: Path, model: Path) -> Path | None:
    """The file ``-o`` names (None: ``-``, standard output), checked before any work: it may
    not exist as anything but a regular file (a symlink to one is followed), nor be the
    input CSV, nor lie inside the model folder.

    Raises:
        InputError: naming the path and why.
    """
    if text == "-":
        return None
    if not text.strip():
        raise InputError("-o names no file; give a file name, or - for standard output")
    path = Path(os.path.realpath(text))
    hop = os.path.abspath(text)
    # /dev/stdout, /proc/self/fd/1, a link to one, a path through a link to /proc/self/fd:
    # each link on the way, then the path's folder with every link in it resolved
    for _ in range(40):
        if _streams(hop):
            break
        if not os.path.islink(hop):
            hop = os.path.realpath(os.path.dirname(os.path.abspath(text)))
            break
        hop = os.path.abspath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
    if _streams(hop):
        raise InputError(
            f"-o {text}: is a device or a stream, not a regular file; use -o - for "
            "standard output, or name a file"
        )
    if os.path.lexists(path) and not path.is_file():
        kind = "a folder" if path.is_dir() else "a pipe, device or socket"
        raise InputError(
            f"-o {text}: is {kind}, not a regular file; name a file, or - for standard output"
        )
    if path == Path(os.path.realpath(data)):
        raise InputError(f"-o {text}: is the input CSV {data}; write the predictions elsewhere")
    if path.is_relative_to(os.path.realpath(model)):
        raise InputError(f"-o {text}: lies inside the model folder {model}; write elsewhere")
    return path


def _streams(path: str) -> bool:
    """Whether ``path`` lies in /dev or /proc, where names are devices and streams."""
    return Path(path).is_relative_to("/dev") or Path(path).is_relative_to("/proc")


# --------------------------------------------------------------------------- render, explain


def _network(path: Path | None) -> Any:
    """The network in ``path``, or the seed network at the size ``graphbp train`` uses."""
    from graphbp import Network, seed_network

    if path is not None:
        return Network.from_json(path)
    return Network(seed_network(10, int(EXAMPLE_DEFAULTS["diabetes"]["hidden"]), 1))


def _wrt(net: Any, text: str | None) -> Hashable:
    """The parameter ``--wrt`` names: the str, or an int node name written in digits."""
    if text is None or text in net.graph:
        return text
    try:
        number = int(text)
    except ValueError:
        return text
    return number if number in net.graph else text


def _render(args: argparse.Namespace) -> int:
    from graphbp.diagram import write_diagram

    net = _network(args.graph)
    options = {"max_paths": args.max_paths, "scopes": args.scopes, "rankdir": args.rankdir}
    path = write_diagram(net, args.output, _wrt(net, args.wrt), **options)
    print(f"wrote {path}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from graphbp.chain import Flow, chain_rule, explain

    net = _network(args.graph)
    flow = Flow(net)  # one walk of the graph serves both
    print(explain(net, flow))
    if args.wrt is not None:
        rule = chain_rule(net, _wrt(net, args.wrt), flow=flow)
        print(f"\n{rule.text}\n{rule.latex}")
    return 0


# ------------------------------------------------------------------------------ ops, check


def _ops(args: argparse.Namespace) -> int:
    from graphbp.op import LEAVES
    from graphbp.registry import backend_provider, backends, load_all_ops, op_provider

    loaded = load_all_ops()
    rows = [("op", "label", "local derivatives ∂out/∂operandᵢ", "package")]
    rows += [
        (leaf, leaf, "(leaf: a value entering the graph)", "graphbp (core)") for leaf in LEAVES
    ]
    rows += [
        (name, op.label or name, ", ".join(op.local_grads), op_provider(name))
        for name, op in loaded.items()
    ]
    print(table(rows))
    print()
    backend_rows = [(b, backend_provider(b), _backend_status(b)) for b in backends()]
    print(table([("backend", "package", "status"), *backend_rows], cell=MAX_STATUS))
    return 0


def _backend_status(name: str) -> str:
    """Whether backend ``name`` loads, and if not, why and how to install it."""
    try:
        get_backend(name)
    except BackendNotInstalledError as exc:
        return f"not installed: {_one_line(exc, MAX_STATUS)}"
    except PluginError as exc:
        return f"broken: {_one_line(exc, MAX_STATUS)}"
    return "installed"


MAX_CELL = 60
"""Cells of ``graphbp ops`` wider than this many columns are cut, with an ellipsis (labels
and local-derivative texts are a plugin's: any length)."""
MAX_STATUS = 200
"""A backend's status (why it does not load and how to install it) is cut beyond this."""


def table(rows: Sequence[Sequence[str]], cell: int = MAX_CELL) -> str:
    """``rows`` as columns two spaces apart, each as wide as its widest cell as a terminal
    shows it (:func:`display_width`); control characters in a cell are shown escaped, and
    a cell wider than ``cell`` columns is cut there, with an ellipsis."""
    cells = [[cut(visible(str(text)), cell) for text in row] for row in rows]
    widths = [max(display_width(row[k]) for row in cells) for k in range(len(cells[0]))]
    lines = []
    for row in cells:
        padded = [
            cell + " " * (w - display_width(cell)) for cell, w in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def display_width(text: str) -> int:
    """The columns a terminal gives ``text``: two for a wide East Asian character (and for
    a character that U+FE0F asks to be drawn as an emoji); none for a mark drawn on the
    character before it (the hat of ŷ written as y and U+0302, Thai vowel and tone marks:
    categories Mn and Me), a format character (Cf: zero-width space and joiner, U+FE0F) or a
    Hangul vowel or final consonant jamo, which joins the syllable before it; one for
    anything else."""
    width, last = 0, 0
    for c in text:
        w = _char_width(c)
        if c == "\ufe0f" and last == 1:  # emoji presentation: ❤ is 1 column, ❤️ 2
            w = 1
        width += w
        last = w if w else last
    return width


def _char_width(c: str) -> int:
    if unicodedata.category(c) in ("Mn", "Me", "Cf") or "\u1160" <= c <= "\u11ff":
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def cut(text: str, columns: int) -> str:
    """``text`` if it takes at most ``columns`` terminal columns, else its start and ``…``
    in that many (the marks on its last character kept with it)."""
    if display_width(text) <= columns:
        return text
    used = 0
    for k, c in enumerate(text):
        used += _char_width(c)
        if used > columns - 1:
            return text[:k] + "…"
    return text  # not reached: the text is wider than ``columns``


def _check(args: argparse.Namespace) -> int:
    from graphbp import Network, seed_network
    from graphbp.registry import load_all_ops
    from graphbp.testing import (
        check_backends_agree,
        check_network,
        check_op,
        check_op_autodiff,
        installed_backends,
    )

    installed = installed_backends()
    one = args.backend or default_backend()  # else: every installed backend
    chosen = [one] if one else installed
    if args.op is not None:
        if args.graph is not None:
            raise InputError(
                f"--op checks the op {args.op!r} alone, so the network {str(args.graph)!r} "
                "would be ignored; drop one of them"
            )
        return _check_one_op(args.op, chosen, "jax" in installed)
    net = Network.from_json(args.graph) if args.graph else Network(seed_network(3, 4, 2))
    ops = list(load_all_ops().values())
    for backend in chosen:
        for op in ops:
            print(check_op(op, backend))
        print(check_network(net, backend))
    print(f"all gradients agree with float64 central differences on {', '.join(chosen)}")
    if "jax" in chosen:
        for op in ops:
            print(check_op_autodiff(op))
        print(check_backends_agree(net, ("numpy", "jax")))
        print("plugin vjps agree with jax.vjp; numpy and jax agree on the network")
    return 0


def _check_one_op(name: str, chosen: list[str], jax_installed: bool) -> int:
    """``graphbp check --op NAME``: one op on each chosen backend, and against jax.vjp."""
    from graphbp.registry import get_op, op_provider
    from graphbp.testing import check_op, check_op_autodiff

    op = get_op(name)  # an unknown name is a one-line error naming the known ones
    for backend in chosen:
        print(check_op(op, backend))
    if jax_installed:
        print(check_op_autodiff(op))
    oracle = " and jax.vjp" if jax_installed else ""
    print(
        f"op {name!r} ({op_provider(name)}): its vjp agrees with float64 central differences "
        f"on {', '.join(chosen)}{oracle}"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from graphbp.bench import run
    from graphbp.testing import installed_backends

    one = args.backend or default_backend()
    if one:
        get_backend(one)  # an unknown or missing backend is a one-line error
    run(quick=args.quick, backends=[one] if one else installed_backends())
    return 0


if __name__ == "__main__":
    sys.exit(main())
