"""Training across processes: jax.distributed on this machine, 2 processes × 2 CPU devices.

Each test starts real processes (a coordinator on localhost at a free port, gloo CPU
collectives, ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` each: 4 global devices)
and compares them with one process training the same data, seed and batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import graphbp

import graphbp as gb
from graphbp.registry import backends as installed_backends

pytestmark = pytest.mark.skipif("jax" not in installed_backends(), reason="jax is not installed")

TIMEOUT = 240
"""Seconds a group of processes may take before it is killed and the test fails."""


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port: int = s.getsockname()[1]
        return port


def run_together(
    commands: list[list[str]], cwds: list[Path], devices: tuple[int, ...] = ()
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``commands`` at once, each in its own process group with 2 forced CPU devices (or
    ``devices[i]`` for command i); wait for all of them (at most TIMEOUT seconds), and kill
    every group still running on failure."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    counts = devices or (2,) * len(commands)
    procs = [
        subprocess.Popen(
            c,
            cwd=d,
            env={**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for c, d, n in zip(commands, cwds, counts, strict=True)
    ]
    done = []
    try:
        for command, p in zip(commands, procs, strict=True):
            out, err = p.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(command, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    return done


def no_gloo(stderr: str) -> str:
    """``stderr`` without the lines gloo's C++ library prints when its peers connect (from
    several threads at once, so one may start inside another) and graphbp train's line
    while it waits for the processes to join."""
    gloo = "peer ranks. Expected number of connected peer ranks is"
    return "".join(
        line
        for line in stderr.splitlines(True)
        if gloo not in line and not line.startswith("graphbp train: process ")
    )


def waiting(pid: int, port: int, processes: int = 2, timeout: int = 300) -> str:
    """The line graphbp train prints to stderr while process ``pid`` waits to join."""
    return (
        f"graphbp train: process {pid} waiting for {processes} processes at localhost:{port} "
        f"(at most {timeout} s) ..."
    )


WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np

    port, pid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
    import graphbp as gb

    def report(result):  # a file: gloo's threads may print to stdout at any time
        with open(f"result{pid}.json", "w") as file:
            json.dump(result, file)

    net = gb.Network(gb.seed_network(6, 8, 2))
    if mode == "other-network" and pid == 1:  # the same parameters' shapes, another network
        net = gb.Network(gb.mlp((6, 8, 8, 2), activation="tanh", loss="sse"))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((42, 6)), "y": rng.standard_normal((42, 2))}
    seed = 0
    if mode == "other-data" and pid == 1:
        data["x"][41, 5] += 0.5  # a value no batch of process 1 reads: refused all the same
    if mode == "other-seed" and pid == 1:
        seed = 1
    lr = 1e30 if mode == "diverge" else 0.01  # every process stops at the same step
    dtype = "float64" if mode == "other-dtype" and pid == 1 else "float32"
    check = mode == "other-check-finite" and pid == 1  # other collectives: refused first
    prog = net.compile("jax", dtype, check_finite=check, devices=jax.device_count())
    try:
        params, history = gb.train(
            prog, prog.init(0), data, lr=lr, epochs=3, batch_size=8, optimizer="adam",
            seed=seed, progress=False,
        )
    except gb.GraphbpError as exc:
        report({"error": type(exc).__name__, "message": str(exc)})
        sys.exit(0)

    class Seen(np.ndarray):
        '''A host array that records the rows read from it.'''
        rows = []

        def __getitem__(self, index):
            Seen.rows += np.asarray(index[0]).tolist()
            return np.asarray(super().__getitem__(index))

    rows = np.array([5, 17, 3, 40, 22, 9, 31, 0])  # one batch of 8: 2 rows per device
    host = np.asarray(data["x"], np.float32).view(Seen)
    (batch,) = prog.backend.feed(prog.layout, [host], rows)
    fed = sorted(
        (s.index[0].start, np.asarray(s.data).tolist()) for s in batch.addressable_shards
    )
    h1 = prog.forward(params, {"x": data["x"][:40]}, ["h1"])["h1"]  # 40 rows: 10 per device
    report({
        "processes": jax.process_count(), "devices": jax.device_count(),
        "params": {k: prog.backend.to_numpy(v).tolist() for k, v in params.items()},
        "history": history, "read": sorted(Seen.rows), "fed": fed,
        "batch_shape": list(batch.shape),
        "h1_addressable": h1.is_fully_addressable,
        "h1": prog.backend.to_numpy(h1).tolist(),
    })
    """
)


def two_processes(tmp_path: Path, mode: str) -> list[dict[str, object]]:
    """What each of 2 processes running WORKER in ``mode`` reported (a JSON object each)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    runs = run_together(
        [[sys.executable, str(script), str(port), str(pid), mode] for pid in (0, 1)],
        [tmp_path, tmp_path],
    )
    for run in runs:
        assert run.returncode == 0, no_gloo(run.stderr)
    return [json.loads((tmp_path / f"result{pid}.json").read_text()) for pid in (0, 1)]


def test_two_processes_train_like_one_process(tmp_path: Path) -> None:
    first, second = two_processes(tmp_path, "same")
    assert first["processes"] == 2 and first["devices"] == 4
    # the same history and parameters in every process, bit for bit
    assert first["history"] == second["history"] and first["params"] == second["params"]

    net = gb.Network(gb.seed_network(6, 8, 2))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((42, 6)), "y": rng.standard_normal((42, 2))}
    prog = net.compile("jax", "float32")  # one process, one device
    params, history = gb.train(
        prog, prog.init(0), data, lr=0.01, epochs=3, batch_size=8, optimizer="adam",
        progress=False,
    )  # fmt: skip
    np.testing.assert_allclose(first["history"], history, rtol=1e-6)
    for name, want in params.items():
        got = np.asarray(first["params"][name], np.float32)
        want = np.asarray(want)
        assert np.max(np.abs(got - want)) <= 1e-6 * max(1.0, float(np.max(np.abs(want))))

    # each process reads and sends only its own devices' rows of a batch
    rows = [5, 17, 3, 40, 22, 9, 31, 0]
    x = np.asarray(data["x"], np.float32)
    assert first["batch_shape"] == second["batch_shape"] == [8, 6]
    for run in (first, second):
        fed = run["fed"]
        assert [len(values) for _, values in fed] == [2, 2]  # 2 devices × 2 rows
        mine = [r for start, _ in fed for r in rows[start : start + 2]]
        assert run["read"] == sorted(mine)
        for start, values in fed:
            np.testing.assert_array_equal(values, x[rows[start : start + 2]])
    assert sorted(first["read"] + second["read"]) == sorted(rows)

    # a value split across processes is gathered from all of them
    assert first["h1_addressable"] is False
    want_h1 = prog.forward(params, {"x": data["x"][:40]}, ["h1"])["h1"]
    np.testing.assert_allclose(first["h1"], np.asarray(want_h1), atol=1e-5)
    assert first["h1"] == second["h1"]


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("other-data", "other training data"),
        ("other-seed", "other options (lr, epochs, batch_size, seed, initial_epoch, optimizer)"),
        ("other-network", "another network"),
        ("other-dtype", "other options (backend, dtype, check_finite)"),
        ("other-check-finite", "other options (backend, dtype, check_finite)"),
    ],
)
def test_processes_given_other_arguments_all_refuse(tmp_path: Path, mode: str, named: str) -> None:
    for run in two_processes(tmp_path, mode):
        assert run["error"] == "InputError"
        assert str(run["message"]).startswith(f"process 1 of 2 was given {named} than")


def test_a_divergence_stops_every_process_naming_the_same_step(tmp_path: Path) -> None:
    first, second = two_processes(tmp_path, "diverge")
    assert first == second  # replayed node by node across the processes, alike
    assert first["error"] == "NonFiniteError"
    assert str(first["message"]).startswith("training diverged in epoch 1 of 3, batch ")


# ------------------------------------------------------------------------ the command line

TRAIN = ["train", "--backend", "jax", "--dtype", "float32", "--epochs", "3", "--out", "model"]


def across_processes(
    args: list[str],
    p0: Path,
    p1: Path,
    devices: tuple[int, ...] = (),
    own: tuple[list[str], list[str]] = ([], []),
) -> list[subprocess.CompletedProcess[str]]:
    """``python -m graphbp ARGS`` as processes 0 (in ``p0``) and 1 (in ``p1``) of one run
    (with ``devices`` CPU devices each, and each process's ``own`` arguments last)."""
    port = free_port()
    where = ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    graphbp_ = [sys.executable, "-m", "graphbp", *args, *where]
    runs = run_together(
        [[*graphbp_, "--process-id", str(pid), *own[pid]] for pid in (0, 1)], [p0, p1], devices
    )
    for pid, run in enumerate(runs):  # the first line: waiting to join
        told = (
            own[pid][own[pid].index("--num-processes") + 1] if "--num-processes" in own[pid] else 2
        )
        assert run.stderr.startswith(waiting(pid, port, int(told)) + "\n"), run.stderr
    return runs


def same_model(got: Path, want: Path) -> None:
    """The model folders ``got`` and ``want`` hold the same files, descriptions and
    parameters (to 1e-6, float32)."""
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in want.iterdir())
    with np.load(got / "params.npz") as mine, np.load(want / "params.npz") as theirs:
        assert sorted(mine.files) == sorted(theirs.files)
        for name in theirs.files:
            scale = max(1.0, float(np.max(np.abs(theirs[name]))))
            assert np.max(np.abs(mine[name] - theirs[name])) <= 1e-6 * scale, name
    about = json.loads((got / "model.json").read_text())
    assert about == json.loads((want / "model.json").read_text())
    assert about["trained_with"] == {"backend": "jax", "dtype": "float32"}


def test_graphbp_train_across_two_processes_equals_one_process(tmp_path: Path) -> None:
    p0, p1, alone = tmp_path / "p0", tmp_path / "p1", tmp_path / "one"
    for d in (p0, p1, alone):
        d.mkdir()
    zero, one = across_processes(TRAIN, p0, p1)
    assert zero.returncode == 0, no_gloo(zero.stderr)
    assert one.returncode == 0, no_gloo(one.stderr)
    single = graphbp(*TRAIN, cwd=alone, env={"XLA_FLAGS": ""})
    assert single.returncode == 0, single.stderr

    assert one.stdout == "" and no_gloo(one.stderr) == ""  # process 1 prints nothing more
    assert list(p1.iterdir()) == []
    assert zero.stdout == single.stdout  # the same summary, table and files
    same_model(p0 / "model", alone / "model")

    # resumed across processes: each process reads the folder (a copy on process 1's "host")
    shutil.copytree(p0 / "model", p1 / "model")
    before = {p.name: p.read_bytes() for p in (p1 / "model").iterdir()}
    more = ["train", "--backend", "jax", "--resume", "model", "--epochs", "2"]
    zero, one = across_processes(more, p0, p1)
    assert zero.returncode == 0, no_gloo(zero.stderr)
    assert one.returncode == 0, no_gloo(one.stderr)
    single = graphbp(*more, cwd=alone, env={"XLA_FLAGS": ""})
    assert single.returncode == 0, single.stderr
    assert one.stdout == "" and zero.stdout == single.stdout
    assert {p.name: p.read_bytes() for p in (p1 / "model").iterdir()} == before
    same_model(p0 / "model", alone / "model")


def test_a_process_that_cannot_start_stops_the_others_at_once(tmp_path: Path) -> None:
    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for d in cwds:
        d.mkdir()
    (cwds[0] / "model").write_text("not a folder")  # process 0 cannot write its --out
    zero, one = across_processes(TRAIN, *cwds)
    assert zero.returncode == 2, zero.stderr
    # (lines JAX may log as the processes leave aside)
    assert (
        "graphbp train: error: model: exists and is not a folder; choose another --out"
        in zero.stderr.splitlines()
    )
    assert one.returncode == 2, one.stderr
    assert (
        "graphbp train: error: process 0 of 2 stopped before training (its own output says "
        "why), so every process stops; fix it and start them all again"
    ) in one.stderr.splitlines()
    assert zero.stdout == one.stdout == ""
    assert list(cwds[1].iterdir()) == []
    assert (cwds[0] / "model").read_text() == "not a folder"


def test_processes_with_other_numbers_of_devices_train_like_one_process(tmp_path: Path) -> None:
    p0, p1, alone = tmp_path / "p0", tmp_path / "p1", tmp_path / "one"
    for d in (p0, p1, alone):
        d.mkdir()
    args = [*TRAIN, "--batch-size", "7"]  # 4 devices: 1 on process 0, 3 on process 1
    zero, one = across_processes(args, p0, p1, devices=(1, 3))
    assert zero.returncode == 0, no_gloo(zero.stderr)
    assert one.returncode == 0, no_gloo(one.stderr)
    single = graphbp(*args, cwd=alone, env={"XLA_FLAGS": ""})
    assert single.returncode == 0, single.stderr
    assert zero.stdout == single.stdout
    same_model(p0 / "model", alone / "model")


@pytest.mark.parametrize(
    ("own", "first", "second"),
    [
        (  # process 1 joins, then stops: the others hear it at once, not after --timeout
            ([], ["--backend", "numpy"]),
            "process 1 of 2 stopped before training (its own output says why), so every "
            "process stops; fix it and start them all again",
            "--coordinator trains across processes with jax.distributed, but the backend is "
            "'numpy'; add --backend jax (or set GRAPHBP_BACKEND=jax)",
        ),
        (
            ([], ["--num-processes", "3"]),
            "process 1 of 2 was given --num-processes 3, process 0 --num-processes 2; give "
            "every process the same number",
            "process 1 of 2 was given --num-processes 3, process 0 --num-processes 2; give "
            "every process the same number",
        ),
        (  # other collectives in each process: refused, not a crash in gloo
            ([], ["--check-finite"]),
            "process 1 of 2 was given other options (backend, dtype, check_finite) than",
            "process 1 of 2 was given other options (backend, dtype, check_finite) than",
        ),
        (
            ([], ["--dtype", "float64"]),
            "process 1 of 2 was given other options (backend, dtype, check_finite) than",
            "process 1 of 2 was given other options (backend, dtype, check_finite) than",
        ),
    ],
)
def test_processes_given_other_options_all_stop_at_once(
    tmp_path: Path, own: tuple[list[str], list[str]], first: str, second: str
) -> None:
    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for d in cwds:
        d.mkdir()
    runs = across_processes(TRAIN, *cwds, own=own)
    for run, message in zip(runs, (first, second), strict=True):
        assert run.returncode == 2, run.stderr
        errors = [x for x in run.stderr.splitlines() if x.startswith("graphbp train: error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"graphbp train: error: {message}")
    assert list(cwds[1].iterdir()) == []


def test_processes_given_other_networks_all_refuse(tmp_path: Path) -> None:
    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for d, activation in zip(cwds, ("sigmoid", "tanh"), strict=True):
        d.mkdir()  # the same parameters' shapes
        gb.Network(gb.mlp((10, 16, 16, 1), activation=activation, loss="sse")).to_json(d / "n.json")
    runs = across_processes([*TRAIN, "--graph", "n.json"], *cwds)
    for run in runs:
        assert run.returncode == 2, run.stderr
        assert [x for x in run.stderr.splitlines() if "error" in x] == [
            "graphbp train: error: process 1 of 2 was given another network than process 0: "
            "every process of a jax.distributed run calls gb.train with the same arguments (the "
            "same network, compiled alike; the whole training data, which gb.train splits into "
            "each process's rows of every batch; the same parameters, optimizer state, seed and "
            "options); load the same data with the same seed in every process"
        ]
    assert not (cwds[0] / "model").exists() and list(cwds[1].iterdir()) == [cwds[1] / "n.json"]


def test_a_process_alone_says_it_waits_and_jax_ends_it_after_timeout(tmp_path: Path) -> None:
    port = free_port()
    where = ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", "0"]
    (run,) = run_together(
        [[sys.executable, "-m", "graphbp", *TRAIN, *where, "--timeout", "3"]], [tmp_path]
    )
    assert run.stderr.startswith(waiting(0, port, timeout=3) + "\n"), run.stderr
    assert run.returncode == -signal.SIGABRT  # jax's own end, as --timeout's help says
    assert "DEADLINE_EXCEEDED" in run.stderr
    assert run.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--coordinator", "localhost:1234"],
            "--coordinator without --num-processes and --process-id: a run across processes "
            "needs all three",
        ),
        (
            ["--num-processes", "2", "--process-id", "0"],
            "--num-processes and --process-id without --coordinator",
        ),
        (
            ["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"],
            "--process-id 2 with --num-processes 2: the processes are numbered 0 to 1",
        ),
        (["--timeout", "10"], "--timeout without --coordinator: it is how long a run across"),
        (["--timeout", "0"], "argument --timeout: must be at least 1"),
        (["--coordinator", "localhost"], "argument --coordinator: must be HOST:PORT"),
        (["--coordinator", "local host:80"], "argument --coordinator: must be HOST:PORT"),
        (["--coordinator", "h:1\n2"], "argument --coordinator: must be HOST:PORT"),
        (["--coordinator", ":80"], "argument --coordinator: must be HOST:PORT"),
        (["--coordinator", "[::1]:0"], "must be from 1 to 65535, got 0"),
        (["--coordinator", "h:65536"], "must be from 1 to 65535, got 65536"),
        (["--num-processes", "0"], "argument --num-processes: must be at least 1"),
        (["--process-id", "-1"], "argument --process-id: a process number is from 0"),
    ],
)  # fmt: skip
def test_process_options_are_checked_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = graphbp("train", *args, cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert len(run.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_process_options_without_jax_say_how_to_install_it(tmp_path: Path) -> None:
    code = "import sys; sys.modules['jax'] = None; from graphbp.cli import main; sys.exit(main())"
    args = ["train", "--coordinator", "localhost:1234"]
    args += ["--num-processes", "2", "--process-id", "1"]
    run = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(
        "graphbp train: error: --coordinator trains across processes with jax.distributed, "
        "but backend 'jax' cannot import its dependencies"
    )
    assert run.stderr.endswith("pip install 'graphbp[jax]'\n")
    assert list(tmp_path.iterdir()) == []
