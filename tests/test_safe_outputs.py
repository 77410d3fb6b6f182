"""A run's outputs are all-or-nothing: `graphbp train` writes its output set beside --out and
swaps it in whole, so a kill (SIGKILL, Ctrl-C), a full disk or a failing write leaves the
complete old set or the complete new set; --out is checked and locked before training."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import graphbp

from graphbp import outputs
from graphbp.errors import GraphFileError
from graphbp.io import write_atomic
from graphbp.outputs import OutputFolder

HEADER = "graphbp train: seed network"  # printed once the checks passed, before training
PARAMS = ["W1", "W2", "W3", "b1", "b2", "b3"]
DIAGRAMS = ["chain_rule.svg", "graph.html"] if shutil.which("dot") else ["chain_rule.dot"]
MODEL = ["model.json", "network.json", "params.npz", "optimizer.npz", "metrics.json"]
SET = sorted([*MODEL, "history.csv", "loss.png", "loss.svg", *DIAGRAMS])
TRAIN = [sys.executable, "-m", "graphbp.cli", "train", "--backend", "numpy"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def refuse(token: str) -> None:
    raise AssertionError(f"non-standard JSON token {token}")


def check_complete(files: dict[str, bytes], epochs: int) -> None:
    """``files`` are one whole output set of a run of ``epochs`` epochs, every file loadable."""
    assert sorted(files) == SET
    with np.load(io.BytesIO(files["params.npz"])) as npz:
        assert sorted(npz.files) == PARAMS
        assert all(np.isfinite(npz[k]).all() for k in PARAMS)
    metrics = json.loads(files["metrics.json"], parse_constant=refuse)
    network = json.loads(files["network.json"], parse_constant=refuse)
    assert {n["id"] for n in network["nodes"]} >= set(PARAMS)
    rows = list(csv.reader(io.StringIO(files["history.csv"].decode())))
    assert rows[0] == ["epoch", "train_loss", "test_loss"]
    assert [int(r[0]) for r in rows[1:]] == [1, 2][:epochs]
    assert metrics["final_train_loss"] == float(rows[-1][1])  # history and metrics: one run
    for name in DIAGRAMS:
        if name.endswith(".svg"):
            ET.fromstring(files[name])
        elif name.endswith(".html"):
            assert files[name].rstrip().endswith(b"</html>")
        else:
            assert files[name].rstrip().endswith(b"}")


def error_lines(stderr: str) -> list[str]:
    """What stderr says besides the progress bar (tqdm redraws it with carriage returns)."""
    return [
        line
        for line in re.split(r"[\r\n]", stderr)
        if line.strip() and not line.startswith("train:")
    ]


def hidden(folder: Path) -> list[str]:
    """What graphbp keeps beside --out 'o' while it runs: the lock and the new set's folder."""
    return sorted(n for n in os.listdir(folder) if n.startswith(".o."))


@pytest.fixture(scope="module")
def old_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of a run that went well (seed 0, 2 epochs)."""
    where = tmp_path_factory.mktemp("old")
    run = graphbp("train", "--backend", "numpy", "--epochs", "2", "--out", "o", cwd=where)
    assert run.returncode == 0, run.stderr
    check_complete(snapshot(where / "o"), 2)
    return where / "o"


# ------------------------------------------------------------------- fault injection


@contextlib.contextmanager
def started(args: list[str], cwd: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """``graphbp train ARGS`` running in the background; killed if the test fails first."""
    proc = subprocess.Popen(
        [*TRAIN, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def wait_for_new_folder(cwd: Path, proc: subprocess.Popen[str], stale: set[str]) -> str | None:
    """Poll until the run makes its hidden new folder beside --out (its write phase has
    begun); None if it ended first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [n for n in hidden(cwd) if ".graphbp-new-" in n and n not in stale]
        if new:
            return new[0]
        if proc.poll() is not None:
            return None
        time.sleep(0.0005)
    raise AssertionError("the run never began to write")


def test_kills_at_any_point_leave_the_old_set_or_the_new_set_never_a_mix(
    tmp_path: Path, old_set: Path
) -> None:
    shutil.copytree(old_set, tmp_path / "o")
    reference = snapshot(tmp_path / "o")

    # One undisturbed run to learn how long the run and its write phase last here.
    began = time.monotonic()
    with started(["--epochs", "2", "--seed", "100", "--out", "o"], tmp_path) as proc:
        new = wait_for_new_folder(tmp_path, proc, set())
        assert new is not None
        writing = time.monotonic()
        while (tmp_path / new).exists() and proc.poll() is None:
            time.sleep(0.0005)
        write_phase = time.monotonic() - writing
        assert proc.wait(timeout=120) == 0, proc.communicate()[1]
        whole_run = time.monotonic() - began
    reference = snapshot(tmp_path / "o")
    check_complete(reference, 2)

    plan: list[tuple[signal.Signals, str, float]] = []
    for sig in (signal.SIGKILL, signal.SIGINT):
        plan += [(sig, "write", write_phase * k / 6) for k in range(8)]  # to past its end
        plan += [(sig, "run", whole_run * f) for f in (0.1, 0.35, 0.6, 0.85)]
    landed = {signal.SIGKILL: 0, signal.SIGINT: 0}
    for seed, (sig, aim, delay) in enumerate(plan, start=1):
        stale = set(hidden(tmp_path))  # what the kill before may have left
        with started(["--epochs", "2", "--seed", str(seed), "--out", "o"], tmp_path) as proc:
            in_write_phase = False
            if aim == "write":
                new = wait_for_new_folder(tmp_path, proc, stale)
                if new is not None:
                    # It cleaned up before it trained: only its lock and its own new folder.
                    assert hidden(tmp_path) in (sorted([".o.lock", new]), [new]), stale
                    time.sleep(delay)
                    in_write_phase = proc.poll() is None and (tmp_path / new).exists()
            else:
                time.sleep(delay)
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=120)
        landed[sig] += in_write_phase

        now = snapshot(tmp_path / "o")
        if now == reference:
            held = "old"
        else:  # a complete new set: every file loads, and none is left from the old set
            held = "new"
            check_complete(now, 2)
            for name in ("params.npz", "history.csv", "metrics.json"):
                assert now[name] != reference[name], f"{name} of the old set beside new files"
            reference = now
        said = [line for line in error_lines(stderr) if "interrupted" in line]
        if sig == signal.SIGINT and said:
            # 130; or death by SIGINT where CPython flagged the interrupt as unhandled because
            # it first surfaced in code an import ran through PyRun_String (main caught it).
            assert proc.returncode in (130, -signal.SIGINT), stderr
            assert len(said) == 1 and "Traceback" not in stderr, stderr
            if held == "old":
                assert said[0].endswith(("; o is unchanged", "; nothing was written")), said
            else:
                assert said[0].endswith("; o holds the complete new outputs"), said
        else:
            assert proc.returncode in (0, -sig, 128 + sig, 130), stderr

    # Both kinds of kill were tried while the outputs were being written ...
    assert landed[signal.SIGKILL] > 0 and landed[signal.SIGINT] > 0, landed
    # ... and the next run succeeds and leaves nothing beside --out.
    final = graphbp("train", "--backend", "numpy", "--epochs", "2", "--out", "o", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    check_complete(snapshot(tmp_path / "o"), 2)
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_ctrl_c_during_training_says_out_is_unchanged_or_not_created(
    tmp_path: Path, old_set: Path
) -> None:
    shutil.copytree(old_set, tmp_path / "kept")
    before = snapshot(tmp_path / "kept")
    for out, outcome in (("kept", "kept is unchanged"), ("fresh", "fresh was not created")):
        with started(["--epochs", "1000000", "--out", out], tmp_path, PYTHONUNBUFFERED="1") as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith(HEADER)  # training has begun
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130
        assert error_lines(stderr) == [f"graphbp train: interrupted during training; {outcome}"]
    assert snapshot(tmp_path / "kept") == before
    assert sorted(os.listdir(tmp_path)) == ["kept"]


# ------------------------------------------------------------- failing writes, full disk


def train_with(setup: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``graphbp train ARGS`` in a process that first runs ``setup`` (Python) and then
    replaces itself with the CLI (no preexec_fn: forking the test process, which may hold
    JAX's threads, is unsafe)."""
    launch = f"import os, sys; {setup}; os.execv(sys.executable, sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", launch, *TRAIN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("limit", [2_000, 12_000])  # the first file fails; the fifth does
def test_a_failing_write_is_one_line_exit_2_and_the_old_set_stays(
    tmp_path: Path, old_set: Path, limit: int
) -> None:
    shutil.copytree(old_set, tmp_path / "o")
    before = snapshot(tmp_path / "o")
    limited = (  # a write past the limit fails with EFBIG (SIGXFSZ, which would kill, ignored)
        f"import resource, signal; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
        "; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)"
    )
    run = train_with(limited, ["--epochs", "2", "--seed", "7", "--out", "o"], tmp_path)
    assert run.returncode == 2, run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1, run.stderr
    assert re.fullmatch(
        r"graphbp train: error: o/[\w.]+: cannot write \(File too large\); o is unchanged", lines[0]
    )
    assert snapshot(tmp_path / "o") == before
    assert sorted(os.listdir(tmp_path)) == ["o"]


def in_namespace(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root of a new user and mount namespace (mounts stay in it)."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env, "PY": sys.executable},
    )


def _namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _namespaces(), reason="needs unshare -r -m (user namespaces) to mount a read-only folder"
)


@needs_mounts
def test_a_full_disk_is_one_line_exit_2_and_the_old_set_stays(
    tmp_path: Path, old_set: Path
) -> None:
    # A file system just big enough for the old set (and the lock), not for a second set.
    kb = sum(4 * math.ceil(p.stat().st_size / 4096) for p in old_set.iterdir()) + 12
    script = (
        f"mount -t tmpfs -o size={kb}k none disk && cp -a {old_set} disk/o && "
        "sha256sum disk/o/* > before && "
        '"$PY" -m graphbp.cli train --backend numpy --epochs 2 --seed 3 --out disk/o '
        "2> err; echo $? > status; sha256sum disk/o/* > after; ls -A disk > left"
    )
    line = _one_error_on_a_small_disk(script, tmp_path)
    assert re.fullmatch(
        r"graphbp train: error: disk/o/[\w.]+: cannot write \(No space left on device\); "
        r"disk/o is unchanged",
        line,
    )
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    assert (tmp_path / "left").read_text().split() == ["o"]


@needs_mounts
def test_a_disk_too_full_for_the_lock_is_one_line_naming_it(tmp_path: Path) -> None:
    script = (
        "mount -t tmpfs -o size=64k none disk && "
        "(dd if=/dev/zero of=disk/fill bs=4k 2>/dev/null; true) && "
        '"$PY" -m graphbp.cli train --backend numpy --epochs 2 --out disk/o '
        "2> err; echo $? > status; ls -A disk > left"
    )
    line = _one_error_on_a_small_disk(script, tmp_path)
    assert re.search(r"cannot write the lock file \S*disk/\.o\.lock \(No space left", line)
    assert (tmp_path / "left").read_text().split() == ["fill"]


# ----------------------------------------------------------------- two runs, one --out


def test_a_second_run_into_the_same_out_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    with started(["--epochs", "2", "--out", "o"], tmp_path) as first:
        lock = tmp_path / ".o.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.0005)
        first.send_signal(signal.SIGSTOP)  # holds the lock, stopped: the second must not wait
        try:
            second = graphbp(
                "train", "--backend", "numpy", "--epochs", "2", "--out", "o", cwd=tmp_path
            )
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2
        assert error_lines(second.stderr) == [
            f"graphbp train: error: o: another graphbp train (pid {first.pid}) is writing to "
            "this folder; wait for it to finish or choose another --out"
        ]
        assert HEADER not in second.stdout
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
    check_complete(snapshot(tmp_path / "o"), 2)
    assert sorted(os.listdir(tmp_path)) == ["o"]  # the lock is gone with its run


# ------------------------------------------------------------ --out checked before training


@pytest.mark.parametrize(
    ("out", "setup", "message"),
    [
        ("", None, r"argument --out: must name a folder, got ''"),
        (" ", None, r"argument --out: must name a folder, got ' '"),
        ("taken", "file", r"taken: exists and is not a folder; choose another --out"),
        (
            "o",
            "notes",
            r"o: holds 'notes.txt', which graphbp train did not write; it replaces the whole "
            r"folder, so move it or choose another --out",
        ),
        ("o", "subfolder", r"o: holds 'data', which graphbp train did not write"),
        ("o", "folder named graph.html", r"o: holds 'graph.html', which graphbp train did not"),
        (".", None, r"\.: is the current folder or holds it; .* name a folder of its own"),
        ("sub/..", None, r"sub/\.\.: is the current folder or holds it"),
        ("a" * 240, None, r"a{240}: name too long; .* it may have at most 233 bytes"),
    ],
)
def test_an_out_that_cannot_take_the_outputs_is_refused_before_training(
    tmp_path: Path, old_set: Path, out: str, setup: str | None, message: str
) -> None:
    (tmp_path / "sub").mkdir()
    if setup == "file":
        (tmp_path / "taken").write_text("mine")
    elif setup is not None:
        shutil.copytree(old_set, tmp_path / "o")
        if setup == "notes":
            (tmp_path / "o" / "notes.txt").write_text("mine")
        elif setup == "subfolder":
            (tmp_path / "o" / "data").mkdir()
        else:  # a folder where an output file would be: deleting it could lose what it holds
            (tmp_path / "o" / "graph.html").unlink(missing_ok=True)
            (tmp_path / "o" / "graph.html").mkdir()
            (tmp_path / "o" / "graph.html" / "mine.txt").write_text("mine")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    run = subprocess.run(
        [*TRAIN, "--out", out], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert re.search(message, lines[0]), lines[0]
    assert HEADER not in run.stdout  # refused before the data were even loaded
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


@needs_mounts
@pytest.mark.parametrize(
    ("read_only", "out", "message"),
    [
        ("o", "o", r"o: is read-only, and a run replaces its files; make it writable"),
        ("p", "p/o", r"p/o: its folder \S+/p is not writable, .* choose another --out"),
        ("p", "p/new", r"p/new: its folder \S+/p is not writable"),
    ],
)
def test_a_read_only_out_or_parent_is_refused_before_training(
    tmp_path: Path, old_set: Path, read_only: str, out: str, message: str
) -> None:
    shutil.copytree(old_set, tmp_path / "p" / "o")
    shutil.copytree(old_set, tmp_path / "o")
    script = (
        f"mount --bind {read_only} {read_only} && mount -o remount,bind,ro {read_only} && "
        f'exec "$PY" -m graphbp.cli train --backend numpy --out {out}'
    )
    run = in_namespace(script, tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), run.stderr
    assert HEADER not in run.stdout
    assert snapshot(tmp_path / "o") == snapshot(old_set) == snapshot(tmp_path / "p" / "o")


def test_an_out_holding_an_old_graphbp_temporary_file_is_replaced(
    tmp_path: Path, old_set: Path
) -> None:
    shutil.copytree(old_set, tmp_path / "o")
    (tmp_path / "o" / ".params.npz.k2j_3h4.tmp").write_bytes(b"half")  # an old write_atomic's
    run = graphbp(
        "train", "--backend", "numpy", "--epochs", "2", "--seed", "5", "--out", "o", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    check_complete(snapshot(tmp_path / "o"), 2)


def test_a_symlinked_out_is_written_where_it_points(tmp_path: Path, old_set: Path) -> None:
    shutil.copytree(old_set, tmp_path / "real")
    (tmp_path / "o").symlink_to("real")
    run = graphbp(
        "train", "--backend", "numpy", "--epochs", "2", "--seed", "4", "--out", "o", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o").is_symlink() and os.readlink(tmp_path / "o") == "real"
    new = snapshot(tmp_path / "real")
    check_complete(new, 2)
    assert new["params.npz"] != snapshot(old_set)["params.npz"]
    assert sorted(os.listdir(tmp_path)) == ["o", "real"]


# ------------------------------------------------------------------- the umask, modes


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_and_the_out_folder_get_the_modes_the_umask_gives(tmp_path: Path, umask: int) -> None:
    script = (
        "import os, sys; from pathlib import Path; from graphbp.io import write_atomic; "
        f"os.umask({umask}); write_atomic(Path('f.txt'), b'x'); "
        "print(oct(os.stat('f.txt').st_mode & 0o777), oct(os.umask(0)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.stdout.split() == [oct(0o666 & ~umask), oct(umask)], run.stderr
    train = train_with(f"os.umask({umask})", ["--epochs", "1", "--out", "o"], tmp_path)
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o777 & ~umask
    for name in SET:
        assert (tmp_path / "o" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_write_atomic_never_touches_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_umask(mask: int) -> int:
        raise AssertionError("write_atomic changed the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    write_atomic(tmp_path / "a" / "f.bin", b"\x00data")
    assert (tmp_path / "a" / "f.bin").read_bytes() == b"\x00data"
    assert os.listdir(tmp_path / "a") == ["f.bin"]


def test_a_replaced_out_keeps_its_mode(tmp_path: Path, old_set: Path) -> None:
    shutil.copytree(old_set, tmp_path / "o")
    (tmp_path / "o").chmod(0o750)
    run = graphbp("train", "--backend", "numpy", "--epochs", "1", "--out", "o", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o750


# ------------------------------------------------------- the swap itself, and its fallback


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from_a").write_text("a")
    (tmp_path / "b").mkdir()
    outputs._exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["from_a"] and os.listdir(tmp_path / "a") == []


def write_set(folder: Path, text: str) -> None:
    for name in ("history.csv", "metrics.json"):
        (folder / name).write_text(text)


@pytest.mark.parametrize("failure", [errno.EINVAL, errno.ENOSYS])
def test_without_rename_exchange_two_renames_swap_the_set_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: int
) -> None:
    def unsupported(a: Path, b: Path) -> None:  # a file system or kernel that cannot exchange
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(outputs, "_exchange", unsupported)
    (tmp_path / "o").mkdir()
    write_set(tmp_path / "o", "old")
    with OutputFolder(tmp_path / "o") as folder:
        with folder.writing() as new:
            write_set(new, "new")
        assert folder.holds_new_set()
        assert folder.state() == f"{tmp_path / 'o'} holds the complete new outputs"
    assert {p.name: p.read_text() for p in (tmp_path / "o").iterdir()} == {
        "history.csv": "new",
        "metrics.json": "new",
    }
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_the_next_run_puts_back_a_set_a_kill_left_between_the_two_renames(tmp_path: Path) -> None:
    # What a kill between the fallback's renames leaves: --out moved aside, the new set beside.
    aside, new = tmp_path / ".o.graphbp-old-0a1b2c3d", tmp_path / ".o.graphbp-new-4e5f6a7b"
    aside.mkdir()
    write_set(aside, "old")
    new.mkdir()
    write_set(new, "new")
    (tmp_path / ".o.lock").write_text("12345\n")  # the killed run's, no longer locked
    with OutputFolder(tmp_path / "o"):
        assert sorted(os.listdir(tmp_path)) == [".o.lock", "o"]
        assert (tmp_path / "o" / "history.csv").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_a_failing_block_leaves_out_unchanged_and_nothing_beside_it(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    write_set(tmp_path / "o", "old")
    with OutputFolder(tmp_path / "o") as folder:
        with pytest.raises(GraphFileError, match="disk full"), folder.writing() as new:
            write_set(new, "half")
            raise GraphFileError("disk full")
        assert folder.state() == f"{tmp_path / 'o'} is unchanged"
    assert (tmp_path / "o" / "history.csv").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_an_out_outside_a_locked_folder_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(GraphFileError, match="not locked"), OutputFolder(tmp_path / "o").writing():
        pass
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ what the user has is kept


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_files_put_into_out_while_a_run_trains_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    """--out is checked before training; what the user adds to it afterwards is swapped out
    with the old set, then moved back into the new one, never deleted."""
    if exchange == "two renames":

        def cannot(a: Path, b: Path) -> None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        monkeypatch.setattr(outputs, "_exchange", cannot)
    (tmp_path / "o").mkdir()
    write_set(tmp_path / "o", "old")
    with OutputFolder(tmp_path / "o") as folder, folder.writing() as new:
        write_set(new, "new")
        (tmp_path / "o" / "thesis.txt").write_text("mine")  # added while it trained
        (tmp_path / "o" / "mydata").mkdir()
        (tmp_path / "o" / "mydata" / "x").write_text("precious")
    assert (tmp_path / "o" / "history.csv").read_text() == "new"
    assert (tmp_path / "o" / "thesis.txt").read_text() == "mine"
    assert (tmp_path / "o" / "mydata" / "x").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["o"]


def test_the_users_files_in_a_killed_runs_leftover_are_moved_back(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    write_set(tmp_path / "o", "new")
    stale = tmp_path / ".o.graphbp-new-0badcafe"  # a kill right after the exchange
    stale.mkdir()
    write_set(stale, "old")
    (stale / "thesis.txt").write_text("mine")
    with pytest.raises(GraphFileError, match="holds 'thesis.txt', which graphbp train did not"):
        OutputFolder(tmp_path / "o").open()  # kept, and so the next run is refused
    assert sorted(os.listdir(tmp_path)) == ["o"]
    assert (tmp_path / "o" / "thesis.txt").read_text() == "mine"
    assert (tmp_path / "o" / "history.csv").read_text() == "new"


@pytest.mark.parametrize("option", ["--data", "--graph"])
def test_an_input_file_inside_out_is_refused_before_training(
    tmp_path: Path, old_set: Path, option: str
) -> None:
    shutil.copytree(old_set, tmp_path / "o")
    if option == "--data":  # the user's data, named like an output
        rows = "".join(f"{i},{i % 3},{i % 5}\n" for i in range(12))
        (tmp_path / "o" / "history.csv").write_text("a,b,target\n" + rows)
        given = "o/history.csv"
    else:  # retraining the network a run wrote, into the same folder
        given = "o/network.json"
    before = snapshot(tmp_path / "o")
    done = graphbp("train", option, given, "--epochs", "2", "--out", "o", cwd=tmp_path)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and f"the {option} file lies inside --out o" in lines[0], lines
    assert snapshot(tmp_path / "o") == before
    assert sorted(os.listdir(tmp_path)) == ["o"]


def _one_error_on_a_small_disk(script: str, tmp_path: Path) -> str:
    """Run ``script`` (which mounts a small tmpfs on ``disk`` and runs graphbp train with its
    stderr in ``err`` and its status in ``status``) and return train's one error line."""
    (tmp_path / "disk").mkdir()
    done = in_namespace(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "status").read_text().strip() == "2"
    lines = error_lines((tmp_path / "err").read_text())
    assert len(lines) == 1, lines
    return lines[0]
