"""``graphbp import MODULE:FUNCTION --args ARGS.npz -o DIR``, and the folder it writes used by
every command: real files, real subprocess runs and in-process ``main()`` calls.

The --args file is hostile: pickles, compressed bombs, wrong dtypes, huge declared shapes and
members that do not fit the function are each one line naming the file and the member.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import graphbp

import graphbp as gb
from graphbp.cli import main
from graphbp.errors import InputError

JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not JAX, reason="graphbp import traces with JAX")
DOT = shutil.which("dot") is not None

MLP = """\
import jax
import jax.numpy as jnp


def loss(params, x, y):
    h = jnp.tanh(x @ params["W1"] + params["b1"])
    return jnp.mean((h @ params["W2"] + params["b2"] - y) ** 2)
"""


def example(rng: np.random.Generator | None = None) -> dict[str, np.ndarray[Any, Any]]:
    """Arguments of MLP's loss, as --args members."""
    rng = rng or np.random.default_rng(0)
    return {
        "params.W1": rng.normal(size=(3, 5)),
        "params.b1": rng.normal(size=5) * 0.1,
        "params.W2": rng.normal(size=(5, 2)),
        "params.b2": np.zeros(2),
        "x": rng.normal(size=(6, 3)),
        "y": rng.normal(size=(6, 2)),
    }


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))


def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], list[str]]:
    """``graphbp ARGS`` in this process: its status, stdout and stderr lines."""
    status = main(args)
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


@pytest.fixture
def mlp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding mlp.py and its args.npz, made the current folder."""
    write(tmp_path, {"mlp.py": MLP})
    np.savez(tmp_path / "args.npz", **example())  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ finding the function


@pytest.mark.parametrize(
    ("spec", "files", "message"),
    [
        ("mlp", {}, r"'mlp': name the function as MODULE:FUNCTION"),
        ("mlp:", {}, r"'mlp:': name the function as MODULE:FUNCTION"),
        ("nosuch:loss", {}, r"nosuch: no module named 'nosuch' in the current folder"),
        ("pkg.nosuch:loss", {"pkg/__init__.py": ""}, r"no module named 'pkg.nosuch'"),
        ("nosuch.py:loss", {}, r"nosuch.py: no such file; give the path of a Python file"),
        ("sub/:loss", {"sub/x.py": ""}, r"sub/: not a file"),
        (
            "mlp:nope",
            {},
            r"mlp:nope: module mlp \(read from mlp.py\) has no 'nope'; it defines loss",
        ),
        ("mlp:loss.nope", {}, r"mlp:loss.nope: mlp:loss has no 'nope'"),
        ("consts:RATE", {"consts.py": "RATE = 0.1\n"}, r"consts:RATE: is a float, not a function"),
        (
            "raises.py:f",
            {"raises.py": "import math\n\nSCALE = math.sqrt(-1)\n"},
            r"importing raises.py raised ValueError: math domain error \(raises.py:3\); fix",
        ),
        (
            "raises:f",
            {"raises.py": "def helper():\n    return 1 / 0\n\n\nhelper()\n"},
            r"importing raises raised ZeroDivisionError: division by zero \(raises.py:2\)",
        ),
        (
            "broken:f",
            {"broken.py": "def f(:\n    pass\n"},
            r"importing broken raised SyntaxError: .* \(broken.py:1\)",
        ),
        (
            "needs:f",
            {"needs.py": "import not_installed_anywhere\n"},
            r"importing needs raised ModuleNotFoundError: No module named "
            r"'not_installed_anywhere' \(needs.py:1\)",
        ),
        (
            "script.py:f",
            {"script.py": "import sys\n\nsys.exit(3)\n"},
            r"importing script.py called sys.exit\(3\) \(script.py:3\); run a script's work "
            r"under if __name__",
        ),
        (
            "method:Net.loss",
            {"method.py": "class Net:\n    def loss(self, params, x, y):\n        return 0.0\n"},
            r"method:Net.loss: is a method of class 'Net', whose first parameter \(self\) is an "
            r"instance that no --args member can give; make it a @staticmethod",
        ),
        (
            "random:nope",  # the current folder's random.py, not Python's random
            {"random.py": "def loss(params, x, y):\n    return 0.0\n"},
            r"random:nope: module random \(read from random.py\) has no 'nope'; it defines loss$",
        ),
        (
            "random.sub:loss",
            {"random.py": "def loss(params, x, y):\n    return 0.0\n"},
            r"random.sub: random.py in the current folder is a module, not a package, so it has "
            r"no submodule 'sub'; name a function of it \(random:FUNCTION\)",
        ),
        (
            "relpkg/sub/rel.py:loss",
            {
                "relpkg/__init__.py": "",
                "relpkg/sub/__init__.py": "",
                "relpkg/sub/rel.py": "from . import x\n",
            },
            r"importing relpkg/sub/rel.py raised ImportError: attempted relative import with no "
            r"known parent package \(relpkg/sub/rel.py:1\): a file given by its path is run on its "
            r"own, so its relative imports have no package; run graphbp import "
            r"relpkg.sub.rel:loss from the current folder$",
        ),
    ],
)
def test_a_function_that_cannot_be_found_or_imported_is_one_line(
    mlp_dir: Path,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    files: dict[str, str],
    message: str,
) -> None:
    write(mlp_dir, files)
    status, out, err = run_main(["import", spec, "--args", "args.npz"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert err[0].startswith("graphbp import: error: ")
    assert re.search(message, err[0]), err[0]
    assert not (mlp_dir / "graphbp-import").exists()


def test_the_module_search_path_is_restored_after_the_command(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = list(sys.path)
    run_main(["import", "nosuch:loss", "--args", "args.npz"], capsys)
    run_main(["import", "mlp.py:nope", "--args", "args.npz"], capsys)
    assert sys.path == before


def test_without_jax_import_says_how_to_install_it(mlp_dir: Path) -> None:
    """In a Python where importing jax fails as it does when jax is not installed."""
    code = textwrap.dedent(
        """
        import sys

        class NoJax:
            def find_spec(self, name, path=None, target=None):
                if name == "jax" or name.startswith("jax."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoJax())
        from graphbp.cli import main

        sys.exit(main(["import", "mlp:loss", "--args", "args.npz"]))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=mlp_dir, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 2 and run.stderr == (
        "graphbp import: error: graphbp import traces the function with JAX, which is not "
        "installed; install the extra: pip install 'graphbp[jax]'\n"
    )
    assert not (mlp_dir / "graphbp-import").exists()


# ------------------------------------------------------------------ the arguments


def savez(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.pop("y"),
            r"args.npz: has no member for parameter 'y' of loss\(params, x, y\); add it",
        ),
        (
            lambda a: [a.pop(k) for k in ("x", "y")],
            r"has no member for parameters 'x' and 'y' of loss\(params, x, y\); add them",
        ),
        (
            lambda a: a.update(
                arr_0=np.zeros(1), **{"batch.x": np.zeros(1), "batch.y": np.ones(1)}
            ),
            r"members 'arr_0', 'batch.x', 'batch.y' name no parameter of loss",
        ),
        (
            lambda a: a.update(z=np.zeros(2)),
            r"member 'z' names no parameter of loss\(params, x, y\); name each member after "
            r"a parameter \(params, x, y\)",
        ),
        (
            lambda a: a.update({"params": np.zeros(2)}),
            r"member 'params' is an array, and member 'params.W1' makes it a dict or list",
        ),
        (lambda a: a.update({"params..W1": np.zeros(2)}), r"'params..W1' has an empty part"),
        (
            lambda a: a.update({"params.W\n1": np.zeros(2)}),
            r"^graphbp import: error: args.npz: member 'params.W\\n1' names a leaf 'W\\n1', a "
            r"str with a control character \(U\+000A\) at position 1; .*rename the member$",
        ),
        (
            lambda a: a.update({"params.\u202eb": np.zeros(2)}),
            r"args.npz: member 'params.\\u202eb' names a leaf '\\u202eb', a str with a format "
            r"character \(U\+202E\)",
        ),
        (
            lambda a: a.update({"x.0": np.zeros(2), "x.2": np.zeros(2)}) or a.pop("x"),
            r"the members under 'x' are numbered 0, 2; a list's are 0 to 1, each once",
        ),
        (
            lambda a: a.update({".".join(["p"] * 40): np.zeros(1)}),
            r"nests deeper than 32 levels",
        ),
    ],
)
def test_members_that_do_not_fit_the_function_are_named(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    arrays = example()
    change(arrays)
    savez(mlp_dir / "args.npz", **arrays)
    status, _, err = run_main(["import", "mlp:loss", "--args", "args.npz"], capsys)
    assert status == 2 and len(err) == 1 and re.search(message, err[0]), err


@pytest.mark.parametrize(
    ("argnums", "message"),
    [
        ("3", r"--argnums 3: mlp:loss is called with 3 argument\(s\) \(params, x, y, numbered"),
        ("-4", r"--argnums -4: mlp:loss is called with 3 argument"),
        ("0,-3", r"--argnums 0,-3: names one argument twice"),
        ("2", r"--argnums 2 makes argument 'y' a parameter, but it holds int64 values"),
        ("-1", r"--argnums -1 makes argument 'y' a parameter, but it holds int64 values"),
        ("-3,-1", r"--argnums -1 makes argument 'y' a parameter"),
    ],
)
def test_argnums_out_of_range_or_on_integers_is_refused(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], argnums: str, message: str
) -> None:
    arrays = example()
    arrays["y"] = np.arange(6)
    savez(mlp_dir / "args.npz", **arrays)
    status, _, err = run_main(
        ["import", "mlp:loss", "--args", "args.npz", "--argnums", argnums], capsys
    )
    assert status == 2 and len(err) == 1 and re.search(message, err[0]), err


@pytest.mark.parametrize("text", ["x", "0,,1", "0,0", ""])
def test_argnums_must_be_distinct_integers(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    status, _, err = run_main(
        ["import", "mlp:loss", "--args", "args.npz", "--argnums", text], capsys
    )
    assert status == 2 and len(err) == 1 and "argument --argnums" in err[0], err


def test_a_keyword_only_parameter_without_default_is_refused(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(mlp_dir, {"kw.py": "def loss(params, x, y, *, scale):\n    return 0.0\n"})
    status, _, err = run_main(["import", "kw:loss", "--args", "args.npz"], capsys)
    assert status == 2 and "keyword-only parameter 'scale' has no default" in err[0], err


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A version 1.0 .npy header declaring ``shape`` of ``descr``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def raw_header(text: str, data: bytes = b"\0" * 8) -> bytes:
    """A version 1.0 .npy member whose header is ``text`` as it is, then ``data``."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


GOOD_HEADER = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }"


def zipped(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # a name twice, on purpose
        for name, data in members:
            archive.writestr(name, data)
    return path


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


HOSTILE = {
    "pickled objects": (
        lambda p: savez(p, x=np.array([{"a": 1}, None], dtype=object)),
        r"array 'x' has dtype object; expected numbers \(bool, int, unsigned int, float",
    ),
    "a compressed bomb": (
        lambda p: np.savez_compressed(p, x=np.zeros(2**24)) or p,
        r"member 'x.npy' is compressed; graphbp reads uncompressed .npz files only",
    ),
    "strings": (lambda p: savez(p, x=np.array(["a", "b"])), r"array 'x' has dtype <U1; expected"),
    "complex numbers": (
        lambda p: savez(p, x=np.ones(3, complex)),
        r"array 'x' has dtype complex128; expected",
    ),
    "float128": (
        lambda p: savez(p, x=np.ones(3, np.longdouble)),
        r"array 'x' has dtype float128; expected .*at most 64 bits",
    ),
    "a huge declared shape": (
        lambda p: zipped(p, [("x.npy", npy_header((10**6, 10**6)) + b"\0" * 64)]),
        r"array 'x' declares 8,000,000,000,000 bytes of data, more than the file has left",
    ),
    "a truncated member": (
        lambda p: zipped(p, [("x.npy", npy_header((100,)) + b"\0" * 8)]),
        r"array 'x' declares 800 bytes of data, more than the file has left",
    ),
    "a member too long": (
        lambda p: zipped(p, [("x.npy", npy_header((1,)) + b"\0" * 16)]),
        r"array 'x' is truncated or too long",
    ),
    "NaN": (lambda p: savez(p, x=np.array([1.0, np.nan])), r"array 'x' holds NaN or Inf"),
    "not a .npy member": (
        lambda p: zipped(p, [("x.txt", b"hello")]),
        r"member 'x.txt' is not a .npy array",
    ),
    "one member twice": (
        lambda p: zipped(p, [("x.npy", npy(np.zeros(2))), ("x.npy", npy(np.ones(2)))]),
        r"holds the array 'x' twice",
    ),
    "not a zip file": (lambda p: p.write_bytes(b"not a zip") and p, r"not a readable .npz file"),
    "a header dict without its }": (
        lambda p: zipped(p, [("x.npy", raw_header(GOOD_HEADER[:-1] + "\n"))]),
        r"array 'x' cannot be read \(its .npy header is malformed: .*EOF in multi-line",
    ),
    "a header that calls a function": (
        lambda p: zipped(p, [("x.npy", raw_header(GOOD_HEADER.replace("(1,)", "eval('1')")))]),
        r"array 'x' cannot be read \(its .npy header is malformed: ",
    ),
    "a Python 2 header": (
        lambda p: zipped(p, [("x.npy", raw_header(GOOD_HEADER.replace("(1,)", "(1L,)")))]),
        r"array 'x' cannot be read \(its .npy header is malformed: .*created on Python 2",
    ),
    "a header longer than NumPy reads": (
        lambda p: zipped(p, [("x.npy", raw_header(GOOD_HEADER.ljust(10_100) + "\n"))]),
        r"array 'x' has a .npy header of 10,101 bytes, longer than the 10,000 bytes NumPy "
        r"reads; it is not an array NumPy wrote",
    ),
    "a negative dimension": (
        lambda p: zipped(p, [("x.npy", npy_header((-1, 4)))]),
        r"array 'x' declares a negative dimension \(shape \(-1, 4\)\)",
    ),
    "a dimension of 4,000 digits": (
        lambda p: zipped(
            p, [("x.npy", raw_header(GOOD_HEADER.replace("(1,)", f"({'9' * 4000},)")))]
        ),
        r"array 'x' declares about 10\^\d+ bytes of data, more than the file has left",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_args_file_is_refused_before_it_is_used(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, message = HOSTILE[case]
    (mlp_dir / "args.npz").unlink()
    make(mlp_dir / "args.npz")
    status, out, err = run_main(["import", "mlp:loss", "--args", "args.npz"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert err[0].startswith("graphbp import: error: args.npz: "), err
    assert re.search(message, err[0]), err[0]
    assert "allow_pickle" not in err[0] and len(err[0]) < 500  # NumPy's advice: never passed on
    assert not (mlp_dir / "graphbp-import").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_folder_as_args_is_refused_without_reading(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(mlp_dir / "pipe.npz")
    (mlp_dir / "folder.npz").mkdir()
    for name, kind in (("pipe.npz", "a pipe or device"), ("folder.npz", "a folder")):
        status, _, err = run_main(["import", "mlp:loss", "--args", name], capsys)
        assert status == 2 and f"{name}: is {kind}, not a .npz file" in err[0], err


@needs_jax
def test_a_malformed_header_in_a_folder_is_one_line_for_check(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["import", "mlp:loss", "--args", "args.npz", "-o", "o"], capsys)[0] == 0
    with np.load(mlp_dir / "o" / "params.npz") as p:
        members = [(f"{k}.npy", npy(v)) for k, v in p.items() if k != "W1"]
    zipped(mlp_dir / "o" / "params.npz", [*members, ("W1.npy", raw_header(GOOD_HEADER[:-1]))])
    status, _, err = run_main(["check", "o", "--backend", "numpy"], capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(
        "graphbp check: error: o/params.npz: array 'W1' cannot be read (its .npy header is "
        "malformed: "
    ), err
    assert err[0].endswith("; import (or train) the network again"), err


# ------------------------------------------------------------------ folders as graph files


def test_a_folder_without_network_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    for command in (["render", "empty"], ["explain", "empty"], ["check", "empty"]):
        status, _, err = run_main(command, capsys)
        assert status == 2 and len(err) == 1, err
        assert "empty: a folder without network.json; give a network's JSON file" in err[0]


def fixed_batch_network(rows: int = 8) -> gb.Network:
    """A regression network whose inputs take exactly ``rows`` rows, as an import's do."""
    b = gb.Builder()
    x, y = b.input("x", (rows, 10)), b.input("y", (rows, 1))
    yhat = b.dense(b.dense(x, 4, "tanh", name="h1"), 1, None, name="yhat")
    return b.network(b.mse(yhat, y, name="L"))


def test_train_says_a_fixed_batch_network_takes_exactly_so_many_rows() -> None:
    net = fixed_batch_network(8)
    prog = net.compile("numpy")
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(20, 10)), "y": rng.normal(size=(20, 1))}
    with pytest.raises(InputError) as info:
        gb.train(prog, prog.init(0), data, epochs=1, batch_size=8)
    assert str(info.value) == (
        "input 'x' has shape (8, 10): the network takes exactly 8 rows per step (its first "
        "axis is fixed, e.g. because gb.from_jax traced it at batch size 8), but batch_size=8 "
        "on 20 rows gives steps of 8 and 4 rows; train with batch_size=8 on a number of rows "
        "divisible by 8 (e.g. the first 16)"
    )
    with pytest.raises(InputError, match=r"batch_size=5 on 16 rows gives steps of 5 and 1 rows"):
        gb.train(prog, prog.init(0), {k: v[:16] for k, v in data.items()}, batch_size=5)
    with pytest.raises(InputError, match=r"on 3 rows gives steps of 3 rows; .*only 3\)"):
        gb.train(prog, prog.init(0), {k: v[:3] for k, v in data.items()}, batch_size=8)
    with pytest.raises(InputError, match=r"input 'x' has rows of shape \(7,\), but the network"):
        gb.train(prog, prog.init(0), {"x": data["x"][:16, :7], "y": data["y"][:16]}, batch_size=8)
    _, history = gb.train(
        prog, prog.init(0), {k: v[:16] for k, v in data.items()}, epochs=3, batch_size=8
    )
    assert len(history) == 3 and history[-1] < history[0]
    # one step of all the rows, when they are as many as the network takes
    gb.train(prog, prog.init(0), {k: v[:8] for k, v in data.items()}, epochs=1, batch_size=100)


def test_train_graph_refuses_a_fixed_batch_network_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fixed").mkdir()
    fixed_batch_network(32).to_json(tmp_path / "fixed" / "network.json")
    status, out, err = run_main(["train", "--graph", "fixed", "--out", "o"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert err[0] == (
        "graphbp train: error: fixed/network.json: input 'x' has shape (32, 10): the network "
        "takes exactly 32 rows at a time (its first axis is fixed, e.g. because gb.from_jax "
        "traced it at batch size 32), but graphbp train also computes its output on all "
        "training and all test rows at once, so it needs inputs whose first axis is None "
        "(any number of rows); train this network from Python with gb.train(..., "
        "batch_size=32) on a number of rows divisible by 32"
    )
    assert not (tmp_path / "o").exists()


def test_train_graph_takes_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(
        ["train", "--epochs", "2", "--backend", "numpy", "--out", "first"], capsys
    )
    assert status == 0, err
    status, out, err = run_main(
        ["train", "--graph", "first", "--epochs", "2", "--backend", "numpy", "--out", "o"],
        capsys,
    )
    assert status == 0, err
    assert out[0].startswith("graphbp train: first on diabetes"), out
    assert json.loads((tmp_path / "o" / "model.json").read_text())["hyperparameters"]["graph"]


def test_check_a_train_folder_uses_its_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--backend", "numpy", "--out", "o"]) == 0
    capsys.readouterr()
    status, out, err = run_main(["check", "o", "--backend", "numpy"], capsys)
    assert status == 0, err
    assert out[0] == "the network's gradients at o/params.npz"
    # a params.npz that does not fit the network is named
    np.savez(tmp_path / "o" / "params.npz", W1=np.zeros((2, 2)))
    status, out, err = run_main(["check", "o", "--backend", "numpy"], capsys)
    assert status == 2 and "o/params.npz: has no array 'b1'" in err[0], err


# ------------------------------------------------------------------ the round trip


def jax_value_and_grad(arrays: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """MLP's loss and gradients by JAX itself, in float64."""
    import jax

    namespace: dict[str, Any] = {}
    exec(MLP, namespace)
    params = {k.removeprefix("params."): v for k, v in arrays.items() if k.startswith("params.")}
    with jax.enable_x64(True):
        value, grads = jax.value_and_grad(namespace["loss"])(params, arrays["x"], arrays["y"])
        return float(value), {k: np.asarray(v) for k, v in grads.items()}


@needs_jax
def test_import_writes_a_folder_that_every_command_takes(tmp_path: Path) -> None:
    write(tmp_path, {"mlp.py": MLP})
    arrays = example()
    np.savez(tmp_path / "args.npz", **arrays)  # type: ignore[arg-type]
    run = graphbp("import", "mlp:loss", "--args", "args.npz", "-o", "mlp-import", cwd=tmp_path)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    value, grads = jax_value_and_grad(arrays)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("graphbp import: mlp:loss: ") and lines[0].endswith(" nodes")
    assert lines[1] == "  params (32 numbers): 'W1' (3, 5), 'W2' (5, 2), 'b1' (5,), 'b2' (2,)"
    assert lines[2] == "  inputs: 'x' (6, 3), 'y' (6, 2)"
    assert lines[3].startswith("  loss 'loss' on the example arguments: ")
    assert float(lines[3].split(": ")[1].split()[0]) == pytest.approx(value, rel=1e-12)
    assert lines[4] == (
        "wrote mlp-import/network.json, mlp-import/params.npz, mlp-import/inputs.npz"
    )
    folder = tmp_path / "mlp-import"
    assert sorted(p.name for p in folder.iterdir()) == ["inputs.npz", "network.json", "params.npz"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock, no leftovers

    # the folder: the network, its parameters and inputs, as the user's function computes them
    net = gb.Network.from_json(folder / "network.json")
    with np.load(folder / "params.npz") as p, np.load(folder / "inputs.npz") as i:
        params, inputs = dict(p), dict(i)
    assert sorted(params) == ["W1", "W2", "b1", "b2"] and sorted(inputs) == ["x", "y"]
    for name in params:
        np.testing.assert_array_equal(params[name], arrays[f"params.{name}"])
    for name in inputs:
        np.testing.assert_array_equal(inputs[name], arrays[name])
    loss, ours = net.compile("numpy").value_and_grad(params, inputs)
    assert float(loss) == pytest.approx(value, rel=1e-12)
    for name, grad in grads.items():
        np.testing.assert_allclose(ours[name], grad, rtol=1e-10, atol=1e-14)

    explain = graphbp("explain", "mlp-import", "--wrt", "W1", cwd=tmp_path)
    assert explain.returncode == 0, explain.stderr
    assert "4 parameters" in explain.stdout.splitlines()[0]
    assert "∂loss/∂W1 = " in explain.stdout
    check = graphbp("check", "mlp-import", "--backend", "numpy", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[0] == (
        "the network's gradients at mlp-import/params.npz and mlp-import/inputs.npz"
    )
    assert "network on numpy: " in check.stdout
    # the ops this network uses are checked, each once; no conv, gather or window op
    checked = re.findall(r"^op '(\w+)' on numpy:", check.stdout, re.M)
    assert sorted(checked) == sorted({net.op_name(n) for n in net.ops})
    assert not {"conv", "gather", "reduce_window_max"} & set(checked)
    if DOT:
        render = graphbp("render", "mlp-import", "--wrt", "W1", "-o", "w1.svg", cwd=tmp_path)
        assert render.returncode == 0 and render.stdout == "wrote w1.svg\n", render.stderr
        svg = (tmp_path / "w1.svg").read_text()
        assert "∂loss/∂W" in svg and "tanh" in svg  # the caption: ∂loss/∂W₁ = ...


@needs_jax
def test_import_takes_a_file_path_and_replaces_its_own_folder_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"models/mlp.py": MLP, "models/helper.py": "SCALE = 2.0\n"})
    (tmp_path / "models" / "mlp.py").write_text(
        MLP.replace("import jax\n", "import jax\nfrom helper import SCALE\n").replace(
            "return jnp.mean(", "return SCALE * jnp.mean("
        )
    )
    np.savez(tmp_path / "args.npz", **example())  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    command = ["import", "models/mlp.py:loss", "--args", "args.npz", "-o", "out"]
    status, out, err = run_main(command, capsys)
    assert status == 0, err
    value = jax_value_and_grad(example())[0]
    assert float(out[3].split(": ")[1].split()[0]) == pytest.approx(2 * value, rel=1e-12)
    # again, with other arguments: the folder is replaced as a whole
    np.savez(tmp_path / "args.npz", **example(np.random.default_rng(1)))  # type: ignore[arg-type]
    assert run_main(command, capsys)[0] == 0
    with np.load(tmp_path / "out" / "params.npz") as p:
        np.testing.assert_array_equal(p["W1"], example(np.random.default_rng(1))["params.W1"])
    # a folder holding the user's files is not replaced
    (tmp_path / "out" / "notes.txt").write_text("mine")
    status, _, err = run_main(command, capsys)
    assert status == 2 and err == [
        "graphbp import: error: out: holds 'notes.txt', which graphbp import did not write; it "
        "replaces the whole folder, so move it or choose another -o"
    ]
    # nor is the --args file, should it lie in the folder
    (tmp_path / "out" / "notes.txt").unlink()
    (tmp_path / "args.npz").rename(tmp_path / "out" / "args.npz")
    status, _, err = run_main([*command[:3], "out/args.npz", "-o", "out"], capsys)
    assert status == 2 and "out/args.npz: the --args file lies inside -o out" in err[0], err


LOOPED = """\
import jax.numpy as jnp
from jax import lax


def loss(params, x):
    h = lax.fori_loop(0, 3, lambda i, h: jnp.tanh(h @ params["W"]), x)
    return jnp.sum(h**2)
"""


@needs_jax
def test_an_opaque_network_is_refused_with_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"looped.py": LOOPED})
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", **{"params.W": rng.normal(size=(3, 3)), "x": np.ones((2, 3))})
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(["import", "looped:loss", "--args", "a.npz", "-o", "o"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert re.fullmatch(
        r"graphbp import: error: looped:loss: node '\w+' is the JAX primitive '(scan|while)' at "
        r"looped.py:6, which graphbp has no op for: it runs only through JAX and cannot be "
        r"saved to network.json, so nothing was written; .*graphbp ops lists them.*",
        err[0],
    ), err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "looped.py"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "import jax.numpy as jnp\n\n\ndef loss(params, x, y):\n"
            "    return jnp.sum(x @ params['W1'] @ params['W1'])\n",
            r"tracing bad0:loss on the arguments raised TypeError: dot_general requires "
            r"contracting dimensions to have the same shape, .* \(bad0.py:5\); fix the code",
        ),
        (
            "def loss(params, x, y):\n    return params['nope']\n",
            r"tracing bad1:loss on the arguments raised KeyError: 'nope' \(bad1.py:2\)",
        ),
        (
            "import sys\n\n\ndef loss(params, x, y):\n    sys.exit(5)\n",
            r"^graphbp import: error: tracing bad3:loss on the arguments called sys.exit\(5\) "
            r"\(bad3.py:5\); a loss function returns its loss: raise an exception instead",
        ),
        (
            "def loss(params, x, y):\n    raise SystemExit('usage: train.py DATA')\n",
            r"tracing bad4:loss on the arguments called sys.exit\('usage: train.py DATA'\) "
            r"\(bad4.py:2\)",
        ),
        (
            "class Stop(BaseException):\n    pass\n\n\n"
            "def loss(params, x, y):\n    raise Stop('now')\n",
            r"tracing bad5:loss on the arguments raised Stop: now \(bad5.py:6\); fix the code",
        ),
        (
            "def loss(params, x, y):\n    return x * 2\n",
            r"returned an array of shape \(6, 3\); from_jax needs a function returning its loss",
        ),
    ],
)
@needs_jax
def test_a_function_that_fails_on_its_arguments_is_one_line(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    module = re.search(r"bad\d", message)
    name = module[0] if module else "bad2"  # a module name of its own: imports are cached
    write(mlp_dir, {f"{name}.py": source})
    status, out, err = run_main(["import", f"{name}:loss", "--args", "args.npz"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert re.search(message, err[0]), err[0]
    assert not (mlp_dir / "graphbp-import").exists()


STACK = """\
import jax.numpy as jnp


class Net:
    @staticmethod
    def loss(layers, scale, x):
        h = x
        for layer in layers:
            h = jnp.tanh(h @ layer["w"])
        return jnp.sum(h * scale)
"""


@needs_jax
def test_lists_dotted_functions_and_several_argnums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"stack.py": STACK})
    rng = np.random.default_rng(0)
    members = {
        "layers.0.w": rng.normal(size=(3, 4)),
        "layers.1.w": rng.normal(size=(4, 2)),
        "scale": rng.normal(size=2),
        "x": rng.normal(size=(5, 3)),
    }
    np.savez(tmp_path / "a.npz", **members)  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(
        ["import", "stack:Net.loss", "--args", "a.npz", "--argnums", "0,1", "-o", "o"], capsys
    )
    assert status == 0, err
    net = gb.Network.from_json(tmp_path / "o" / "network.json")
    assert sorted(net.params) == ["0.w", "1.w", "scale"] and net.inputs == ["x"]
    assert out[1] == "  params (22 numbers): '0.w' (3, 4), '1.w' (4, 2), 'scale' (2,)"


@needs_jax
def test_negative_argnums_are_taken_as_written(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["import", "mlp:loss", "--args", "args.npz", "--argnums", "-3,-2", "-o", "o"]
    status, _, err = run_main(command, capsys)
    assert status == 0, err
    net = gb.Network.from_json(mlp_dir / "o" / "network.json")
    assert sorted(net.params) == ["W1", "W2", "b1", "b2", "x"] and net.inputs == ["y"]


@needs_jax
def test_a_module_python_has_already_imported_is_the_current_folders(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As python -m finds it: ./random.py, not Python's random; ./types/, not Python's types."""
    import random
    import types

    write(mlp_dir, {"random.py": MLP, "types/__init__.py": "", "types/act.py": ACT})
    write(
        mlp_dir,
        {
            "types/model.py": MLP.replace("jnp.tanh(", "act(").replace(
                "import jax\n", "import jax\nfrom .act import act\n"
            )
        },
    )
    for spec in ("random:loss", "types.model:loss"):
        status, out, err = run_main(["import", spec, "--args", "args.npz", "-o", "o"], capsys)
        assert status == 0 and out[0].startswith(f"graphbp import: {spec}: "), err
    assert sys.modules["random"] is random and sys.modules["types"] is types  # Python's, kept
    net = gb.Network.from_json(mlp_dir / "o" / "network.json")
    assert "tanh" not in {net.op_name(n) for n in net.order}  # the current folder's act


ACT = """\
import jax.numpy as jnp


def act(z):
    return z / (1 + jnp.abs(z))
"""


@needs_jax
@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            {"x": np.zeros((0, 3)), "y": np.zeros((0, 2))},
            r"^graphbp import: error: mlp:loss: its loss on the example arguments is nan \(numpy, "
            r"float64\), likely from arguments 'x' \(0, 3\), 'y' \(0, 2\) have no elements \(a "
            r"mean or softmax of nothing\); nothing was written: give --args values on which the "
            r"loss is finite$",
        ),
        (
            {"y": np.full((6, 2), 1e300)},
            r"mlp:loss: its loss on the example arguments is inf \(numpy, float64\), likely from "
            r"the example values \(",
        ),
    ],
)
def test_a_loss_that_is_not_finite_on_the_arguments_is_refused(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str], members: dict[str, Any], message: str
) -> None:
    savez(mlp_dir / "args.npz", **{**example(), **members})
    status, out, err = run_main(["import", "mlp:loss", "--args", "args.npz"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert re.search(message, err[0]), err[0]
    assert not (mlp_dir / "graphbp-import").exists()


@needs_jax
def test_an_output_name_is_printed_escaped(
    mlp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(["import", "mlp:loss", "--args", "args.npz", "-o", "a\nb"], capsys)
    assert status == 0, err
    assert out[-1] == "wrote a\\nb/network.json, a\\nb/params.npz, a\\nb/inputs.npz"
    assert (mlp_dir / "a\nb" / "network.json").is_file()


POSITIVE = """\
import jax.numpy as jnp


def loss(w, x):
    return jnp.sum(w * jnp.log(x))
"""


@needs_jax
def test_check_uses_the_folder_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random normal inputs would take the log of negative numbers; the folder's do not."""
    write(tmp_path, {"positive.py": POSITIVE})
    np.savez(tmp_path / "a.npz", w=np.linspace(0.5, 1.5, 4), x=np.linspace(1, 2, 4))
    monkeypatch.chdir(tmp_path)
    assert run_main(["import", "positive:loss", "--args", "a.npz", "-o", "o"], capsys)[0] == 0
    status, out, err = run_main(["check", "o", "--backend", "numpy"], capsys)
    assert status == 0, err
    assert out[0] == "the network's gradients at o/params.npz and o/inputs.npz"
    assert out[-1] == "all gradients agree with float64 central differences on numpy"
    (tmp_path / "o" / "inputs.npz").unlink()  # random normal inputs: log of negatives
    status, out, err = run_main(["check", "o", "--backend", "numpy"], capsys)
    assert out[0] == "the network's gradients at o/params.npz"
    assert status != 0 and "op 'log' at node" in err[0], err


@needs_jax
def test_an_imported_network_trains_in_steps_of_its_traced_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"mlp.py": MLP})
    rng = np.random.default_rng(0)
    arrays = {**example(), "x": rng.normal(size=(6, 10)), "params.W1": rng.normal(size=(10, 5))}
    arrays["y"] = rng.normal(size=(6, 1))
    arrays["params.W2"], arrays["params.b2"] = rng.normal(size=(5, 1)), np.zeros(1)
    np.savez(tmp_path / "a.npz", **arrays)  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    assert run_main(["import", "mlp:loss", "--args", "a.npz", "-o", "o"], capsys)[0] == 0
    net = gb.Network.from_json(tmp_path / "o" / "network.json")
    prog = net.compile("numpy")
    with np.load(tmp_path / "o" / "params.npz") as p:
        params = dict(p)
    data = {"x": rng.normal(size=(24, 10)), "y": rng.normal(size=(24, 1))}
    with pytest.raises(InputError, match=r"input 'x' has shape \(6, 10\): the network takes "):
        gb.train(prog, params, data, batch_size=32)
    _, history = gb.train(prog, params, data, batch_size=6, epochs=5, lr=0.05)
    assert history[-1] < history[0]
    status, out, err = run_main(["train", "--graph", "o", "--out", "t"], capsys)
    assert status == 2 and out == [] and len(err) == 1, err
    assert err[0].startswith(
        "graphbp train: error: o/network.json: input 'x' has shape (6, 10): the network "
        "takes exactly 6 rows at a time"
    )


# ------------------------------------------------------------------ the README's round trip

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Bring your own JAX model"


def readme_round_trip() -> tuple[dict[str, str], list[list[str]]]:
    """The README's command-line round trip: its files (fenced blocks whose first line is a
    comment naming the file) and its commands (the indented block after them)."""
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    section = text[start : text.index("\n## ", start + 1)]
    files = dict(re.findall(r"```python\n# (\S+\.py)\n(.*?)```", section, flags=re.DOTALL))
    first = section.index("\n    python ")
    block = section[first : section.index("\n\n", first + 1)]
    commands = [shlex.split(line, comments=True) for line in block.strip("\n").splitlines()]
    return files, commands


def test_the_readme_shows_the_round_trip() -> None:
    files, commands = readme_round_trip()
    assert sorted(files) == ["mlp.py"]
    assert [c[:2] for c in commands] == [
        ["python", "mlp.py"],
        ["graphbp", "import"],
        ["graphbp", "render"],
        ["graphbp", "check"],
    ]


@needs_jax
@pytest.mark.skipif(not DOT, reason="graphbp render needs Graphviz's dot")
def test_the_readme_round_trip_runs_as_printed(tmp_path: Path) -> None:
    files, commands = readme_round_trip()
    for name, text in files.items():
        (tmp_path / name).write_text(f"# {name}\n{text}")
    program = {"python": [sys.executable], "graphbp": [sys.executable, "-m", "graphbp"]}
    for command in commands:
        run = subprocess.run(
            [*program[command[0]], *command[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, (command, run.stderr)
    folder = tmp_path / "mlp-import"
    assert sorted(p.name for p in folder.iterdir()) == ["inputs.npz", "network.json", "params.npz"]
    assert "∂loss/∂W" in (tmp_path / "mlp_w1.svg").read_text()
    net = gb.Network.from_json(folder / "network.json")
    assert sorted(net.params) == ["W1", "W2", "b1", "b2"] and sorted(net.inputs) == ["x", "y"]
