"""The command line: graphbp train | predict | import | render | explain | ops | check | bench.

``graphbp --version`` prints the version; ``python -m graphbp`` runs the same command line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import os
import re
import sys
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from graphbp import __version__
from graphbp.chain import MAX_PATHS, MAX_PATHS_LIMIT, counted, symbol
from graphbp.errors import (
    BackendNotInstalledError,
    GradientCheckError,
    GraphbpError,
    InputError,
    NonFiniteError,
    PluginError,
    exc_text,
    show,
    visible,
)
from graphbp.optim import OPTIMIZERS
from graphbp.registry import default_backend, get_backend
from graphbp.render import ENGINES, FULL_NODES, SCOPES
from graphbp.run import DEFAULTS, EXAMPLE_DEFAULTS
from graphbp.text import table

if TYPE_CHECKING:
    import numpy as np

    from graphbp.check_report import CheckReport
    from graphbp.graph import Network
    from graphbp.model import Model
    from graphbp.op import Op


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
    """The message of ``exc`` on one line, at most ``limit`` characters (``exc_text``)."""
    return exc_text(exc, limit)


def _check_arguments(args: argparse.Namespace) -> None:
    """What the options mean together: one line each, before any file is read."""
    if args.command == "train":
        if args.target is not None and args.data is None:
            raise InputError(
                f"--target {args.target!r} names a column of the --data CSV file, but no --data "
                "was given (it would be ignored); add --data FILE or drop --target"
            )
        if args.data is not None and "example" in getattr(args, "given", set()):
            raise InputError(
                f"--example {args.example} and --data both name the data to train on (--data "
                "would be used and --example ignored); drop one of them"
            )
        if args.target is None:
            args.target = "target"
        _check_processes(args)


def _check_processes(args: argparse.Namespace) -> None:
    """--coordinator, --num-processes and --process-id: all three or none, and consistent."""
    options = {
        "--coordinator": args.coordinator,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    given = [o for o, v in options.items() if v is not None]
    if given and len(given) < len(options):
        missing = " and ".join(o for o in options if o not in given)
        raise InputError(
            f"{' and '.join(given)} without {missing}: a run across processes needs all three "
            "(--coordinator HOST:PORT --num-processes N --process-id I, I from 0 to N-1, the "
            f"same command in every process); add {missing} or drop {' and '.join(given)}"
        )
    if not given and "timeout" in getattr(args, "given", set()):
        raise InputError(
            "--timeout without --coordinator: it is how long a run across processes waits for "
            "them all to join; drop --timeout or add --coordinator, --num-processes and "
            "--process-id"
        )
    if given and args.process_id >= args.num_processes:
        raise InputError(
            f"--process-id {args.process_id} with --num-processes {args.num_processes}: the "
            f"processes are numbered 0 to {args.num_processes - 1}; give each its own number"
        )


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


def process_id(text: str) -> int:
    """An argparse type: a process number, a whole number from 0 to :data:`MAX_COUNT` − 1."""
    value = int(text)
    if not 0 <= value < MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"a process number is from 0 to {MAX_COUNT - 1:,}, got {_number(text)}"
        )
    return value


_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):(?P<port>[0-9]+)")


def coordinator_address(text: str) -> str:
    """An argparse type: ``HOST:PORT`` (a name, an IPv4 address or a bracketed IPv6 one, and
    a port from 1 to 65535), as ``jax.distributed.initialize`` takes it."""
    match = _ADDRESS.fullmatch(text)
    if match is None or len(match["host"]) > 253:
        raise argparse.ArgumentTypeError(
            f"must be HOST:PORT (e.g. localhost:12345, 10.0.0.1:12345 or [::1]:12345), got "
            f"{show(text, 80)}"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port of {show(text, 80)} must be from 1 to 65535, got {_number(match['port'])}"
        )
    return text


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


def top_int(text: str) -> int:
    """--top: an integer from 1 to MAX_PATHS_LIMIT (the strongest paths to find)."""
    value = int(text)
    if not 1 <= value <= MAX_PATHS_LIMIT:
        raise argparse.ArgumentTypeError(
            f"finds the 1 to {MAX_PATHS_LIMIT:,} strongest paths, got {_number(text)}"
        )
    return value


TOP_HELP = (
    "find the K paths from the loss to --wrt of the largest contribution norm, with their "
    "share of the gradient, at the parameters and inputs of the network's folder "
    "(params.npz, inputs.npz), else at initial parameters (seed 0) and standard-normal inputs"
)


def argnum_list(text: str) -> tuple[int, ...]:
    """An argparse type: ``--argnums``, an int or comma-separated ints, as jax.grad's."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an argument number or numbers separated by commas (0 or 0,2), got "
            f"{_number(text)}"
        ) from None
    if len(set(numbers)) != len(numbers):
        raise argparse.ArgumentTypeError(f"names an argument twice: {_number(text)}")
    return numbers


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


GRAPH_HELP = (
    "a node-link JSON network, or a folder holding one as network.json (what graphbp import "
    "or graphbp train writes) (default: the seed network)"
)


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
        help="a node-link JSON network with inputs 'x' and 'y', or a folder holding one as "
        "network.json (default: the seed network, two σ layers of --hidden units)",
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
    _backend_options(
        train,
        "$GRAPHBP_BACKEND, else numpy; with --resume, the model's if installed",
        "float64; with --resume, the model's",
    )
    train.add_argument(
        "--devices",
        type=positive_int,
        help="jax: split each batch across this many devices, data parallel (default: one "
        "device; with --coordinator, every device of every process)",
    )
    train.add_argument(
        "--coordinator",
        type=coordinator_address,
        metavar="HOST:PORT",
        help="train across processes with jax.distributed (jax backend; with --num-processes "
        "and --process-id): the address where process 0 listens and the others connect; every "
        "process runs the same command and loads the whole data, and each feeds its own "
        "devices their rows of every batch; only process 0 prints and writes --out (default: "
        "none, this process alone)",
    )
    train.add_argument(
        "--num-processes",
        type=positive_int,
        metavar="N",
        help="with --coordinator: how many processes take part (default: none, one process)",
    )
    train.add_argument(
        "--process-id",
        type=process_id,
        metavar="I",
        help="with --coordinator: this process's number, 0 to N-1; process 0 prints and "
        "writes the outputs (default: none, one process)",
    )
    train.add_argument(
        "--timeout",
        type=positive_int,
        metavar="SECONDS",
        default=300,
        action=_Given,
        help="with --coordinator: how long each process waits for all of them to join "
        "(default: 300); past it, jax itself ends the process (SIGABRT, exit status 134, a "
        "DEADLINE_EXCEEDED RegisterTask trace on stderr), not graphbp",
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
    _backend_options(
        predict, "$GRAPHBP_BACKEND, else the model's if installed, else numpy", "the model's"
    )
    predict.set_defaults(run=_predict)

    imp = sub.add_parser(
        "import",
        help="trace a JAX loss function into a network folder that every command takes",
    )
    imp.add_argument(
        "function",
        metavar="MODULE:FUNCTION",
        help="the function computing a scalar loss: a module found from the current folder "
        "first (as python -m finds it: a random.py there, not Python's random) or a .py "
        "file, a colon, and its name (model:loss, models/mlp.py:loss, model:Net.loss)",
    )
    imp.add_argument(
        "--args",
        type=Path,
        required=True,
        metavar="ARGS.npz",
        help="the example arguments, an .npz (np.savez) with one array per parameter of the "
        "function (x, y) or per leaf of a dict or list argument (params.W1, layers.0.w) "
        "(required)",
    )
    imp.add_argument(
        "--argnums",
        type=argnum_list,
        default="0",
        metavar="N[,N...]",
        help="which arguments hold the parameters to train, as jax.grad's argnums; the other "
        "arguments become the network's inputs",
    )
    imp.add_argument(
        "-o",
        "--output",
        type=_out_folder,
        default=Path("graphbp-import"),
        metavar="DIR",
        help="the folder to write network.json, params.npz and inputs.npz into, replaced as "
        "a whole (default: graphbp-import)",
    )
    imp.set_defaults(run=_import)
    # --argnums -2,2 is a value, as argparse takes -2 (not an unknown option)
    imp._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+(\s*,\s*-?\d+)+$")

    render = sub.add_parser(
        "render", help="draw a network and the chain-rule paths from the loss to a parameter"
    )
    render.add_argument("graph", nargs="?", type=Path, help=GRAPH_HELP)
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
    render.add_argument("--top", type=top_int, metavar="K", help=TOP_HELP + " (default: off)")
    render.add_argument(
        "--scopes",
        choices=SCOPES,
        default="auto",
        help=f"auto: every node (a cluster per scope) up to {FULL_NODES} nodes and short "
        "edges, else the outline (scopes one box each, repeated blocks folded); cluster: every "
        "node, whatever the size (dot at bounded effort); collapse: the outline; ignore: every "
        "node, as if unscoped (default: auto)",
    )
    render.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="the Graphviz layout: dot (layered, its effort bounded on large drawings and "
        "long edges), sfdp (force-directed), or auto: sfdp for dense or long-edged outlines, "
        "else dot (default: auto)",
    )
    render.add_argument(
        "--expand",
        action="append",
        metavar="SCOPE",
        help="open this scope (or group id) in the outline drawing; repeatable (default: "
        "groups opened while the drawing stays small, a fold kept as one box)",
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
    explain.add_argument("graph", nargs="?", type=Path, help=GRAPH_HELP)
    explain.add_argument(
        "--wrt", help="also write out the chain rule for this parameter (default: none)"
    )
    explain.add_argument("--top", type=top_int, metavar="K", help=TOP_HELP + " (default: off)")
    explain.set_defaults(run=_explain)

    ops = sub.add_parser("ops", help="list the ops and backends and who provides them")
    ops.set_defaults(run=_ops)

    check = sub.add_parser(
        "check",
        help="gradient-check a network and the ops it uses (default: the seed network and every "
        "op), or one op",
    )
    check.add_argument("graph", nargs="?", type=Path, help=GRAPH_HELP)
    check.add_argument(
        "--op",
        metavar="NAME",
        help="check this op alone (on each backend checked, and against jax.vjp where jax is "
        "installed) (default: none, the network's ops and the network)",
    )
    check.add_argument(
        "--backend",
        type=backend_name,
        help="check one backend (default: $GRAPHBP_BACKEND, else every installed one); "
        "with jax, plugin vjps are also checked against jax.vjp and NumPy against JAX",
    )
    check.add_argument(
        "--render",
        type=Path,
        metavar="FILE",
        help="first draw the network into FILE with every edge coloured by whether its op's "
        "vjp, at the network's values, agrees with float64 central differences (and jax.vjp "
        "where installed): green agree, red wrong, grey unchecked; the extension picks the "
        "format: .html .svg .png .pdf .dot (default: none)",
    )
    check.set_defaults(run=_check)

    bench = sub.add_parser("bench", help="time graphbp against hand-written NumPy and JAX")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, smaller chain")
    bench.add_argument(
        "--render",
        action="store_true",
        help="time drawings instead: SVG and HTML of 10,000-node networks and the collapsed "
        "drawing of a 100,000-node chain, against 10 s and 10 MB (--quick: smaller ones)",
    )
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


def _backend_options(p: argparse.ArgumentParser, backend_default: str, dtype_default: str) -> None:
    """--backend and --dtype, with their defaults as the command sets them."""
    from graphbp.registry import backends

    installed = backends()
    p.add_argument(
        "--backend",
        type=backend_name,
        default=None,
        metavar="{" + ",".join(installed) + "}",
        help=f"the backend to compute on (default: {backend_default})",
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        help=f"the floating-point type parameters and data are computed in (default: "
        f"{dtype_default})",
    )


# ------------------------------------------------------------------------------------ train


def _out_folder(text: str) -> Path:
    """--out as a path; an empty one would be Path("."), the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a folder, got {text!r}")
    return Path(text)


def _train(args: argparse.Namespace) -> int:
    from graphbp.run import train

    return train(args)


# ----------------------------------------------------------------------------------- import


def _import(args: argparse.Namespace) -> int:
    from graphbp.import_cli import run

    return run(args)


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
        some = "" if known.all() else f"{int(known.sum()):,} of "
        which = "the row" if len(known) == 1 else f"the {len(known):,} rows"
        print(
            f"graphbp predict: {score} on {some}{which} of {args.data} (target "
            f"{model.target!r}{'' if model.classes else ' in its own units'}"
            f"{'' if known.all() else ', where it is given'})",
            file=sys.stderr,
        )
    return 0


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet (CSV injection)."""


def spreadsheet_safe(name: str) -> str:
    """A column name for a CSV header that a spreadsheet shows as text: one that starts as a
    formula would (``=HYPERLINK(...)``, ``-x``) gets a leading apostrophe, as OWASP advises."""
    return f"'{name}" if name.startswith(FORMULA_START) else name


def _score(model: Model, y: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]) -> str:
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


def _network(path: Path | None) -> Network:
    """The network in ``path``, or the seed network at the size ``graphbp train`` uses."""
    from graphbp import Network, seed_network
    from graphbp.folder import read_network

    if path is not None:
        return read_network(path)
    return Network(seed_network(10, int(EXAMPLE_DEFAULTS["diabetes"]["hidden"]), 1))


def _wrt(net: Network, text: str | None) -> Hashable:
    """The parameter ``--wrt`` names: the str, or an int node name written in digits."""
    if text is None or text in net.graph:
        return text
    try:
        number = int(text)
    except ValueError:
        return text
    return number if number in net.graph else text


def _render(args: argparse.Namespace) -> int:
    from graphbp.diagram import diagram_format, write_diagram

    net = _network(args.graph)
    diagram_format(args.output, args.top)  # a format --top cannot draw fails before its values
    options: dict[str, Any] = {
        "max_paths": args.max_paths,
        "scopes": args.scopes,
        "rankdir": args.rankdir,
    }
    if args.engine != "auto":
        options["engine"] = args.engine
    if args.expand:
        options["expanded"] = args.expand
    if args.top is not None:
        options.update(top=args.top, values=_top_values(args, net))
    path = write_diagram(net, args.output, _wrt(net, args.wrt), **options)
    print(f"wrote {path}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from graphbp.chain import Flow, chain_rule, explain
    from graphbp.render import share_text

    net = _network(args.graph)
    flow = Flow(net)  # one walk of the graph serves both
    # The chain rule first: a --wrt that names no parameter fails before anything is printed.
    wrt = _wrt(net, args.wrt)
    values = None if args.top is None else _top_values(args, net)
    rule = None if wrt is None else chain_rule(net, wrt, values, flow=flow, top=args.top)
    print(explain(net, flow))
    if rule is not None:
        print(f"\n{rule.text}\n{rule.latex}")
    if rule is not None and rule.top is not None:
        how = "exact" if rule.exact else "estimated (see chain_rule's exact)"
        print(f"\nthe {len(rule.paths):,} strongest of {counted(rule.path_count, 'path')}, {how}:")
        for k, path in enumerate(rule.paths, start=1):
            print(f"  path {k}: {share_text(path.share)} of ‖∂L/∂{symbol(wrt).text}‖")
    return 0


def _top_values(args: argparse.Namespace, net: Network) -> dict[Hashable, Any]:
    """Every node's value for --top: at the folder's params.npz and inputs.npz where it
    holds them, else at initial parameters (seed 0) and standard-normal inputs (seed 0);
    says which on standard output.

    Raises:
        InputError: --top without --wrt.
        GraphError: --wrt names no parameter with a path to the loss.
    """
    import numpy as np

    from graphbp.chain import chain_rule
    from graphbp.folder import INPUTS, PARAMS, folder_values
    from graphbp.testing import random_inputs

    if args.wrt is None:
        raise InputError(
            f"--top {args.top} finds the strongest paths from the loss down to a parameter: "
            "add --wrt NAME"
        )
    chain_rule(net, _wrt(net, args.wrt), max_factors=0)  # a bad --wrt fails first
    params, inputs = (None, None) if args.graph is None else folder_values(args.graph, net)
    prog = net.compile("numpy", "float64")
    at = [
        "initial parameters (seed 0)" if params is None else str(args.graph / PARAMS),
        "standard-normal inputs (seed 0)" if inputs is None else str(args.graph / INPUTS),
    ]
    print(f"the paths' strengths at {' and '.join(at)}")
    if params is None:
        params = prog.init(seed=0)
    if inputs is None:
        inputs = random_inputs(net, np.random.default_rng(0))
    values: dict[Hashable, Any] = prog.forward(params, inputs, net.order)
    return values


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


MAX_STATUS = 200
"""A backend's status (why it does not load and how to install it) is cut beyond this."""


def _check(args: argparse.Namespace) -> int:
    from graphbp import Network, seed_network
    from graphbp.folder import INPUTS, PARAMS, folder_values, read_network
    from graphbp.op import runs_on
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
        if args.render is not None:
            raise InputError(
                f"--render draws a network's check, and --op {args.op!r} checks an op alone; "
                "drop one of them"
            )
        return _check_one_op(args.op, chosen, "jax" in installed)
    net = read_network(args.graph) if args.graph else Network(seed_network(3, 4, 2))
    # the folder's values, where it holds them; else initialised parameters, random inputs
    params, inputs = (None, None) if args.graph is None else folder_values(args.graph, net)
    given = [f for f, v in ((PARAMS, params), (INPUTS, inputs)) if v is not None]
    if given:
        print(f"the network's gradients at {' and '.join(str(args.graph / f) for f in given)}")
    if args.render is not None:  # on NumPy if checked (the plugins' rules run on JAX too,
        # against jax.vjp, where jax is installed)
        drawn = "numpy" if "numpy" in chosen else chosen[0]
        report = check_network(net, drawn, params=params, inputs=inputs, report=True)
        _check_drawn(report, report.write(args.render))
    # a network's own ops (one op each, in network order); with none given, every op
    ops = list(load_all_ops().values()) if args.graph is None else _ops_of(net)
    for backend in chosen:
        for op in ops:
            if runs_on(op, backend):  # an op for one backend only (opaque: jax) is not
                print(check_op(op, backend))  # checked on the others
        print(check_network(net, backend, params=params, inputs=inputs))
    print(f"all gradients agree with float64 central differences on {', '.join(chosen)}")
    if "jax" in chosen:
        for op in ops:
            print(check_op_autodiff(op))
        print(check_backends_agree(net, ("numpy", "jax"), params=params, inputs=inputs))
        print("plugin vjps agree with jax.vjp; numpy and jax agree on the network")
    return 0


def _check_drawn(report: CheckReport, path: Path) -> None:
    """Print what ``graphbp check --render`` drew into ``path``; a GradientCheckError
    naming the wrong ops (or the wrong gradients) if anything is wrong."""
    print(f"wrote {path}: {report.summary()}")
    for line in report.lines():
        print(line)
    if report.wrong_ops:
        ops = "; ".join(
            f"op {op!r} at node{'s' if len(nodes) > 1 else ''} {', '.join(map(show, nodes))}"
            for op, nodes in report.wrong_ops.items()
        )
        first = next(iter(report.wrong_ops))
        raise GradientCheckError(
            f"wrong vjp: {ops}; its edges are red in {path}; fix the vjp and check it alone "
            f"with `graphbp check --op {first}`"
        )
    if report.failed:
        unjudged = report.unjudged()
        why = (
            f"no op's vjp was found wrong at its node's values, but {unjudged} (grey in "
            f"{path}): the difference may come from one of those, or from the network as a "
            "whole"
            if unjudged
            else f"every op's vjp agrees with central differences at its node's values (drawn "
            f"in {path}), so the difference comes from the network as a whole (a non-smooth "
            "point such as relu at 0)"
        )
        raise GradientCheckError(f"{next(iter(report.failed.values()))}; {why}")


def _ops_of(net: Network) -> list[Op]:
    """The ops a network's nodes use, each once, in the order of their first node."""
    ops: dict[str, Op] = {}
    for op in net.ops.values():
        ops.setdefault(op.name, op)
    return list(ops.values())


def _check_one_op(name: str, chosen: list[str], jax_installed: bool) -> int:
    """``graphbp check --op NAME``: one op on each chosen backend, and against jax.vjp."""
    from graphbp.op import runs_on
    from graphbp.registry import get_op, op_provider
    from graphbp.testing import check_op, check_op_autodiff

    op = get_op(name)  # an unknown name is a one-line error naming the known ones
    chosen = [b for b in chosen if runs_on(op, b)] or chosen  # else check_op says why not
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

    if args.render:
        from graphbp.bench_render import run_render

        run_render(quick=args.quick)
        return 0

    one = args.backend or default_backend()
    if one:
        get_backend(one)  # an unknown or missing backend is a one-line error
    run(quick=args.quick, backends=[one] if one else installed_backends())
    return 0


if __name__ == "__main__":
    sys.exit(main())
