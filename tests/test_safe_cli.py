"""Issue 10, item 9: the command line never prints a traceback. Bad input is one line on stderr
and exit status 2 with nothing written; a closed pipe ends it quietly; an unexpected exception
is one line that says how to see the traceback."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import graphbp

import graphbp.cli as cli
from graphbp.cli import MAX_COUNT, MAX_SEED, learning_rate

HUGE = "1" + "0" * 30  # 10**30 spelled as digits
VERY_HUGE = "9" * 4000  # as many digits as int() still reads

BAD_TRAIN_ARGS = {
    "epochs in float notation": (["--epochs", "1e30"], [r"argument --epochs: invalid", "1e30"]),
    "epochs 10**30": (["--epochs", HUGE], [f"argument --epochs: must be at most {MAX_COUNT:,}"]),
    "epochs of 4000 digits": (["--epochs", VERY_HUGE], ["must be at most", "(4000 characters)"]),
    "epochs 0": (["--epochs", "0"], ["argument --epochs: must be at least 1, got 0"]),
    "batch size 0": (["--batch-size", "0"], ["argument --batch-size: must be at least 1, got 0"]),
    "batch size 10**30": (["--batch-size", HUGE], ["argument --batch-size: must be at most"]),
    "hidden 10**30": (["--hidden", HUGE], ["argument --hidden: must be at most"]),
    "devices 10**30": (["--devices", HUGE], ["argument --devices: must be at most"]),
    "negative lr": (["--lr", "-1"], ["argument --lr: learning rate must be positive, got -1.0"]),
    "zero lr": (["--lr", "0"], ["argument --lr: learning rate must be positive, got 0.0"]),
    "NaN lr": (["--lr", "nan"], ["argument --lr: learning rate must be positive, got nan"]),
    "-inf lr": (["--lr=-inf"], ["argument --lr: learning rate must be positive, got -inf"]),
    "lr not a number": (["--lr", "fast"], ["argument --lr: invalid learning_rate value: 'fast'"]),
    "seed -1": (["--seed", "-1"], [f"argument --seed: a seed is from 0 to {MAX_SEED:,}, got -1"]),
    "seed 2**32": (["--seed", str(2**32)], [f"a seed is from 0 to {MAX_SEED:,}, got {2**32}"]),
    "seed 1.5": (["--seed", "1.5"], ["argument --seed: invalid seed value: '1.5'"]),
    "empty backend": (["--backend", ""], ["argument --backend: name a backend: ", "numpy"]),
    "blank backend": (["--backend", " "], ["argument --backend: name a backend: "]),
    "unknown backend": (["--backend", "nosuch"], ["backend 'nosuch' is not installed"]),
    "bad dtype": (["--dtype", "float16"], ["argument --dtype: invalid choice: 'float16'"]),
    "unknown example": (["--example", "iris"], ["argument --example: invalid choice: 'iris'"]),
    "unknown optimizer": (["--optimizer", "lbfgs"], ["argument --optimizer: invalid choice"]),
    "target without data": (
        ["--target", "y"],
        ["--target 'y' names a column of the --data CSV file, but no --data was given"],
    ),
    "example with data": (
        ["--example", "digits", "--data", "any.csv"],
        ["--example digits and --data both name the data to train on", "drop one of them"],
    ),
    "devices on numpy": (
        ["--backend", "numpy", "--devices", "2"],
        ["the numpy backend takes no option devices=2"],
    ),
    "unknown option": (["--epoch-count", "3"], ["graphbp: error: unrecognized arguments: --epoch"]),
    "newline in a value": (["--backend", "a\nb"], [r"backend 'a\nb' is not installed"]),
    "terminal escape in a path": (["--data", "\x1b[31mred.csv"], [r"\x1b[31mred.csv: cannot"]),
}


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _one_line(run: subprocess.CompletedProcess[str], status: int) -> str:
    assert run.returncode == status, run.stderr
    assert "Traceback" not in (run.stdout or "") + run.stderr
    assert "\x1b" not in run.stderr  # nothing a terminal would obey
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "names"), BAD_TRAIN_ARGS.values(), ids=BAD_TRAIN_ARGS)
def test_bad_train_arguments_are_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    before = _files(tmp_path)
    line = _one_line(graphbp("train", *args, cwd=tmp_path), 2)
    assert line.startswith(("graphbp train: error: ", "graphbp: error: ")), line
    assert len(line) < 500, line
    for name in names:
        assert name in line, line
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["check", "--backend", ""], ["graphbp check: error: argument --backend: name a backend"]),
        (["bench", "--backend", ""], ["graphbp bench: error: argument --backend: name a backend"]),
        (["nosuch"], ["graphbp: error: argument command: invalid choice: 'nosuch'"]),
        (["explain", "missing.json"], ["graphbp explain: error: missing.json"]),
        (["explain", "--wrt", "nosuch"], ["graphbp explain: error: ", "'nosuch'"]),
    ],
)
def test_other_commands_bad_arguments_are_one_line_exit_2(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    before = _files(tmp_path)
    line = _one_line(graphbp(*args, cwd=tmp_path), 2)
    for name in names:
        assert name in line, line
    assert _files(tmp_path) == before


def test_the_parser_takes_a_huge_or_infinite_lr_which_training_then_reports() -> None:
    assert learning_rate("1e6") == 1e6
    assert learning_rate("inf") == math.inf
    assert learning_rate(" 1e999 ") == math.inf
    assert learning_rate("0.003") == 0.003


def test_bounds_are_inclusive() -> None:
    parser = cli._parser()
    args = parser.parse_args(["train", "--seed", str(MAX_SEED), "--epochs", str(MAX_COUNT)])
    assert (args.seed, args.epochs) == (MAX_SEED, MAX_COUNT)
    assert parser.parse_args(["train", "--seed", "0"]).seed == 0
    # a huge but representable width reaches the graph, whose validation names the node
    assert parser.parse_args(["train", "--hidden", "100000000"]).hidden == 100_000_000


# ------------------------------------------------------------------------------ broken pipes


def _env(buffered: bool) -> dict[str, str]:
    """This environment, with Python's standard output block-buffered or unbuffered."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return env if buffered else {**env, "PYTHONUNBUFFERED": "1"}


def _closed_pipe_run(*args: str, cwd: Path, buffered: bool) -> subprocess.CompletedProcess[str]:
    """Run graphbp with its standard output a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE, whatever the timing
    try:
        return subprocess.run(
            [sys.executable, "-m", "graphbp.cli", *args],
            cwd=cwd,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env=_env(buffered),
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", [["ops"], ["explain"], ["explain", "--wrt", "W1"]])
def test_a_closed_pipe_ends_the_run_quietly_with_status_141(
    tmp_path: Path, command: list[str], buffered: bool
) -> None:
    run = _closed_pipe_run(*command, cwd=tmp_path, buffered=buffered)
    assert run.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert run.returncode == 141


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_help_into_a_closed_pipe_is_quiet(tmp_path: Path, buffered: bool) -> None:
    run = _closed_pipe_run("train", "--help", cwd=tmp_path, buffered=buffered)
    assert run.stderr == ""
    assert run.returncode in (0, 141)  # unbuffered, argparse itself ignores the failed write


def _into_head(command: str, cwd: Path, buffered: bool) -> subprocess.CompletedProcess[str]:
    """``graphbp COMMAND | head -1`` in a shell."""
    return subprocess.run(
        f"'{sys.executable}' -m graphbp.cli {command} | head -1",
        shell=True,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(buffered),
    )


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(("command", "first"), [("ops", "op "), ("explain", "12 nodes")])
def test_a_shell_pipeline_into_head_gets_the_first_line_and_no_noise(
    tmp_path: Path, command: str, first: str, buffered: bool
) -> None:
    run = _into_head(command, tmp_path, buffered)
    assert run.returncode == 0
    assert run.stderr == ""
    assert run.stdout.startswith(first) and run.stdout.count("\n") == 1, run.stdout


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_training_piped_into_head_finishes_quietly(tmp_path: Path, buffered: bool) -> None:
    run = _into_head("train --epochs 2 --out run", tmp_path, buffered)
    assert run.stdout.startswith("graphbp train: seed network") and run.stdout.count("\n") == 1
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
    assert "Error" not in run.stderr, run.stderr
    closed = _closed_pipe_run(
        "train", "--epochs", "2", "--out", "run2", cwd=tmp_path, buffered=buffered
    )
    assert closed.returncode == 141
    assert "Traceback" not in closed.stderr and "Error" not in closed.stderr, closed.stderr


def test_a_full_disk_on_standard_output_is_one_line_exit_1(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-m", "graphbp.cli", "ops"],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    line = _one_line(run, 1)
    assert line.startswith("graphbp") and "No space left on device" in line, line


# ------------------------------------------------------------------- the last-resort handler


def _bug(args: object) -> int:
    raise ZeroDivisionError("division by zero\nsecond line")


def test_an_unexpected_exception_is_one_line_naming_it_and_how_to_see_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_ops", _bug)  # a fault injected where a command runs
    for debug in (None, "", "0"):
        if debug is None:
            monkeypatch.delenv("GRAPHBP_DEBUG", raising=False)
        else:
            monkeypatch.setenv("GRAPHBP_DEBUG", debug)
        assert cli.main(["ops"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("graphbp ops: unexpected ZeroDivisionError: division by zero\\nsec")
        assert "set GRAPHBP_DEBUG=1 to see the traceback" in err


def test_graphbp_debug_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_ops", _bug)
    monkeypatch.setenv("GRAPHBP_DEBUG", "1")
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        cli.main(["ops"])


# ----------------------------------------------------- streams the shell may hand over


def test_a_closed_standard_output_keeps_the_exit_status_and_prints_no_traceback(
    tmp_path: Path,
) -> None:
    for args, status in ((["ops"], 0), (["check", "--backend", "nosuch"], 2)):
        done = subprocess.run(  # the child starts with fd 1 closed
            ["sh", "-c", f'"{sys.executable}" -m graphbp.cli {" ".join(args)} >&-'],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == status, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.splitlines()) == (0 if status == 0 else 1), done.stderr


def test_a_legacy_output_encoding_gets_escapes_not_an_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "graphbp.cli", "ops"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
    )
    assert done.returncode == 0, done.stderr
    assert b"\\u2202out/\\u2202operand" in done.stdout  # the ∂ cp1252 lacks, escaped


def test_an_error_quoting_megabytes_of_a_file_is_one_bounded_line(tmp_path: Path) -> None:
    names = [f"{'x' * 130_000}{i}" for i in range(20)]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join("1" * 20) + "\n")
    done = graphbp("train", "--data", "wide.csv", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert len(line) < cli.MAX_MESSAGE + 200 and line.endswith(" characters)")


# --------------------------------------------------- a --graph file that does not fit the data

_AFFINE = {
    "directed": True,
    "graph": {"loss": "L"},
    "nodes": [
        {"id": "x", "op": "input", "shape": [None, 10]},
        {"id": "y", "op": "input"},
        {"id": "W", "op": "param", "shape": [10, 5]},
        {"id": "b", "op": "param", "shape": [5]},
        {"id": "yhat", "op": "affine"},
        {"id": "L", "op": "sse"},
    ],
    "edges": [
        {"source": "x", "target": "yhat", "arg": 0},
        {"source": "W", "target": "yhat", "arg": 1},
        {"source": "b", "target": "yhat", "arg": 2},
        {"source": "yhat", "target": "L", "arg": 0},
        {"source": "y", "target": "L", "arg": 1},
    ],
}


def _variant(change: str) -> dict[str, Any]:
    graph = json.loads(json.dumps(_AFFINE))
    nodes = {n["id"]: n for n in graph["nodes"]}
    if change == "five outputs, y undeclared":
        pass  # the prediction is (batch, 5); diabetes has one target column
    elif change == "x declared 3 wide":
        nodes["x"]["shape"], nodes["W"]["shape"], nodes["b"]["shape"] = [None, 3], [3, 1], [1]
    elif change == "x undeclared, W 3 high":
        del nodes["x"]["shape"]
        nodes["W"]["shape"], nodes["b"]["shape"] = [3, 1], [1]
    elif change == "the output computed from a param alone":
        graph["nodes"] += [{"id": "P", "op": "param", "shape": [1, 1]}, {"id": "Q", "op": "neg"}]
        graph["edges"] += [{"source": "P", "target": "Q", "arg": 0}]
        graph["graph"]["output"] = "Q"
        nodes["W"]["shape"], nodes["b"]["shape"] = [10, 1], [1]
    elif change == "the loss is a param":
        graph["graph"]["loss"] = "W"
        nodes["W"]["shape"] = []
        graph["nodes"] = [n for n in graph["nodes"] if n["id"] not in ("b", "yhat", "L")]
        graph["edges"] = []
    return graph


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("five outputs, y undeclared", "output node 'yhat' (op 'affine') has shape (None, 5)"),
        ("x declared 3 wide", "input 'x' declares shape (None, 3), but the data has 10 feature"),
        (
            "x undeclared, W 3 high",
            "shape mismatch at node 'yhat' (op 'affine'): operands 'x' (None, 10)",
        ),
        ("the loss is a param", "the loss 'W' is a param node"),
        ("the output computed from a param alone", "'Q' (op 'neg') is not computed from the"),
    ],
)
def test_a_graph_that_does_not_fit_the_data_fails_before_training(
    tmp_path: Path, change: str, named: str
) -> None:
    (tmp_path / "g.json").write_text(json.dumps(_variant(change)))
    done = graphbp("train", "--graph", "g.json", "--epochs", "1", "--out", "o", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert named in line and "Traceback" not in line
    assert done.stdout == "" and "epoch/s" not in done.stderr  # no training started
    assert sorted(os.listdir(tmp_path)) == ["g.json"]


def test_explain_checks_wrt_before_printing_anything(tmp_path: Path) -> None:
    run = graphbp("explain", "--wrt", "x", cwd=tmp_path)  # an input, not a parameter
    assert _one_line(run, 2).startswith("graphbp explain: error: ") and run.stdout == ""
