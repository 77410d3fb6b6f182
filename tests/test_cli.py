"""The command line, run as a user would: the real `graphbp` executable in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import graphbp

import graphbp as gb
from graphbp.op import runs_on
from graphbp.render import scripts_smaller
from graphbp.testing import installed_backends


def test_default_train_beats_the_mean_and_reaches_r2_of_0_3(tmp_path: Path) -> None:
    run = graphbp("train", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "graphbp-out"
    diagrams = ["chain_rule.svg", "graph.html"] if shutil.which("dot") else ["chain_rule.dot"]
    model = ["model.json", "network.json", "params.npz", "optimizer.npz", "metrics.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*model, "history.csv", "loss.png", "loss.svg", *diagrams]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["graphbp network"]["test_r2"] >= 0.3
    assert metrics["mean predictor"]["test_r2"] < 0.01
    for label in ("mean predictor", "linear least squares", "graphbp network", "test R²"):
        assert label in run.stdout
    params = np.load(out / "params.npz")
    assert sorted(params.files) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    history = (out / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,test_loss" and len(history) == 151
    assert gb.Network.from_json(out / "network.json").params == ["W1", "b1", "W2", "b2", "W3", "b3"]
    if diagrams[0].endswith(".svg"):
        assert "∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1" in svg_text(out / diagrams[0])
    else:
        formula = scripts_smaller("∂L/∂W<SUB>1</SUB> = ∂L/∂ŷ", 14)  # the caption's size
        assert formula in (out / diagrams[0]).read_text()


def svg_text(path: Path) -> str:
    """The text an SVG shows, in document order (dot splits sub/superscripts apart)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    return "".join(e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text"))


def test_train_options_and_a_user_csv_and_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 2))
    rows = ["a,b,out"] + [f"{a},{b},{a - 2 * b}" for a, b in x]
    (tmp_path / "lin.csv").write_text("\n".join(rows) + "\n")
    gb.Network(gb.mlp((2, 3, 1), activation="tanh", loss="mse")).to_json(tmp_path / "g.json")
    run = graphbp(
        "train",
        "--data",
        "lin.csv",
        "--target",
        "out",
        "--graph",
        "g.json",
        "--epochs",
        "40",
        "--lr",
        "0.05",
        "--optimizer",
        "adam",
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--out",
        "run",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["graphbp network"]["test_r2"] > 0.9


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["--data", "missing.csv"], {}, r"missing.csv: cannot read CSV"),
        (
            ["--data", "d.csv"],
            {"d.csv": "a,target\n1,2\n3,x\n"},
            r"d.csv:3:2: column 'target' has non-numeric cell 'x'",
        ),
        (
            ["--data", "d.csv", "--target", "y"],
            {"d.csv": "a,target\n1,2\n"},
            r"d.csv: no target column 'y'; the columns are a, target",
        ),
        (["--data", "d.csv"], {"d.csv": "a,target\n1,2,3\n"}, r"d.csv:2: 3 cells"),
        (["--graph", "g.json"], {"g.json": '{"nodes": [\n'}, r"g.json:2:1: not valid JSON"),
        (
            ["--graph", "g.json"],
            {
                "g.json": json.dumps(
                    {"graph": {"loss": "L"}, "nodes": [{"id": "L", "op": "sigmod"}], "edges": []}
                )
            },
            r"g.json: node 'L': unknown op 'sigmod'; did you mean 'sigmoid'",
        ),
        (["--optimizer", "sgd", "--lr", "-1"], {}, r"learning rate must be positive"),
        (["--lr", "0"], {}, r"learning rate must be positive, got 0.0"),  # not the default
        (["--epochs", "abc"], {}, r"argument --epochs: invalid positive_int value: 'abc'"),
        (["--hidden", "0"], {}, r"argument --hidden: must be at least 1, got 0"),
        (["--out", "taken"], {"taken": ""}, r"taken: exists and is not a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    run = graphbp("train", *args, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("graphbp train: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "graphbp-out").exists()


def test_ops_lists_ops_backends_and_their_packages(tmp_path: Path) -> None:
    run = graphbp("ops", cwd=tmp_path)
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    sigmoid = next(line for line in lines if line.startswith("sigmoid "))
    assert "σ(z)(1−σ(z))" in sigmoid and sigmoid.split()[-1] == "graphbp"
    assert any(line.split() == ["numpy", "graphbp", "installed"] for line in lines)
    assert {line.split()[0] for line in lines if line.strip()} >= set(gb.ops())


def test_check_passes_on_the_builtins_and_fails_on_a_bad_graph_file(tmp_path: Path) -> None:
    # every op on NumPy (test_gradients checks every op on every backend, in-process)
    run = graphbp("check", "--backend", "numpy", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "all gradients agree with float64 central differences on numpy" in run.stdout
    assert "on jax" not in run.stdout
    checked = set(re.findall(r"^op '(\w+)' on numpy:", run.stdout, re.M))
    assert checked == {n for n in gb.ops() if runs_on(gb.get_op(n), "numpy")}  # every op
    # a network given: the ops it uses, each once, on every installed backend, and jax.vjp
    net = gb.Network(gb.seed_network(2, 3))
    net.to_json(tmp_path / "seed.json")
    one = graphbp("check", "seed.json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert f"on {', '.join(installed_backends())}" in one.stdout
    named = re.findall(r"^op '(\w+)' on numpy:", one.stdout, re.M)
    assert sorted(named) == sorted({net.op_name(n) for n in net.ops})
    if "jax" in installed_backends():
        assert "plugin vjps agree with jax.vjp; numpy and jax agree" in one.stdout
    bad = graphbp("check", "nothing.json", cwd=tmp_path)
    assert bad.returncode == 2 and "nothing.json: cannot read graph file" in bad.stderr


needs_jax = pytest.mark.skipif("jax" not in installed_backends(), reason="jax is not installed")


@needs_jax
def test_train_on_jax_reaches_the_same_test_r2_as_numpy(tmp_path: Path) -> None:
    r2 = {}
    for backend in ("numpy", "jax"):
        run = graphbp("train", "--backend", backend, "--out", backend, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert f"{backend} float64" in run.stdout
        metrics = json.loads((tmp_path / backend / "metrics.json").read_text())
        r2[backend] = metrics["graphbp network"]["test_r2"]
    assert r2["jax"] == pytest.approx(r2["numpy"], abs=0.01)


@needs_jax
def test_graphbp_backend_variable_is_the_cli_default(tmp_path: Path) -> None:
    env = {"GRAPHBP_BACKEND": "jax"}
    run = graphbp("train", "--epochs", "2", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "jax float64" in run.stdout
    bad = graphbp("bench", "--quick", cwd=tmp_path, env={"GRAPHBP_BACKEND": "torch"})
    assert bad.returncode == 2 and "backend 'torch' is not installed" in bad.stderr


def test_digits_example_trains_a_softmax_classifier(tmp_path: Path) -> None:
    run = graphbp("train", "--example", "digits", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "digits (1438 train / 359 test rows)" in run.stdout
    assert "softmax cross-entropy" in run.stdout and "test accuracy" in run.stdout
    metrics = json.loads((tmp_path / "graphbp-out" / "metrics.json").read_text())
    assert metrics["graphbp network"]["test_accuracy"] >= 0.95
    assert metrics["majority class"]["test_accuracy"] < 0.2
    assert (
        metrics["graphbp network"]["test_accuracy"]
        > metrics["linear least squares"]["test_accuracy"]
    )


def test_devices_need_the_jax_backend(tmp_path: Path) -> None:
    run = graphbp("train", "--backend", "numpy", "--devices", "2", cwd=tmp_path)
    assert run.returncode == 2
    assert "numpy backend takes no option devices=2" in run.stderr
    assert not (tmp_path / "graphbp-out").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="dot is not installed")
def test_train_draws_the_trained_chain_rule_with_its_final_gradients(tmp_path: Path) -> None:
    run = graphbp("train", "--epochs", "2", "--out", "o", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "wrote o/chain_rule.svg, o/graph.html (∂L/∂W1 with the final gradients)" in run.stdout
    text = svg_text(tmp_path / "o" / "chain_rule.svg")
    grads = re.findall(r"backprop's ∂L/∂W1: ‖·‖=([0-9.e+-]+)", text)
    path = re.findall(r"path 1: ‖·‖=([0-9.e+-]+)", text)
    assert len(grads) == 1 and path == grads and float(grads[0]) > 0  # one path: all of it


def test_train_without_dot_keeps_its_outputs_and_says_what_is_missing(tmp_path: Path) -> None:
    run = graphbp("train", "--epochs", "1", "--out", "o", cwd=tmp_path, env={"PATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "'dot' executable is not on PATH" in run.stderr and "apt-get install" in run.stderr
    assert "graph.html (the same drawing, clickable) was not written either" in run.stderr
    assert "wrote o/chain_rule.dot (the Graphviz source of ∂L/∂W1's diagram)" in run.stdout
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    model = ["model.json", "network.json", "params.npz", "optimizer.npz", "metrics.json"]
    assert names == sorted([*model, "chain_rule.dot", "history.csv", "loss.png", "loss.svg"])
