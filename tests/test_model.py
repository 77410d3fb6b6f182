"""A trained model folder: written by `graphbp train`, loaded by gb.load, used by predict,
continued by --resume, and read as hostile input."""

from __future__ import annotations

import io
import json
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import graphbp

import graphbp as gb
from graphbp.datasets import load_example, r2_score
from graphbp.testing import installed_backends

DIABETES = ("train", "--epochs", "4", "--hidden", "4", "--optimizer", "adam")
DIGITS = ("train", "--example", "digits", "--epochs", "2", "--hidden", "8")


def train(cwd: Path, *args: str) -> Path:
    run = graphbp(*args, "--out", "model", cwd=cwd)
    assert run.returncode == 0, run.stderr
    return cwd / "model"


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("diabetes"), *DIABETES)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("digits"), *DIGITS)


def held_out(folder: Path, example: str) -> tuple[Any, Any, dict[str, Any]]:
    """The raw (unstandardised) held-out rows of the model's split, and model.json."""
    about = json.loads((folder / "model.json").read_text())
    data = load_example(example)
    rows = gb.load(folder).description.test_rows
    assert len(rows) == about["split"]["test_rows"]
    return data.x[rows], data.y[rows, 0], about


def test_a_saved_model_predicts_the_held_out_rows_with_the_r2_train_reported(
    regression: Path,
) -> None:
    x, y, about = held_out(regression, "diabetes")
    model = gb.load(regression)
    predicted = model.predict(x)
    assert predicted.shape == (len(x),) and predicted.dtype == np.float64
    assert y.std() > 10  # original units (the standardised target's deviation is 1)
    reported = model.metrics["graphbp network"]["test_r2"]
    assert r2_score(y[:, None], predicted[:, None]) == pytest.approx(reported, abs=1e-12)
    assert model.features == about["features"] and model.target == "target"
    assert model.task == "regression" and model.classes is None
    assert isinstance(model.network, gb.Network) and isinstance(model.program, gb.Program)
    assert sorted(model.params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert "4 epochs" in repr(model)


def test_history_metrics_and_figure_share_one_loss_unit(regression: Path) -> None:
    model = gb.load(regression)
    metrics, history = model.metrics, model.history
    unit = "mean squared error per row on the standardised target"
    assert (
        metrics["loss_unit"]
        == unit
        == json.loads((regression / "model.json").read_text())["loss_unit"]
    )
    assert len(history["train_loss"]) == len(history["test_loss"]) == metrics["epochs"] == 4
    assert history["train_loss"][-1] == metrics["final_train_loss"]
    assert history["test_loss"][-1] == metrics["final_test_loss"]
    assert metrics["final_train_loss"] == pytest.approx(metrics["graphbp network"]["train_mse"])
    assert metrics["final_test_loss"] == pytest.approx(metrics["graphbp network"]["test_mse"])
    assert (regression / "loss.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = ET.parse(regression / "loss.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    lines = [
        e for e in svg.iter("{http://www.w3.org/2000/svg}g") if e.get("id", "").startswith("line2d")
    ]
    assert len(lines) >= 2  # the train and the test curve (and the grid's lines)


def test_rows_as_an_array_a_mapping_and_a_csv_file_agree(regression: Path, tmp_path: Path) -> None:
    x, y, _ = held_out(regression, "diabetes")
    model = gb.load(regression)
    expected = model.predict(x)
    names = model.features
    mapping = {n: x[:, j] for j, n in reversed(list(enumerate(names)))}  # another order
    assert np.array_equal(model.predict(mapping), expected)
    assert np.array_equal(model.predict({**mapping, "target": y}), expected)  # target ignored
    rows = [",".join(["target", *reversed(names)])]
    rows += [
        ",".join(map(repr, [t, *r[::-1].tolist()])) for t, r in zip(y.tolist(), x, strict=True)
    ]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    assert np.array_equal(model.predict(tmp_path / "rows.csv"), expected)
    assert np.array_equal(model.predict(str(tmp_path / "rows.csv")), expected)
    assert model.predict(x[:0]).shape == (0,)


@pytest.mark.parametrize("backend", installed_backends())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_load_on_each_backend_and_dtype(regression: Path, backend: str, dtype: str) -> None:
    x, _, _ = held_out(regression, "diabetes")
    reference = gb.load(regression, "numpy").predict(x)
    model = gb.load(regression, backend=backend, dtype=dtype)
    assert model.program.backend.name == backend and model.program.dtype == dtype
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(model.predict(x), reference, rtol=rtol)


def test_wrong_rows_are_one_line_errors_naming_the_column(regression: Path) -> None:
    model = gb.load(regression)
    x, _, _ = held_out(regression, "diabetes")
    columns = {n: x[:, j] for j, n in enumerate(model.features)}
    with pytest.raises(gb.InputError, match="no column 'bmi'"):
        model.predict({k: v for k, v in columns.items() if k != "bmi"})
    with pytest.raises(gb.InputError, match="column 'height', which the model was not trained"):
        model.predict({**columns, "height": x[:, 0]})
    with pytest.raises(gb.InputError, match=r"reshape\(1, -1\)"):
        model.predict(x[0])
    with pytest.raises(gb.InputError, match="9 column"):
        model.predict(x[:, :9])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(gb.InputError, match="column 'bmi' holds NaN or Inf \\(row 3\\)"):
        model.predict(bad)
    with pytest.raises(gb.InputError, match="differ in length"):
        model.predict({**columns, "bmi": x[:5, 2]})
    with pytest.raises(gb.InputError, match="predict_proba needs a classifier"):
        model.predict_proba(x)


def test_a_classifier_gives_labels_and_probabilities(classifier: Path) -> None:
    x, y, about = held_out(classifier, "digits")
    model = gb.load(classifier)
    assert model.classes == list(range(10)) == about["classes"]
    labels = model.predict(x)
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    accuracy = float(np.mean(labels == y))
    assert accuracy == pytest.approx(model.metrics["graphbp network"]["test_accuracy"], abs=1e-12)
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(np.argmax(proba, axis=1), labels)
    assert "cross-entropy" in model.metrics["loss_unit"]


# ------------------------------------------------------------------------- graphbp predict


def test_graphbp_predict_writes_the_target_column(regression: Path, tmp_path: Path) -> None:
    x, _, _ = held_out(regression, "diabetes")
    model = gb.load(regression)
    names = model.features
    rows = [",".join(names[::-1])] + [",".join(map(repr, r[::-1].tolist())) for r in x]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    run = graphbp("predict", str(regression), "new.csv", "-o", "p.csv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "target" and len(lines) == len(x) + 1
    np.testing.assert_array_equal([float(v) for v in lines[1:]], model.predict(x))
    run = graphbp("predict", str(regression), "new.csv", cwd=tmp_path)  # default: stdout
    assert run.returncode == 0 and run.stdout.splitlines() == lines
    assert "R²" not in run.stderr  # no target column: nothing to score


def test_graphbp_predict_scores_rows_that_hold_the_target(regression: Path) -> None:
    data = Path(gb.__file__).parent / "data" / "diabetes.csv"
    run = graphbp("predict", str(regression), str(data), cwd=regression.parent)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 443 and "R² 0." in run.stderr
    assert "(target 'target' in its own units)" in run.stderr


def test_graphbp_predict_scores_a_classifier_without_units(classifier: Path) -> None:
    x, y, _ = held_out(classifier, "digits")
    model = gb.load(classifier)
    header = ",".join([*model.features, model.target])
    rows = [",".join(map(repr, [*r.tolist(), int(t)])) for r, t in zip(x, y, strict=True)]
    (classifier.parent / "digits-rows.csv").write_text("\n".join([header, *rows]) + "\n")
    run = graphbp("predict", str(classifier), "digits-rows.csv", cwd=classifier.parent)
    assert run.returncode == 0, run.stderr
    assert "accuracy" in run.stderr and f"(target {model.target!r})" in run.stderr


def test_load_says_whether_the_folder_is_missing_or_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(gb.GraphFileError, match=r"nothing: no such folder; give the --out"):
        gb.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("")
    with pytest.raises(gb.GraphFileError, match=r"file: is not a folder; give the --out"):
        gb.load(tmp_path / "file")


@pytest.mark.parametrize(
    ("header", "named"),
    [("age,sex,bmi", "no column 'bp'"), ("x0,age,sex,bmi,bp,s1,s2,s3,s4,s5,s6", "column 'x0'")],
)
def test_graphbp_predict_refuses_a_missing_or_extra_column(
    regression: Path, tmp_path: Path, header: str, named: str
) -> None:
    width = header.count(",") + 1
    (tmp_path / "bad.csv").write_text(f"{header}\n" + ",".join(["1"] * width) + "\n")
    run = graphbp("predict", str(regression), "bad.csv", "-o", "p.csv", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and named in run.stderr and "bad.csv" in run.stderr
    assert not (tmp_path / "p.csv").exists()


# ------------------------------------------------------------------------------- --resume

FILES = ("model.json", "params.npz", "optimizer.npz", "history.csv", "metrics.json")
ALL_FILES = (*FILES, "network.json", "loss.png", "loss.svg", "chain_rule.svg", "graph.html")


@pytest.mark.parametrize(
    ("optimizer", "backend"),
    [("adam", "numpy"), ("momentum", "jax" if "jax" in installed_backends() else "numpy")],
)
def test_n_epochs_then_resume_m_equals_one_run_of_n_plus_m(
    tmp_path: Path, optimizer: str, backend: str
) -> None:
    common = ("--hidden", "4", "--optimizer", optimizer, "--batch-size", "64")
    common += ("--backend", backend, "--out", "model")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _cli(tmp_path / "a", "train", "--epochs", "3", *common)[0] == 0  # in-process: one
    status, out, err = _cli(  # import of jax serves the three runs
        tmp_path / "a", "train", "--resume", "model", "--epochs", "2", "--backend", backend
    )
    assert status == 0, err
    assert "epochs 4–5" in out and "batch 64" in out
    assert _cli(tmp_path / "b", "train", "--epochs", "5", *common)[0] == 0
    resumed, whole = tmp_path / "a" / "model", tmp_path / "b" / "model"
    assert sorted(p.name for p in whole.iterdir()) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    assert len(gb.load(resumed).history["test_loss"]) == 5


def test_resume_writes_elsewhere_with_out_and_refuses_conflicting_options(
    regression: Path, tmp_path: Path
) -> None:
    before = {n: (regression / n).read_bytes() for n in FILES}
    run = graphbp(
        "train", "--resume", str(regression), "--epochs", "1", "--out", "more", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert f"train: {regression} (epoch 5) on" in run.stdout and "1 epoch," in run.stdout
    assert gb.load(tmp_path / "more").metrics["epochs"] == 5
    assert {n: (regression / n).read_bytes() for n in FILES} == before
    for option in (
        ("--hidden", "8"),
        ("--example", "digits"),
        ("--optimizer", "sgd"),
        ("--seed", "1"),
        ("--graph", "g.json"),
        ("--data", "d.csv"),
    ):
        status, _, err = _cli(tmp_path, "train", "--resume", str(regression), *option, "--out", "x")
        assert status == 2 and err.count("\n") == 1, err
        assert f"{option[0]} conflicts with --resume" in err
        assert not (tmp_path / "x").exists()


def test_resume_refuses_a_csv_that_changed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2))
    rows = ["a,b,target"] + [f"{a!r},{b!r},{a - 2 * b!r}" for a, b in x.tolist()]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    options = ("--epochs", "2", "--hidden", "3", "--out", "model")
    assert _cli(tmp_path, "train", "--data", "d.csv", *options)[0] == 0
    model = gb.load(tmp_path / "model")
    assert model.description.source.csv == str(tmp_path / "d.csv")
    assert model.description.source.rows == 40
    (tmp_path / "d.csv").rename(tmp_path / "moved.csv")  # the same rows, elsewhere: --data
    status, _, err = _cli(tmp_path, "train", "--resume", "model", "--epochs", "1")
    assert status == 2
    assert "d.csv: the CSV file model was trained on is not there; if it moved, give --data" in err
    status, _, err = _cli(
        tmp_path, "train", "--resume", "model", "--data", "moved.csv", "--epochs", "1"
    )
    assert status == 0, err
    assert gb.load(tmp_path / "model").description.source.csv == str(tmp_path / "moved.csv")
    (tmp_path / "moved.csv").write_text("\n".join(rows[:-1]) + "\n")  # a row less
    status, _, err = _cli(tmp_path, "train", "--resume", "model", "--epochs", "1")
    assert status == 2 and "the data changed since" in err and err.count("\n") == 1


# ------------------------------------------------------------------- hostile model folders


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _edit_json(name: str, change: Any) -> Any:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))

    return edit


def _params(change: Any) -> Any:
    def edit(folder: Path) -> None:
        with np.load(folder / "params.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays)
        (folder / "params.npz").write_bytes(_npz(arrays))

    return edit


def _pickled(folder: Path) -> None:
    with np.load(folder / "params.npz") as npz:
        arrays: dict[str, Any] = {k: npz[k] for k in npz.files}
    arrays["W1"] = np.full((10, 16), {"a": 1}, dtype=object)  # the shape fits: the dtype not
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # allow_pickle defaults to True when saving
    (folder / "params.npz").write_bytes(buffer.getvalue())


def _compressed(path: Path) -> bytes:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


HOSTILE = {
    "truncated npz": (
        "params.npz",
        lambda f: (f / "params.npz").write_bytes((f / "params.npz").read_bytes()[:300]),
    ),
    "wrong shape": ("params.npz", _params(lambda a: a.update(W1=np.zeros((10, 5))))),
    "huge shape": ("params.npz", _params(lambda a: a.update(W1=np.zeros((0, 2**40))))),
    "missing member": ("params.npz", _params(lambda a: a.pop("b3"))),
    "extra member": ("params.npz", _params(lambda a: a.update(W9=np.zeros(2)))),
    "NaN param": ("params.npz", _params(lambda a: a["b1"].__setitem__(0, np.nan))),
    "pickled npz": ("params.npz", _pickled),
    "not a zip": ("params.npz", lambda f: (f / "params.npz").write_text("hello")),
    "bad JSON": ("model.json", lambda f: (f / "model.json").write_text("{")),
    "NaN stats": (
        "model.json",
        lambda f: (f / "model.json").write_text(
            (f / "model.json").read_text().replace('"x_std": [', '"x_std": [NaN, ', 1)
        ),
    ),
    "zero std": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("standardisation", "y_std"), [0.0])),
    ),
    "stats length": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("standardisation", "x_mean"), [1.0])),
    ),
    "wrong type": ("model.json", _edit_json("model.json", lambda d: _set(d, ("features",), "age"))),
    "bool for int": ("model.json", _edit_json("model.json", lambda d: _set(d, ("epochs",), True))),
    "other format": ("model.json", _edit_json("model.json", lambda d: _set(d, ("version",), 99))),
    "unknown output": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("output",), "W1")),
    ),
    "features vs network": (
        "model.json",
        _edit_json(
            "model.json",
            lambda d: d.update(
                features=["a", "b"],
                standardisation={"x_mean": [0, 0], "x_std": [1, 1], "y_mean": [0], "y_std": [1]},
            ),
        ),
    ),
    "held-out count": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("split", "test_rows"), 10**6)),
    ),
    "held-out list": (  # graphbp 0.x listed the rows; a list of any size is refused unread
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("split", "test_rows"), [0] * 1000)),
    ),
    "rows": ("model.json", _edit_json("model.json", lambda d: _set(d, ("data", "rows"), 10**12))),
    "duplicate key": (
        "model.json",
        lambda f: (f / "model.json").write_text(
            (f / "model.json").read_text().replace('"task":', '"task": "x", "task":', 1)
        ),
    ),
    "subnormal std": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("standardisation", "x_std"), [5e-324] * 10)),
    ),
    "huge std": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("standardisation", "y_std"), [1e308])),
    ),
    "compressed npz": (  # 1 MB of zeros packs into 1 KB: its size would not bound the read
        "params.npz",
        lambda f: (f / "params.npz").write_bytes(_compressed(f / "params.npz")),
    ),
    "not an object": ("model.json", lambda f: (f / "model.json").write_text("[1]")),
    "bad history": ("history.csv", lambda f: (f / "history.csv").write_text("epoch,loss\n1,2\n")),
    "NaN history": (
        "history.csv",
        lambda f: (f / "history.csv").write_text("epoch,train_loss,test_loss\n1,nan,1\n"),
    ),
    "history longer than the epochs": (
        "history.csv",
        lambda f: (f / "history.csv").write_text((f / "history.csv").read_text() + "5,1.0,1.0\n"),
    ),
    "unknown optimizer": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("hyperparameters", "optimizer"), "rmsprop")),
    ),
    "zero lr": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("hyperparameters", "lr"), 0)),
    ),
    "batch size as text": (
        "model.json",
        _edit_json("model.json", lambda d: _set(d, ("hyperparameters", "batch_size"), "32")),
    ),
    "metrics list": ("metrics.json", lambda f: (f / "metrics.json").write_text("[]")),
    "network JSON": ("network.json", lambda f: (f / "network.json").write_text("{}")),
    **{
        f"missing {n}": (n, lambda f, n=n: (f / n).unlink())
        for n in ("model.json", "network.json", "params.npz", "history.csv", "metrics.json")
    },
    "folder for file": (
        "params.npz",
        lambda f: ((f / "params.npz").unlink(), (f / "params.npz").mkdir()),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_model_folder_is_one_error_naming_the_file(
    regression: Path, tmp_path: Path, case: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    name, corrupt = HOSTILE[case]
    corrupt(folder)
    with pytest.raises(gb.GraphFileError) as caught:
        _ = gb.load(folder).history  # history.csv is read on first use
    message = str(caught.value)
    assert name in message and "\n" not in message


def test_a_hostile_optimizer_state_stops_resume(regression: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    with zipfile.ZipFile(folder / "optimizer.npz") as z:
        assert len(z.namelist()) == 1 + 2 * 6  # adam: the step count and two moments per param
    (folder / "optimizer.npz").write_bytes(_npz({"0": np.zeros(())}))
    run = graphbp("train", "--resume", "model", "--epochs", "1", cwd=tmp_path)
    assert run.returncode == 2 and "optimizer.npz" in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1


def test_graphbp_predict_writes_a_classifiers_labels(classifier: Path) -> None:
    data = Path(gb.__file__).parent / "data" / "digits.csv"
    run = graphbp("predict", str(classifier), str(data), cwd=classifier.parent)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "label" and {int(v) for v in lines[1:]} <= set(range(10))
    assert "accuracy 0." in run.stderr or "accuracy 1." in run.stderr


def test_gb_train_continued_with_initial_epoch_and_state_equals_one_run() -> None:
    from graphbp.train import train_state

    rng = np.random.default_rng(1)
    data = {"x": rng.standard_normal((50, 10)), "y": rng.standard_normal((50, 1))}
    prog = gb.Network(gb.seed_network(10, 3, 1)).compile("numpy")
    options: dict[str, Any] = {"lr": 0.01, "batch_size": 8, "optimizer": "adam", "seed": 4}
    whole = train_state(prog, prog.init(0), data, epochs=5, progress=False, **options)
    first = train_state(prog, prog.init(0), data, epochs=3, progress=False, **options)
    second = train_state(
        prog,
        first.params,
        data,
        epochs=2,
        initial_epoch=3,
        state=first.state,
        progress=False,
        **options,
    )
    assert first.history + second.history == whole.history
    for name in whole.params:
        assert np.array_equal(second.params[name], whole.params[name])
    with pytest.raises(gb.InputError, match="optimizer state has 1 array"):
        train_state(prog, first.params, data, epochs=1, state=[np.zeros(())], **options)


def test_split_with_saved_statistics_standardises_as_before() -> None:
    from graphbp.datasets import split

    data = load_example("diabetes")
    fresh = split(data, 0.2, seed=3)
    again = split(data, 0.2, seed=3, stats=fresh.stats)
    assert np.array_equal(fresh.x_test, again.x_test) and np.array_equal(
        fresh.y_train, again.y_train
    )
    assert sorted([*fresh.train_rows, *fresh.test_rows]) == list(range(len(data.x)))
    np.testing.assert_array_equal(
        fresh.x_train, (data.x[fresh.train_rows] - fresh.stats.x_mean) / fresh.stats.x_std
    )


# ------------------------------------------------------------------------- review fixes

DIABETES_CSV = Path(gb.__file__).parent / "data" / "diabetes.csv"


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``graphbp ARGS`` run in this process from ``tmp_path``: status, stdout, stderr."""
    import contextlib

    from graphbp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(tmp_path),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def _predict(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``graphbp predict ARGS`` run in this process from ``tmp_path``: status, stdout, stderr."""
    return _cli(tmp_path, "predict", *args)


def test_predict_o_refuses_streams_devices_its_input_and_the_model_folder(
    regression: Path, tmp_path: Path
) -> None:
    import os

    rows = tmp_path / "rows.csv"
    rows.write_text("".join(DIABETES_CSV.read_text().splitlines(keepends=True)[:4]))
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_stdout").symlink_to("/dev/stdout")
    model_file = regression / "params.npz"
    before = model_file.read_bytes()
    for target, why in [
        ("fifo", "pipe, device or socket"),
        ("to_stdout", "device or a stream"),  # (never /dev itself: a regression would replace it)
        ("rows.csv", "is the input CSV"),
        (str(model_file), "inside the model folder"),
        (str(regression / "new.csv"), "inside the model folder"),
    ]:
        status, out, err = _predict(tmp_path, str(regression), "rows.csv", "-o", target)
        assert status == 2 and why in err and err.count("\n") == 1, (target, err)
        assert out == ""
    assert model_file.read_bytes() == before and rows.read_text().startswith("age,")
    assert (tmp_path / "to_stdout").is_symlink()
    (tmp_path / "real.csv").write_text("old\n")  # a link to a file: the file is written
    (tmp_path / "link.csv").symlink_to("real.csv")
    assert _predict(tmp_path, str(regression), "rows.csv", "-o", "link.csv")[0] == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text().splitlines()[0] == "target"
    status, out, _ = _predict(tmp_path, str(regression), "rows.csv", "-o", "./-")
    assert status == 0 and out == "" and len((tmp_path / "-").read_text().splitlines()) == 4


def test_predictions_that_overflow_are_one_error_and_no_numpy_warning(
    regression: Path, tmp_path: Path
) -> None:
    model = gb.load(regression)
    with pytest.raises(gb.InputError, match="row 0") as caught:
        model.predict(np.full((1, 10), 1e308))
    assert "\n" not in str(caught.value)
    lines = DIABETES_CSV.read_text().splitlines()
    (tmp_path / "big.csv").write_text(f"{lines[0]}\n{','.join(['1e308'] * 11)}\n")
    status, out, err = _predict(tmp_path, str(regression), "big.csv")  # warnings are errors
    assert status == 2 and "row 0" in err and err.count("\n") == 1 and out == ""


def test_class_labels_beyond_int64_are_refused_at_load(classifier: Path, tmp_path: Path) -> None:
    for labels in ([2**63, *range(1, 10)], [10**30, *range(1, 10)]):
        folder = tmp_path / "model"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(classifier, folder)
        _edit_json("model.json", lambda d, labels=labels: _set(d, ("classes",), labels))(folder)
        with pytest.raises(gb.GraphFileError, match="64-bit integers"):
            gb.load(folder)


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cwd = tmp_path_factory.mktemp("float32")
    run = graphbp(
        *DIABETES, "--dtype", "float32", "--out", "model", cwd=cwd, env={"TQDM_MININTERVAL": "0"}
    )
    assert run.returncode == 0, run.stderr
    return cwd / "model", run


def test_the_progress_bar_shows_the_loss_per_row_of_the_table(float32_run: Any) -> None:
    import re

    folder, run = float32_run
    shown = re.findall(r"loss per row: train ([0-9.e+-]+), test ([0-9.e+-]+)", run.stderr)
    history = gb.load(folder).history
    assert shown == [
        (f"{a:.4g}", f"{b:.4g}")
        for a, b in zip(history["train_loss"], history["test_loss"], strict=True)
    ]
    final = re.search(r"loss: train ([0-9.]+)", run.stdout)
    assert final is not None and float(final.group(1)) == pytest.approx(
        float(shown[-1][0]), abs=1e-3
    )


def test_load_and_resume_keep_the_saved_dtype(float32_run: Any, tmp_path: Path) -> None:
    folder, _ = float32_run
    assert gb.load(folder).program.dtype == "float32"
    assert gb.load(folder, dtype=np.float32).program.dtype == "float32"
    assert gb.load(folder, dtype=np.dtype("float64")).program.dtype == "float64"
    with pytest.raises(gb.InputError, match="float64 or float32"):
        gb.load(folder, dtype=np.int32)
    run = graphbp("train", "--resume", str(folder), "--epochs", "1", "--out", "more", cwd=tmp_path)
    assert run.returncode == 0 and "numpy float32" in run.stdout, run.stderr
    assert gb.load(tmp_path / "more").description.dtype == "float32"


def test_the_loss_figure_is_the_same_bytes_each_time_and_marks_few_epochs() -> None:
    import re

    from graphbp.figures import loss_curve

    first, again = loss_curve([0.9, 0.5], [1.0, 0.6], "u"), loss_curve([0.9, 0.5], [1.0, 0.6], "u")
    assert first == again
    svg = loss_curve([0.9], [1.0], "u")["loss.svg"].decode()  # one epoch: one dot per curve
    for colour in ("#1f77b4", "#ff7f0e"):  # train, test
        assert re.search(rf'<g clip-path="[^"]*">\s*<use [^>]*fill: {colour}', svg), colour


def test_predict_scores_only_the_rows_whose_target_is_given(
    regression: Path, tmp_path: Path
) -> None:
    lines = DIABETES_CSV.read_text().splitlines()
    header, rows = lines[0], [line.rsplit(",", 1)[0] for line in lines[1:4]]
    csv = [header, f"{rows[0]},", f"{rows[1]},nan", f"{rows[2]},{lines[3].rsplit(',', 1)[1]}"]
    (tmp_path / "rows.csv").write_text("\n".join(csv) + "\n")
    model = gb.load(regression)
    status, out, err = _predict(tmp_path, str(regression), "rows.csv")
    assert status == 0, err
    assert [float(v) for v in out.splitlines()[1:]] == model.predict(tmp_path / "rows.csv").tolist()
    assert "R² undefined" in err and "on 1 of the 3 rows" in err and "where it is given" in err
    (tmp_path / "header.csv").write_text(header + "\n")  # no rows: no predictions, as for x[:0]
    assert model.predict(tmp_path / "header.csv").shape == (0,)
    status, out, err = _predict(tmp_path, str(regression), "header.csv")
    assert (status, out, err) == (0, "target\n", "")


def test_predict_takes_real_numbers_only(regression: Path) -> None:
    model = gb.load(regression)
    x, _, _ = held_out(regression, "diabetes")
    x = x[:3]
    expected = model.predict(x)
    refused = {
        "complex numbers": x + 1j,
        "dates": np.zeros((3, 10), "datetime64[s]"),
        "durations": np.zeros((3, 10), "timedelta64[s]"),
        "text": x.astype(str),
        "masked value at": np.ma.masked_array(x, mask=np.eye(3, 10) > 0),
        "not a real number": np.array([[None] * 10] * 3, dtype=object),
    }
    for what, rows in refused.items():
        with pytest.raises(gb.InputError, match=what) as caught:
            model.predict(rows)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 200
    records = np.rec.fromarrays(list(x.T[::-1]), names=model.features[::-1])
    assert np.array_equal(model.predict(records), expected)  # named columns, any order
    assert np.array_equal(model.predict(x.astype(object)), expected)
    with pytest.raises(gb.InputError, match="text"):
        model.predict({n: x[:, j].astype(str) for j, n in enumerate(model.features)})


def test_resume_checks_the_data_before_reading_it(regression: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    (tmp_path / "passwords.txt").write_text("user,target\nadmin:hunter2,1\n")

    def point_at_the_secret(d: dict[str, Any]) -> None:
        d["data"].update(example=None, csv=str(tmp_path / "passwords.txt"))

    _edit_json("model.json", point_at_the_secret)(folder)
    run = graphbp("train", "--resume", "model", "--epochs", "1", cwd=tmp_path)
    assert run.returncode == 2 and "the data changed since" in run.stderr, run.stderr
    assert "hunter2" not in run.stderr and "admin" not in run.stderr


def test_the_held_out_rows_are_recomputed_and_checked(regression: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    _edit_json("model.json", lambda d: _set(d, ("split", "test_rows_sha256"), "0" * 64))(folder)
    model = gb.load(folder)  # predicting needs no split
    with pytest.raises(gb.GraphFileError, match="held-out rows"):
        _ = model.description.test_rows


def test_predict_proba_writes_the_probabilities_of_each_class(
    classifier: Path, regression: Path, tmp_path: Path
) -> None:
    digits = Path(gb.__file__).parent / "data" / "digits.csv"
    (tmp_path / "rows.csv").write_text("".join(digits.read_text().splitlines(True)[:6]))
    status, out, err = _predict(tmp_path, str(classifier), "rows.csv", "--proba")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "label," + ",".join(f"proba_{c}" for c in range(10))
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    model = gb.load(classifier)
    assert np.array_equal(table[:, 0], model.predict(tmp_path / "rows.csv"))
    assert np.array_equal(table[:, 1:], model.predict_proba(tmp_path / "rows.csv"))
    status, _, err = _predict(tmp_path, str(regression), str(DIABETES_CSV), "--proba")
    assert status == 2 and "--proba needs a classifier" in err


# ---------------------------------------------------------------- second review pass


def _small_csv(path: Path, target: str = "target", rows: int = 30) -> Path:
    """A CSV of two features and a ``target`` column (quoted as CSV needs) of ``rows`` rows."""
    import csv

    x = np.random.default_rng(0).standard_normal((rows, 2))
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["a", "b", target])
        writer.writerows([a, b, a - 2 * b] for a, b in x.tolist())
    return path


@pytest.mark.parametrize(
    ("target", "header"),
    [("t,arg\nline", "t,arg\nline"), ("=HYPERLINK(1)", "'=HYPERLINK(1)"), ("-y", "'-y")],
)
def test_predict_quotes_the_header_and_neutralises_a_formula(
    tmp_path: Path, target: str, header: str
) -> None:
    import csv

    _small_csv(tmp_path / "d.csv", target)
    options = ("--epochs", "1", "--hidden", "2", "--out", "m")
    status, _, err = _cli(tmp_path, "train", "--data", "d.csv", f"--target={target}", *options)
    assert status == 0, err
    status, _, err = _predict(tmp_path, "m", "d.csv", "-o", "p.csv")
    assert status == 0, err
    with (tmp_path / "p.csv").open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == [header] and len(table) == 31
    assert np.array_equal(
        [float(r[0]) for r in table[1:]], gb.load(tmp_path / "m").predict(tmp_path / "d.csv")
    )


def test_predicting_reads_neither_a_long_history_nor_large_metrics(
    regression: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    (folder / "history.csv").write_text("epoch,train_loss,test_loss\n" + "x\n" * 100)
    model = gb.load(folder)  # history.csv is read when asked for, not to predict
    assert model.predict(np.zeros((1, 10))).shape == (1,)
    with pytest.raises(gb.GraphFileError, match="history.csv:2"):
        _ = model.history
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "pad": "x" * 100_000}))
    with pytest.raises(gb.GraphFileError, match=r"metrics\.json: 100,\d+ bytes"):
        gb.load(folder)


@pytest.mark.parametrize(
    "rows",
    [
        [[10**400] * 10],  # an int float64 cannot hold: OverflowError before
        np.full((1, 10), np.longdouble("1e400")),  # finite, but not as a float64
    ],
)
def test_values_beyond_float64_are_named_not_called_nan(regression: Path, rows: Any) -> None:
    model = gb.load(regression)
    with pytest.raises(gb.InputError, match=r"column 'age', row 0: .* beyond float64's range"):
        model.predict(rows)
    columns: dict[str, Any] = {f: [1.0, 2.0] for f in model.features}
    columns["bmi"] = np.array([1, -(10**400)], dtype=object)
    with pytest.raises(gb.InputError, match=r"column 'bmi', row 1: .* beyond float64's range"):
        model.predict(columns)


def test_resume_refuses_an_out_inside_its_folder(regression: Path, tmp_path: Path) -> None:
    shutil.copytree(regression, tmp_path / "model")
    status, _, err = _cli(tmp_path, "train", "--resume", "model", "--out", "model/sub")
    assert status == 2 and "lies inside the --resume folder" in err and err.count("\n") == 1
    assert not (tmp_path / "model" / "sub").exists()


def test_resume_says_an_edited_example_name_is_an_edited_model_json(
    regression: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(regression, folder)
    _edit_json("model.json", lambda d: _set(d, ("data", "example"), "digits"))(folder)
    status, _, err = _cli(tmp_path, "train", "--resume", "model", "--epochs", "1")
    assert status == 2 and "model.json: names the example 'digits', but its sha256" in err
    assert "changed since" not in err


def test_predict_o_refuses_a_stream_reached_through_a_linked_folder(
    regression: Path, tmp_path: Path
) -> None:
    (tmp_path / "p").symlink_to("/proc/self/fd")
    status, out, err = _predict(tmp_path, str(regression), str(DIABETES_CSV), "-o", "p/1")
    assert status == 2 and "-o p/1: is a device or a stream" in err and out == "", err


def test_model_json_with_an_empty_target_or_a_regressions_classes_is_refused(
    regression: Path, tmp_path: Path
) -> None:
    for key, value, why in [("target", "", "'target' is empty"), ("classes", [0, 1], "no classes")]:
        folder = tmp_path / key
        shutil.copytree(regression, folder)
        _edit_json("model.json", lambda d, k=key, v=value: _set(d, (k,), v))(folder)
        with pytest.raises(gb.GraphFileError, match=why):
            gb.load(folder)


def test_one_epoch_and_one_row_are_singular(regression: Path, tmp_path: Path) -> None:
    lines = DIABETES_CSV.read_text().splitlines()
    (tmp_path / "one.csv").write_text(f"{lines[0]}\n{lines[1]}\n")
    status, _, err = _predict(tmp_path, str(regression), "one.csv", "-o", "p.csv")
    assert status == 0 and "(1 row)" in err and "on the row of one.csv" in err, err
    _small_csv(tmp_path / "d.csv")
    status, out, err = _cli(tmp_path, "train", "--data", "d.csv", "--epochs", "1", "--hidden", "2")
    assert status == 0 and ", 1 epoch, batch" in out, err


def test_an_output_computed_from_y_is_refused_before_training(tmp_path: Path) -> None:
    b = gb.Builder()
    x, y = b.input("x", (None, 10)), b.input("y", (None, 1))
    o = b.dense(x, 1, None, name="o")
    squared = (o - y) ** 2
    for net, why in [
        (b.network(b.op("sum", squared)), "op 'sum' is not one of sse, mse"),
        (b.network(b.op("sum", squared), output=squared), "is computed from the target 'y'"),
    ]:
        net.to_json(tmp_path / "g.json")
        status, out, err = _cli(tmp_path, "train", "--graph", "g.json", "--epochs", "1")
        assert status == 2 and why in err and "output=" in err and err.count("\n") == 1, err
        assert out == "" and not (tmp_path / "graphbp-out").exists()
    net = b.network(b.op("sum", squared), output=o)  # the prediction named: it trains
    net.to_json(tmp_path / "g.json")
    assert _cli(tmp_path, "train", "--graph", "g.json", "--epochs", "1", "--out", "m")[0] == 0
    assert gb.load(tmp_path / "m").output == "o" == gb.Network.from_json(tmp_path / "g.json").output
    _edit_json("model.json", lambda d: _set(d, ("output",), squared.name))(tmp_path / "m")
    with pytest.raises(gb.GraphFileError, match="computed from the target 'y'"):
        gb.load(tmp_path / "m")
