"""Diverging training stops and says so: a NaN or Inf loss or parameter ends gb.train and
`graphbp train` with one NonFiniteError naming the epoch, the batch and the first node that
was not finite, suggesting a smaller learning rate; the CLI exits 1 and writes nothing."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import graphbp

import graphbp as gb
from graphbp.datasets import load_example, split
from graphbp.testing import installed_backends

BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(b not in installed_backends(), reason=f"no {b}"))
    for b in ("numpy", "jax")
]
WHERE = re.compile(r"training diverged in epoch (\d+) of \d+, batch (\d+) of \d+: ")


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    s = split(load_example("diabetes"), 0.2, 0)
    return {"x": s.x_train, "y": s.y_train}


@pytest.fixture(scope="module")
def net() -> gb.Network:
    return gb.Network(gb.mlp((10, 8, 8, 1), "sigmoid", "sse"))


def diverge(prog: Any, data: dict[str, Any], **kw: Any) -> str:
    """The message of the NonFiniteError that training with ``kw`` ends with."""
    with pytest.raises(gb.NonFiniteError) as info:
        gb.train(prog, prog.init(0), data, progress=False, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("backend", "optimizer"), [("numpy", "sgd"), ("numpy", "momentum"), ("jax", "sgd")]
)
def test_a_huge_learning_rate_stops_at_the_epoch_and_node_the_per_node_check_names(
    backend: str, optimizer: str, net: gb.Network, data: dict[str, Any]
) -> None:
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    prog = net.compile(backend)
    settings = {"lr": 1e6, "epochs": 30, "optimizer": optimizer}
    message = diverge(prog, data, **settings)
    where = WHERE.match(message)
    assert where, message
    assert re.search(r"at node '\w+' \(op '\w+'\) is not finite|made parameter '\w+'", message)
    assert "learning rate 1e+06: try a smaller one, e.g. 100000" in message
    # The epochs before the one named train to finite losses ...
    epoch = int(where[1])
    if epoch > 1:
        settings["epochs"] = epoch - 1
        params, history = gb.train(prog, prog.init(0), data, progress=False, **settings)
        assert all(map(math.isfinite, history)) and len(history) == epoch - 1
        assert all(np.isfinite(prog.backend.to_numpy(p)).all() for p in params.values())
    # ... and a program checking every node at every step stops at the same place.
    checked = net.compile(backend, check_finite=True)
    assert diverge(checked, data, **{**settings, "epochs": 30}) == message


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_infinite_learning_rate_names_the_parameter_the_first_update_broke(
    backend: str, net: gb.Network, data: dict[str, Any]
) -> None:
    message = diverge(net.compile(backend), data, lr=math.inf, epochs=3)
    assert message.startswith("training diverged in epoch 1 of 3, batch 1 of 12: ")
    assert "the update made parameter 'W1' NaN or Inf" in message
    assert "learning rate inf: use a finite one" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_initial_parameter_stops_before_the_first_step_and_the_caller_keeps_its_params(
    backend: str, net: gb.Network, data: dict[str, Any]
) -> None:
    prog = net.compile(backend)
    params = {k: prog.backend.to_numpy(v).copy() for k, v in prog.init(0).items()}
    params["W2"][1, 2] = np.nan
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(gb.NonFiniteError, match=r"parameter 'W2' holds NaN or Inf before train"):
        gb.train(prog, params, data, lr=0.01, epochs=2, progress=False)
    for k, v in params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_the_training_data_is_named_with_its_input_and_row(
    backend: str, net: gb.Network, data: dict[str, Any]
) -> None:
    x = data["x"].copy()
    x[41, 3] = np.inf
    with pytest.raises(gb.NonFiniteError, match=r"training input 'x' holds NaN or Inf .*row 41"):
        gb.train(net.compile(backend), net.compile(backend).init(0), {**data, "x": x})


def test_a_training_that_converges_is_unchanged_by_the_checks(
    net: gb.Network, data: dict[str, Any]
) -> None:
    seen: list[float] = []

    def callback(epoch: int, loss: float, params: dict[Any, Any]) -> None:
        seen.append(loss)
        assert all(np.isfinite(p).all() for p in params.values())

    fast = net.compile("numpy")
    checked = net.compile("numpy", check_finite=True)
    kw: dict[str, Any] = {"lr": 0.003, "epochs": 3, "progress": False}
    params, history = gb.train(fast, fast.init(0), data, callback=callback, **kw)
    again, checked_history = gb.train(checked, checked.init(0), data, **kw)
    assert seen == history == checked_history and all(map(math.isfinite, history))
    for k in params:
        np.testing.assert_array_equal(params[k], again[k])


# ---------------------------------------------------------------------------- the CLI


def error_lines(stderr: str) -> list[str]:
    """What stderr says besides the progress bar (tqdm redraws it with carriage returns)."""
    return [
        line
        for line in re.split(r"[\r\n]", stderr)
        if line.strip() and not line.startswith("train:")
    ]


@pytest.fixture(scope="module")
def old_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of a run that went well."""
    where = tmp_path_factory.mktemp("old")
    run = graphbp("train", "--epochs", "1", "--backend", "numpy", "--out", "o", cwd=where)
    assert run.returncode == 0, run.stderr
    return where / "o"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("backend", "args"),
    [
        ("numpy", ["--lr", "1e6"]),
        ("numpy", ["--lr", "inf"]),
        ("numpy", ["--lr", "1e6", "--check-finite"]),
        ("jax", ["--lr", "1e6"]),
    ],
)
def test_cli_divergence_is_one_line_exit_1_and_the_old_outputs_stay(
    tmp_path: Path, old_outputs: Path, backend: str, args: list[str]
) -> None:
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    shutil.copytree(old_outputs, tmp_path / "o")
    before = snapshot(tmp_path / "o")
    run = graphbp(
        "train", *args, "--epochs", "20", "--backend", backend, "--out", "o", cwd=tmp_path
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("graphbp train: error: training diverged in epoch ")
    assert re.search(r"(at node|made parameter) '\w+'", lines[0])
    assert re.search(r"\(learning rate \S+: (try a smaller one|use a finite one)", lines[0])
    assert snapshot(tmp_path / "o") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # nothing beside it either


def test_cli_check_finite_trains_the_same_as_without(tmp_path: Path) -> None:
    for folder, extra in (("plain", []), ("checked", ["--check-finite"])):
        run = graphbp("train", "--epochs", "2", "--out", folder, *extra, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    plain, checked = snapshot(tmp_path / "plain"), snapshot(tmp_path / "checked")
    for name in ("params.npz", "history.csv", "metrics.json"):
        assert plain[name] == checked[name], name


def test_metrics_json_is_strict_json(tmp_path: Path) -> None:
    run = graphbp("train", "--epochs", "2", "--out", "o", cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text(), parse_constant=refuse)
    assert math.isfinite(metrics["final_train_loss"])


def test_cli_nan_init_in_a_graph_file_is_one_line_naming_where_it_is(tmp_path: Path) -> None:
    graph = gb.Network(gb.mlp((10, 4, 1), "sigmoid", "sse")).to_dict()
    for node in graph["nodes"]:
        if node["id"] == "W2":
            node["init"] = math.nan
    (tmp_path / "g.json").write_text(json.dumps(graph))  # writes the token NaN
    run = graphbp("train", "--graph", "g.json", "--epochs", "2", "--out", "o", cwd=tmp_path)
    # Reading the file refuses the NaN token, naming where it is (strict JSON).
    assert run.returncode == 2, run.stderr
    lines = error_lines(run.stderr)
    line, column = _line_and_column(json.dumps(graph), "NaN")
    assert lines == [
        f"graphbp train: error: g.json:{line}:{column}: NaN is not a number JSON allows; a graph "
        "file is node-link JSON as Network.to_json writes it"
    ]
    assert not (tmp_path / "o").exists()


def test_a_non_finite_metric_is_named_not_written_as_a_nan_token() -> None:
    from graphbp.run import strict_json

    metrics = {"graphbp network": {"train_mse": 0.5, "test_mse": math.inf}, "n": [1.0, 2.0]}
    with pytest.raises(
        gb.NonFiniteError, match=r"metrics.json: \['graphbp network'\]\['test_mse'\] is inf"
    ):
        strict_json(metrics, "metrics.json")
    metrics["graphbp network"]["test_mse"] = 0.25
    assert json.loads(strict_json(metrics, "metrics.json")) == metrics


def _line_and_column(text: str, token: str) -> tuple[int, int]:
    start = text.index(token)
    return text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
