"""Issue 10, item 4 (CSV): every malformed data file is one GraphbpError naming the file, line
and column, never a hang or a stray exception; a large file shows progress while it loads."""

from __future__ import annotations

import codecs
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import graphbp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphbp.datasets import MAX_CSV_BYTES, PROGRESS_BYTES, Dataset, load_csv, split
from graphbp.errors import GraphbpError, GraphFileError, InputError

BOM = codecs.BOM_UTF8.decode()

# (file content, error class, what the one-line message must say: file:line[:column] and why)
BAD_FILES = {
    "empty": (b"", r"^d\.csv: is empty; a CSV file needs a header row"),
    "only blank lines": (b"\n \n\r\n", r"^d\.csv: is empty"),
    "header only": (b"a,target\n", r"^d\.csv: has a header \(2 columns\) but no data rows"),
    "header and blank lines": (b"a,target\n\n\n", r"^d\.csv: has a header \(2 columns\) but no"),
    "blank header cell": (
        b"a, ,target\n1,2,3\n",
        r"^d\.csv:1: header column\(s\) 2 have no name; the first line must name every column",
    ),
    "trailing comma in the header": (
        b"a,target,\n1,2,\n",
        r"^d\.csv:1: header column\(s\) 3 have no name \(a trailing comma\?\)",
    ),
    "duplicate columns": (
        b"a,b,a,target,b\n1,2,3,4,5\n",
        r"^d\.csv:1: duplicate column name\(s\) 'a' \(columns 1, 3\); 'b' \(columns 2, 5\); "
        r"column names must be distinct",
    ),
    "duplicate after stripping": (b"a, a,target\n1,2,3\n", r"'a' \(columns 1, 2\)"),
    "target missing": (
        b"a,b\n1,2\n",
        r"^d\.csv: no target column 'target'; the columns are a, b \(choose one with --target\)$",
    ),
    "target missing among many columns": (
        (",".join(f"c{i}" for i in range(50)) + "\n" + ",".join(["1"] * 50) + "\n").encode(),
        r"the columns are c0, c1, .*, c19, … \(50 columns\)",
    ),
    "semicolon-separated": (b"a;target\n1;2\n", r"seems to be separated by ';', but CSV means"),
    "no header row": (b"1,2\n3,4\n", r"the first line looks like data, but it must be a header"),
    "only the target column": (b"target\n1\n2\n", r"^d\.csv: no feature columns besides"),
    "ragged row": (b"a,target\n1,2\n3\n", r"^d\.csv:3: 1 cell but the header has 2 columns$"),
    "row too long": (b"a,target\n1,2,3\n", r"^d\.csv:2: 3 cells but the header has 2 columns$"),
    "trailing comma in a row": (
        b"a,target\n1,2,\n",
        r"^d\.csv:2: 3 cells but the header has 2 columns \(a trailing comma\?\)",
    ),
    "non-numeric cell": (
        b"a,target\n1,2\n3,x\n",
        r"^d\.csv:3:2: column 'target' has non-numeric cell 'x'; every cell must be a number",
    ),
    "decimal comma": (
        b'a,target\n"1,5",2\n',
        r"^d\.csv:2:1: column 'a' has non-numeric cell '1,5'",
    ),
    "empty cell": (b"a,target\n1,2\n,3\n", r"^d\.csv:3:1: column 'a' is empty \(a missing value"),
    "NaN cell": (b"a,target\n1,NaN\n", r"^d\.csv:2:2: column 'target' is 'NaN', not a number"),
    "inf cell": (b"a,target\n-inf,1\n", r"^d\.csv:2:1: column 'a' is '-inf', infinite; graphbp"),
    "Infinity cell": (b"a,target\n1,Infinity\n", r"^d\.csv:2:2: column 'target' is 'Infinity'"),
    "overflowing cell": (
        b"a,target\n1,2\n3,1e999\n",
        r"^d\.csv:3:2: column 'target' has '1e999', beyond float64's range \(about ±1.8e308\)",
    ),
    "very long field": (
        b"a,target\n1," + b"9" * 200_000 + b"\n",
        r"^d\.csv:2: not valid CSV \(field larger than field limit \(131072\): no number is",
    ),
    "very long numeric cell": (
        b"a,target\n1," + b"9" * 100_000 + b"\n",
        r"^d\.csv:2:2: column 'target' has '9{40}…', beyond float64's range",
    ),
    "NUL byte": (b"a,target\n1,2\n3\x00,4\n", r"^d\.csv:3: contains a NUL byte \(binary data\?\)"),
    "Latin-1": ("a,target\n1,2\n3,é\n".encode("latin-1"), r"^d\.csv:3: not UTF-8 text \(byte"),
    "UTF-16": ("a,target\n1,2\n".encode("utf-16"), r"^d\.csv: is UTF-16 or UTF-32 text"),
    "lone surrogate encoded": (b"a,target\n1,\xed\xa0\x80\n", r"^d\.csv:2: not UTF-8 text"),
    "old Mac line endings": (b"a,target\r1,2\r3,4\r", r"^d\.csv:1: not valid CSV \(a carriage"),
    "error after a quoted line break": (
        b'a,target\n1,"2\n"\n3,y\n',
        r"^d\.csv:4:2: column 'target' has non-numeric cell 'y'",
    ),
    "error after blank lines": (b"\na,target\n\n1,2\n\n3,y\n", r"^d\.csv:6:2: column 'target'"),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES)
def test_a_malformed_csv_is_one_graph_file_error_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    (tmp_path / "d.csv").write_bytes(content)
    monkeypatch.chdir(tmp_path)  # messages name the path as given
    with pytest.raises(GraphFileError) as info:
        load_csv("d.csv")
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    assert re.search(message, text), text


def test_a_byte_order_mark_crlf_blank_lines_quotes_and_spaces_are_read(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(
        codecs.BOM_UTF8 + b'target , "a b" ,c\r\n\r\n1,2,3\r\n"4", 5 ,6e0\r\n\r\n7,8,-9\r\n\r\n'
    )
    data = load_csv(path)
    assert data.target_name == "target"
    assert data.feature_names == ["a b", "c"]  # not "\ufefftarget", not " a b "
    np.testing.assert_array_equal(data.x, [[2, 3], [5, 6], [8, -9]])
    np.testing.assert_array_equal(data.y, [[1], [4], [7]])
    assert data.name == "d"


def test_a_byte_order_mark_is_only_skipped_at_the_start(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(f"a,target\n{BOM}1,2\n", encoding="utf-8")
    with pytest.raises(GraphFileError, match=r"d\.csv:2:1: column 'a' has non-numeric cell"):
        load_csv(tmp_path / "d.csv")


def test_a_fifo_a_device_and_a_folder_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    for path, kind in ((fifo, "a pipe or device"), (Path("/dev/zero"), "a pipe or device")):
        with pytest.raises(GraphFileError, match=rf"{path}: is {kind}, not a CSV file"):
            load_csv(path)
    with pytest.raises(GraphFileError, match=rf"{tmp_path}: is a folder, not a CSV file"):
        load_csv(tmp_path)
    with pytest.raises(GraphFileError, match=r"nothing\.csv: cannot read CSV file \(No such"):
        load_csv(tmp_path / "nothing.csv")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as f:  # sparse: no disk space, and load_csv must not read it
        f.truncate(MAX_CSV_BYTES + 1)
    with pytest.raises(GraphFileError, match=rf"huge\.csv: {MAX_CSV_BYTES + 1:,} bytes; a CSV"):
        load_csv(huge)


def _dataset(rows: list[list[float]], name: str = "d") -> Dataset:
    a = np.array(rows, dtype=float)
    return Dataset(name, a[:, :-1], a[:, -1:], [f"f{i}" for i in range(a.shape[1] - 1)], "y")


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_rows_for_a_train_test_split_name_the_numbers(n: int) -> None:
    with pytest.raises(InputError) as info:
        split(_dataset([[i, i * i] for i in range(n)]), 0.2)
    assert f"data set 'd' has {n} row(s): a train/test split needs at least 1 test row and 2 " in (
        str(info.value)
    )
    assert f"leaves {n - 1} for training" in str(info.value)


def test_three_rows_split_into_one_test_and_two_training_rows() -> None:
    s = split(_dataset([[0, 1], [1, 3], [2, 2]]), 0.2)
    assert (len(s.x_train), len(s.x_test)) == (2, 1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, float("nan")])
def test_a_test_fraction_outside_0_to_1_is_refused(fraction: float) -> None:
    with pytest.raises(InputError, match="test_fraction must be between 0 and 1"):
        split(_dataset([[i, i] for i in range(10)]), fraction)


def test_a_constant_feature_is_centred_to_zero_not_divided_by_zero() -> None:
    rows = [[5.0, i, (i * 7) % 5] for i in range(20)]
    s = split(_dataset(rows), 0.2, seed=3)
    for part in (s.x_train, s.x_test, s.y_train, s.y_test):
        assert np.isfinite(part).all()
    np.testing.assert_array_equal(s.x_train[:, 0], 0.0)
    np.testing.assert_array_equal(s.x_test[:, 0], 0.0)
    np.testing.assert_allclose(s.x_train[:, 1].std(), 1.0)


def test_a_constant_target_is_refused_there_is_nothing_to_predict() -> None:
    with pytest.raises(InputError, match=r"the target 'y' of 'd' has the same value \(4\) in all"):
        split(_dataset([[i, 4.0] for i in range(10)]), 0.2)


def test_values_near_the_float64_limit_standardise_without_overflow() -> None:
    rows = [[i, (-1) ** i * 1e300 * (1 + i / 10), 1e-300 * i, i] for i in range(20)]
    s = split(_dataset(rows), 0.2)
    for part in (s.x_train, s.x_test, s.y_train, s.y_test):
        assert np.isfinite(part).all()
    np.testing.assert_allclose(s.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(s.x_train.std(axis=0), 1, atol=1e-12)


def test_values_spanning_more_than_float64_name_the_column() -> None:
    rows = [[i, 1.7e308 if i else -1.7e308, i] for i in range(10)]  # x − mean overflows
    with pytest.raises(InputError, match=r"column 'f1' of 'd' cannot be standardised in float64"):
        split(_dataset(rows), 0.2)


def _write_big_csv(path: Path) -> int:
    """A CSV just over PROGRESS_BYTES: 40 columns of short numbers; returns its rows."""
    header = ",".join([*(f"c{i}" for i in range(39)), "target"]) + "\n"
    row = ",".join(["0.5"] * 39 + ["1.25"]) + "\n"
    rows = PROGRESS_BYTES // len(row) + 1
    path.write_text(header + row * rows)
    return rows


def test_a_large_csv_shows_a_progress_bar_and_a_small_one_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.csv"
    rows = _write_big_csv(big)
    assert big.stat().st_size >= PROGRESS_BYTES
    data = load_csv(big)
    err = capsys.readouterr().err
    assert "read big.csv" in err and "line" in err, err
    assert data.x.shape == (rows, 39)
    load_csv(big, progress=False)
    assert capsys.readouterr().err == ""
    small = tmp_path / "small.csv"
    small.write_text("a,target\n1,2\n3,4\n")
    load_csv(small)
    assert capsys.readouterr().err == ""
    load_csv(small, progress=True)
    assert "read small.csv" in capsys.readouterr().err


# ------------------------------------------------------------------------ the command line


def _one_line_exit_2(tmp_path: Path, *args: str) -> str:
    run = graphbp("train", "--epochs", "1", *args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("graphbp train: error: "), lines[0]
    assert not (tmp_path / "graphbp-out").exists()
    return lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"d\.csv: is empty"),
        (b"a,a,target\n1,2,3\n", r"d\.csv:1: duplicate column name\(s\) 'a' \(columns 1, 2\)"),
        (b"a,target\n1,nan\n", r"d\.csv:2:2: column 'target' is 'nan', not a number"),
        (b"a,target\n1,2\n3,4\n", r"data set 'd' has 2 row\(s\): a train/test split needs at"),
        (b"a,target\n1,2\n3,2\n4,2\n5,2\n", r"the target 'target' of 'd' has the same value \(2\)"),
        (b"a,target\n1,2\n3,\xff\n", r"d\.csv:3: not UTF-8 text \(byte 0xff at offset 15\)"),
    ],
)
def test_train_on_a_malformed_csv_is_one_line_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "d.csv").write_bytes(content)
    assert re.search(message, _one_line_exit_2(tmp_path, "--data", "d.csv"))


def test_train_on_a_binary_a_device_or_a_fifo_is_one_line_exit_2(tmp_path: Path) -> None:
    binary = shutil.which("ls") or sys.executable
    assert re.search(
        rf"{binary}:1: contains a NUL byte", _one_line_exit_2(tmp_path, "--data", binary)
    )
    assert "/dev/zero: is a pipe or device" in _one_line_exit_2(tmp_path, "--data", "/dev/zero")
    os.mkfifo(tmp_path / "fifo.csv")  # no writer: reading it would block forever
    assert "fifo.csv: is a pipe or device" in _one_line_exit_2(tmp_path, "--data", "fifo.csv")


def test_train_reads_a_csv_with_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    rows = [f"{i % 7},{(i * 3) % 11},{i % 7 + 0.5 * ((i * 3) % 11)}" for i in range(40)]
    text = "a, b ,target\r\n" + "\r\n".join(rows) + "\r\n"
    (tmp_path / "d.csv").write_bytes(codecs.BOM_UTF8 + text.encode())
    run = graphbp("train", "--data", "d.csv", "--epochs", "2", "--out", "run", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "on d (32 train / 8 test rows)" in run.stdout
    assert (tmp_path / "run" / "metrics.json").exists()


def test_train_on_a_large_csv_shows_the_progress_of_reading_it(tmp_path: Path) -> None:
    header = ",".join([*(f"c{i}" for i in range(39)), "target"]) + "\n"
    rows = [",".join([f"{(i * j) % 7}.5" for j in range(40)]) + "\n" for i in range(16)]
    block = "".join(rows)
    (tmp_path / "big.csv").write_text(header + block * (PROGRESS_BYTES // len(block) + 1))
    args = ["--data", "big.csv", "--epochs", "1", "--batch-size", "100000", "--out", "run"]
    run = graphbp("train", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "read big.csv" in run.stderr and "line/s" in run.stderr, run.stderr
    small = graphbp("train", "--epochs", "1", "--out", "run2", cwd=tmp_path)
    assert small.returncode == 0 and "read " not in small.stderr, small.stderr


# -------------------------------------------------------------------------------- fuzzing


def _holds_or_raises_graphbp_error(path: Path) -> None:
    """load_csv (and split) either give finite arrays of consistent shape or a GraphbpError."""
    try:
        data = load_csv(path, progress=False)
    except GraphbpError:
        return
    n = len(data.x)
    assert n >= 1
    assert data.x.dtype == np.float64 and data.y.dtype == np.float64
    assert data.x.shape == (n, len(data.feature_names)) and data.y.shape == (n, 1)
    assert len(data.feature_names) >= 1
    assert len(set(data.feature_names)) == len(data.feature_names)
    assert data.target_name == "target" and "target" not in data.feature_names
    assert all(name and name == name.strip() for name in data.feature_names)
    assert np.isfinite(data.x).all() and np.isfinite(data.y).all()
    try:
        s = split(data, 0.2, seed=0)
    except GraphbpError:
        return
    assert len(s.x_train) + len(s.x_test) == n and len(s.x_test) >= 1 and len(s.x_train) >= 2
    for part in (s.x_train, s.x_test, s.y_train, s.y_test):
        assert np.isfinite(part).all()


FUZZ = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(content=st.binary(max_size=400))
def test_fuzz_bytes_load_or_raise_graphbp_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    _holds_or_raises_graphbp_error(path)


_CELLS = st.one_of(
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        [
            *("", " ", "nan", "-inf", "Infinity", "1e999", "-1e-999", "1_0", "٣.٥", " 2 "),
            *("0x10", '"', '""', '"1"', '"1,5"', "1,5", "x", "\x00", "\r", "\n", "\r\n"),
            *(BOM, "\t", "é"),
        ]
    ),
    st.text(max_size=6),
)
_NAMES = st.one_of(
    st.sampled_from(["target", "a", "b", " a ", "", "target ", BOM + "target", '"target"']),
    st.text(max_size=4),
)


_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**6), 10**6).map(str),
)
_BREAKS = ("cells", "header", "ragged", "delimiter", "newline", "encoding", "quotes", "prefix")


@st.composite
def _csv_ish(draw: st.DrawFn) -> bytes:
    """Text that is nearly a CSV file: a few of its parts broken (random header, cells, quotes,
    delimiters, line endings, BOMs, encodings), often none, so that some files load."""
    broken = draw(st.sets(st.sampled_from(_BREAKS), max_size=3))
    width = draw(st.integers(1, 5))
    header = [f"c{i}" for i in range(width)]
    header[draw(st.integers(0, width - 1))] = "target"
    if "header" in broken:
        header = draw(st.lists(_NAMES, min_size=width, max_size=width))
    cell = _CELLS if "cells" in broken else _NUMBERS
    ragged = "ragged" in broken
    rows = draw(
        st.lists(st.lists(cell, min_size=width - ragged, max_size=width + ragged), max_size=8)
    )
    comma = draw(st.sampled_from([",", ", ", ";", "\t"])) if "delimiter" in broken else ","
    newline = draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r\n\r\n"]))
    if "newline" in broken:
        newline = draw(st.sampled_from(["\r", "\n\r", "\x0b", "\u2028"]))
    quote = draw(st.sampled_from(["", '"']))
    if "quotes" in broken:
        quote = draw(st.sampled_from(["'", '"""', '" ']))
    lines = [comma.join(f"{quote}{c}{quote}" for c in line) for line in [header, *rows]]
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    prefix = draw(st.sampled_from(["", BOM, "\n"]))
    if "prefix" in broken:
        prefix = draw(st.sampled_from([BOM * 2, "\x00", "# comment\n", "\ufffe"]))
    encoding = "utf-8"
    if "encoding" in broken:
        encoding = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252"]))
    return (prefix + text).encode(encoding, errors="replace")


@FUZZ
@given(content=_csv_ish())
def test_fuzz_csv_ish_text_loads_or_raises_graphbp_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    _holds_or_raises_graphbp_error(path)


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.integers(1, 4).flatmap(
        lambda width: st.lists(
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False), min_size=width, max_size=width
            ),
            min_size=1,
            max_size=12,
        )
    ),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    quoted=st.booleans(),
    blank_lines=st.booleans(),
    padding=st.sampled_from(["", " ", "  "]),
)
def test_fuzz_well_formed_csv_loads_exactly_its_values(
    tmp_path: Path,
    values: list[list[float]],
    bom: bool,
    newline: str,
    quoted: bool,
    blank_lines: bool,
    padding: str,
) -> None:
    width = len(values[0])
    names = [f"{padding}f{i}{padding}" for i in range(width - 1)] + [f"{padding}target"]
    q = '"' if quoted else ""
    lines = [",".join(f"{q}{n}{q}" for n in names)]
    lines += [",".join(f"{q}{v!r}{q}" for v in row) for row in values]
    sep = newline * 2 if blank_lines else newline
    path = tmp_path / "ok.csv"
    path.write_bytes((BOM if bom else "").encode() + (sep.join(lines) + newline).encode())
    if width == 1:  # only the target: no features
        with pytest.raises(GraphFileError, match="no feature columns besides the target"):
            load_csv(path)
        return
    data = load_csv(path)
    expected = np.array(values)
    np.testing.assert_array_equal(data.x, expected[:, :-1])
    np.testing.assert_array_equal(data.y, expected[:, -1:])
    assert data.feature_names == [f"f{i}" for i in range(width - 1)]
