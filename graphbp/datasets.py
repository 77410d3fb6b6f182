"""Tabular data: the embedded examples and user CSV files, split and standardised."""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from graphbp.errors import GraphFileError, InputError
from graphbp.io import read_regular_file

EXAMPLES = {
    "diabetes": ("diabetes.csv", "target", "regression"),
    "digits": ("digits.csv", "label", "classification"),
}
"""Embedded data sets (graphbp/data/, provenance in its README.md): file, target, task."""


@dataclass(frozen=True)
class Dataset:
    """Features (rows × columns) and a 2-D target, with their column names.

    ``sha256`` is the hex digest of the file's bytes (empty for data not read from a file);
    a file read with an optional target that it lacks has a ``y`` of shape (rows, 0).
    """

    name: str
    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    feature_names: list[str]
    target_name: str
    sha256: str = ""


@dataclass(frozen=True)
class Standardisation:
    """Per-column means and standard deviations: ``(v − mean) / std``, and back.

    ``y_mean`` and ``y_std`` are None for a classifier (its target is one-hot, not scaled).
    """

    x_mean: np.ndarray[Any, Any]
    x_std: np.ndarray[Any, Any]
    y_mean: np.ndarray[Any, Any] | None = None
    y_std: np.ndarray[Any, Any] | None = None


@dataclass(frozen=True)
class Split:
    """A seeded train/test split, standardised with statistics of the training rows only.

    ``train_rows`` and ``test_rows`` are the data set's row indices of each part (in the
    order the parts hold them); ``stats`` the standardisation applied.
    """

    x_train: np.ndarray[Any, Any]
    y_train: np.ndarray[Any, Any]
    x_test: np.ndarray[Any, Any]
    y_test: np.ndarray[Any, Any]
    train_rows: np.ndarray[Any, Any]
    test_rows: np.ndarray[Any, Any]
    stats: Standardisation


TEST_FRACTION = 0.2
"""The fraction of rows graphbp train holds out for testing (``split``'s default)."""


class DataChangedError(InputError):
    """A file's bytes are not those a saved model was trained on (its sha256 differs).

    Attributes:
        path: the file; ``sha256``: its digest; ``expected``: the digest it should have.
    """

    def __init__(self, path: Path, sha256: str, expected: str) -> None:
        self.path, self.sha256, self.expected = path, sha256, expected
        super().__init__(
            f"{path}: not the data the model was trained on (sha256 {sha256[:12]}…, expected "
            f"{expected[:12]}…); its content was not read"
        )


def load_example(name: str = "diabetes", sha256: str | None = None) -> Dataset:
    """Load an embedded data set by name (its task is ``EXAMPLES[name][2]``); ``sha256``
    as :func:`load_csv`'s."""
    if name not in EXAMPLES:
        raise GraphFileError(f"no embedded example {name!r}; choose one of {', '.join(EXAMPLES)}")
    file, target, _ = EXAMPLES[name]
    with resources.as_file(resources.files("graphbp") / "data" / file) as path:
        return load_csv(path, target, name=name, sha256=sha256)


def load_csv(
    path: str | Path,
    target: str = "target",
    name: str | None = None,
    *,
    progress: bool | None = None,
    target_required: bool = True,
    sha256: str | None = None,
) -> Dataset:
    """Read a numeric CSV with a header row; ``target`` is predicted from the other columns.

    The file is UTF-8 text (a byte-order mark is skipped; ``\\n`` or ``\\r\\n`` line endings),
    comma-separated, at most :data:`MAX_CSV_BYTES` long, with a header row of distinct,
    non-blank column names (surrounding spaces are stripped) and then rows of finite numbers.
    Blank lines are skipped. Every value is a float64.

    Args:
        path: the CSV file; a FIFO, device or folder is refused without reading from it.
        target: the column to predict.
        name: the data set's name (default: the file's stem).
        progress: show a tqdm bar on stderr while parsing (None: when the file has at least
            :data:`PROGRESS_BYTES` bytes, or once parsing has lasted a second).
        target_required: False for rows to predict: the ``target`` column may be missing
            (every column is then a feature and ``y`` has no columns), its cells may be empty
            or NaN (NaN in ``y``: rows whose target is unknown), and the file may have a
            header and no rows.
        sha256: the hex digest the file's bytes must have (a saved model's data): checked
            before the text is parsed, so a file that differs is never quoted in a message.

    Raises:
        GraphFileError: naming the file, and the line and column where there is one: a file
            that is missing, too large, not a regular file, binary (a NUL byte) or not UTF-8;
            malformed CSV; an empty file or one with no data row; a blank or duplicate column
            name; no column ``target`` (the columns are listed); a row with the wrong number of
            cells; a cell that is not a number, or is NaN, infinite or beyond float64's range.
        DataChangedError: the file's sha256 is not ``sha256``.
    """
    path = Path(path)
    features, x, y, digest = _read_csv(path, target, progress, target_required, sha256)
    return Dataset(name or path.stem, x, y, features, target, digest)


def _read_csv(
    path: Path,
    target: str,
    progress: bool | None,
    target_required: bool = True,
    sha256: str | None = None,
) -> tuple[list[str], np.ndarray[Any, Any], np.ndarray[Any, Any], str]:
    """Parse ``path`` into feature names, x, y and the file's sha256, checking each rule of
    :func:`load_csv`."""
    from graphbp.progress import progress_bar

    data = read_regular_file(path, what="CSV file", limit=MAX_CSV_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise DataChangedError(path, digest, sha256)
    big = len(data) >= PROGRESS_BYTES
    text = _decode(path, data)
    del data  # the text alone is kept while parsing
    if not text.strip():
        raise GraphFileError(
            f"{path}: is empty; a CSV file needs a header row naming the columns and at least "
            "one data row"
        )
    reader = csv.reader(_lines(text), skipinitialspace=True)
    done = 0  # records (blank lines included) read so far: the index _line_of counts in
    row: list[str] = []
    try:
        for row in reader:
            done += 1
            if row:
                break
    except csv.Error as exc:
        raise _csv_error(path, reader.line_num, exc) from None
    header = [cell.strip() for cell in row]
    optional = not target_required and target not in header
    header = _check_header(path, reader.line_num, header, None if optional else target)
    t = len(header) if optional else header.index(target)
    x_chunks: list[np.ndarray[Any, Any]] = []
    y_chunks: list[np.ndarray[Any, Any]] = []
    with progress_bar(
        total=text.count("\n") + 1,
        initial=reader.line_num,
        desc=f"read {path.name}",
        unit="line",
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        disable=progress is False,
        delay=0 if progress or (progress is None and big) else 1.0,
    ) as bar:
        while True:
            try:
                rows = list(itertools.islice(reader, _CHUNK_ROWS))
            except csv.Error as exc:
                raise _csv_error(path, reader.line_num, exc) from None
            if not rows:
                break
            values = _floats(
                path, text, header, rows, done, None if target_required or optional else t
            )
            done += len(rows)
            x_chunks.append(values if optional else np.delete(values, t, axis=1))
            y_chunks.append(values[:, t : t + 1].copy())
            bar.update(reader.line_num - bar.n)
    del text
    if target_required and not any(len(c) for c in x_chunks):
        raise GraphFileError(
            f"{path}: has a header ({len(header)} columns) but no data rows; add rows of numbers"
        )
    features = header[:t] + header[t + 1 :]
    return features, _stack(x_chunks, len(features)), _stack(y_chunks, 1 - optional), digest


MAX_CSV_BYTES = 1 << 30
"""The largest CSV file :func:`load_csv` reads: 1 GiB (parsing holds the text and its values)."""
PROGRESS_BYTES = 10 << 20
"""A CSV file of at least this many bytes (10 MiB) shows a progress bar while it is parsed."""
_CHUNK_ROWS = 8192
"""Rows that NumPy converts to floats at a time (and between progress-bar updates)."""
_SHOWN = 20
"""How many column names a message lists before it abbreviates."""


def _decode(path: Path, data: bytes) -> str:
    """``data`` as text: UTF-8, its byte-order mark skipped; binary or other encodings refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise GraphFileError(
            f"{path}: is UTF-16 or UTF-32 text (it starts with that byte-order mark); save it as "
            'UTF-8 ("CSV UTF-8" in spreadsheet programs)'
        )
    nul = data.find(b"\0")
    if nul >= 0:
        raise GraphFileError(
            f"{path}:{_line_at(data, nul)}: contains a NUL byte (binary data?); a CSV "
            "file is UTF-8 text"
        )
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return str(memoryview(data)[skip:], "utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        raise GraphFileError(
            f"{path}:{_line_at(data, at)}: not UTF-8 text (byte 0x{data[at]:02x} at "
            f'offset {at}); save the file as UTF-8 ("CSV UTF-8" in spreadsheet programs)'
        ) from None


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text``, each with its ending (``\\n`` or ``\\r\\n``), one at a time."""
    start, end_of_text = 0, len(text)
    while start < end_of_text:
        end = text.find("\n", start) + 1 or end_of_text
        yield text[start:end]
        start = end


def _line_of(text: str, record: int) -> int:
    """The line on which record number ``record`` (0: the first, blank lines included) starts."""
    reader = csv.reader(_lines(text), skipinitialspace=True)
    for _ in itertools.islice(reader, record):
        pass
    return reader.line_num + 1


def _csv_error(path: Path, line: int, exc: csv.Error) -> GraphFileError:
    reason = str(exc)
    if "new-line character" in reason:
        reason = "a carriage return (\\r) inside a line; use \\n or \\r\\n line endings"
    elif "field larger than field limit" in reason:
        reason = f"{reason}: no number is that long; is this a CSV file of numbers?"
    return GraphFileError(f"{path}:{line}: not valid CSV ({reason})")


def _excerpt(text: str, size: int = 40) -> str:
    return repr(text if len(text) <= size else f"{text[:size]}…")


def _check_header(path: Path, line: int, header: list[str], target: str | None) -> list[str]:
    """``header`` if its names are non-blank and distinct and include ``target`` (if any)."""
    blank = [j + 1 for j, h in enumerate(header) if not h]
    if blank:
        hint = " (a trailing comma?)" if blank == [len(header)] and len(header) > 1 else ""
        raise GraphFileError(
            f"{path}:{line}: header column(s) {', '.join(map(str, blank[:_SHOWN]))} have no "
            f"name{hint}; the first line must name every column"
        )
    where: dict[str, list[int]] = {}
    for j, h in enumerate(header):
        where.setdefault(h, []).append(j + 1)
    duplicates = [f"{h!r} (columns {', '.join(map(str, c))})" for h, c in where.items() if c[1:]]
    if duplicates:
        raise GraphFileError(
            f"{path}:{line}: duplicate column name(s) {'; '.join(duplicates[:_SHOWN])}; "
            "column names must be distinct"
        )
    if target is None:
        return header
    if target not in where:
        shown = ", ".join(header[:_SHOWN])
        if len(header) > _SHOWN:
            shown += f", … ({len(header)} columns)"
        hint = ""
        if len(header) == 1 and (sep := next((s for s in ";\t|" if s in header[0]), None)):
            hint = f"; the file seems to be separated by {sep!r}, but CSV means commas"
        elif all(_is_number(h) for h in header):
            hint = "; the first line looks like data, but it must be a header naming the columns"
        raise GraphFileError(
            f"{path}: no target column {target!r}; the columns are {shown} (choose one with "
            f"--target){hint}"
        )
    if len(header) == 1:
        raise GraphFileError(f"{path}: no feature columns besides the target {target!r}")
    return header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _floats(
    path: Path,
    text: str,
    header: list[str],
    rows: list[list[str]],
    first: int,
    unknown: int | None = None,
) -> np.ndarray[Any, Any]:
    """``rows`` (records ``first``... of ``text``; blank ones skipped) as finite float64s;
    column ``unknown`` (if any) may be empty or NaN (an unknown target), read as NaN."""
    n = len(header)
    try:
        values: np.ndarray[Any, Any] | None = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):  # ragged, blank or non-numeric: found and named below
        values = None
    if values is not None and values.shape == (len(rows), n):
        finite = np.isfinite(values)
        if unknown is not None:
            finite[:, unknown] |= np.isnan(values[:, unknown])
        if finite.all():
            return values
    good: list[list[float]] = []
    for k, row in enumerate(rows):
        if not row:
            continue
        if len(row) != n:
            hint = " (a trailing comma?)" if len(row) == n + 1 and not row[-1].strip() else ""
            cells = f"{len(row)} cell{'s' * (len(row) != 1)}"
            raise GraphFileError(
                f"{path}:{_line_of(text, first + k)}: {cells} but the header has {n} columns{hint}"
            )
        numbers = []
        for j, cell in enumerate(row):
            if j == unknown and not cell.strip():
                numbers.append(math.nan)
                continue
            try:
                v = float(cell)
            except ValueError:
                problem = (
                    "is empty (a missing value?)"
                    if not cell.strip()
                    else f"has non-numeric cell {_excerpt(cell)}"
                )
                raise GraphFileError(
                    f"{path}:{_line_of(text, first + k)}:{j + 1}: column {header[j]!r} "
                    f"{problem}; every cell must be a number"
                ) from None
            if not math.isfinite(v) and not (j == unknown and math.isnan(v)):
                raise GraphFileError(
                    f"{path}:{_line_of(text, first + k)}:{j + 1}: column {header[j]!r} "
                    f"{_non_finite(cell, v)}; graphbp trains on finite numbers only: fill in "
                    "or drop the row"
                )
            numbers.append(v)
        good.append(numbers)
    return np.array(good, dtype=np.float64).reshape(len(good), n)


def _non_finite(cell: str, value: float) -> str:
    """Why ``cell``, read as ``value``, is not finite."""
    if math.isnan(value):
        return f"is {_excerpt(cell.strip())}, not a number (a missing value?)"
    if cell.strip().lstrip("+-").lower() in ("inf", "infinity"):
        return f"is {_excerpt(cell.strip())}, infinite"
    return f"has {_excerpt(cell.strip())}, beyond float64's range (about ±1.8e308)"


def _stack(chunks: list[np.ndarray[Any, Any]], columns: int) -> np.ndarray[Any, Any]:
    """The chunks' rows in one array, each chunk released once copied (peak: one array)."""
    out = np.empty((sum(len(c) for c in chunks), columns))
    row = 0
    chunks.reverse()
    while chunks:
        chunk = chunks.pop()
        out[row : row + len(chunk)] = chunk
        row += len(chunk)
    return out


def split(
    data: Dataset,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    classes: int | None = None,
    stats: Standardisation | None = None,
) -> Split:
    """Shuffle with ``seed``, hold out ``test_fraction`` of rows, standardise x and y.

    Means and standard deviations come from the training rows only, so nothing about the
    test rows leaks into training. A column that is constant on the training rows is only
    centred (divided by 1, not by its standard deviation of 0). With ``classes``, y holds
    labels 0..classes−1 and becomes one-hot rows instead of being standardised. With
    ``stats`` (a saved model's), those statistics are applied instead of being computed.

    Raises:
        InputError: ``test_fraction`` is not between 0 and 1; too few rows for at least one
            test row and two training rows; a regression target that is constant on the
            training rows (nothing to predict); a column too large to standardise in float64.
    """
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n = len(data.x)
    test, train = held_out_rows(n, test_fraction, seed)
    n_test = len(test)
    if n - n_test < 2:
        raise InputError(
            f"data set {data.name!r} has {n} row(s): a train/test split needs at least 1 test "
            f"row and 2 training rows (to standardise with); holding out {test_fraction:g} of "
            f"the rows leaves {max(n - n_test, 0)} for training; add rows"
        )

    def standardise(a: np.ndarray[Any, Any], names: list[str], given: Any) -> tuple[Any, ...]:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            if given is None:
                # Mean and deviation of the rows divided by a power of two near the largest
                # magnitude: no digit changes, and squares of large values cannot overflow.
                scale = np.ldexp(1.0, np.frexp(np.abs(a[train]).max(axis=0))[1] - 1)
                scaled = a[train] / scale
                mean, std = scaled.mean(axis=0) * scale, scaled.std(axis=0) * scale
                std = np.where(std >= np.finfo(np.float64).tiny, std, 1.0)
            else:
                mean, std = given
            fit, held_out = (a[train] - mean) / std, (a[test] - mean) / std
        for bad in (
            unusable_columns(mean, std).reshape(-1),
            *(~np.isfinite(part).all(axis=0) for part in (fit, held_out)),
        ):
            if bad.any():
                column = names[int(np.argmax(bad))]
                raise InputError(
                    f"column {column!r} of {data.name!r} cannot be standardised in float64 (its "
                    "values span more than float64's range); rescale it"
                )
        return fit, held_out, mean, std

    given_x = None if stats is None else (stats.x_mean, stats.x_std)
    x_train, x_test, x_mean, x_std = standardise(data.x, data.feature_names, given_x)
    y_mean = y_std = None
    if classes is None:
        if (data.y[train] == data.y[train][0]).all():
            raise InputError(
                f"the target {data.target_name!r} of {data.name!r} has the same value "
                f"({float(data.y[train][0, 0]):g}) in all {len(train)} training rows: there is "
                "nothing to predict"
            )
        given_y = None if stats is None else (stats.y_mean, stats.y_std)
        y_train, y_test, y_mean, y_std = standardise(data.y, [data.target_name], given_y)
    else:
        y_train, y_test = one_hot(data.y[train], classes), one_hot(data.y[test], classes)
    found = Standardisation(x_mean, x_std, y_mean, y_std)
    return Split(x_train, y_train, x_test, y_test, train, test, found)


def held_out_rows(
    rows: int, test_fraction: float, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The row indices :func:`split` holds out and those it trains on, in split's order."""
    order = np.random.default_rng(seed).permutation(rows)
    n_test = max(1, round(rows * test_fraction))
    return order[:n_test], order[n_test:]


STD_SPAN = 2.0**20
"""How many standard deviations from the mean a value may lie and still be representable:
statistics with which ``mean ± STD_SPAN·std`` overflows float64 are not usable."""


def unusable_columns(mean: Any, std: Any) -> np.ndarray[Any, Any]:
    """Per column, whether its statistics are unusable: a mean that is not finite, a
    standard deviation that is not a normal positive float (0 or subnormal would turn a
    value into Inf), or ``|mean| + STD_SPAN·std`` beyond float64 (any value far from the
    mean would turn into Inf when scaled back)."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        span = np.abs(mean) + STD_SPAN * std
    bad: np.ndarray[Any, Any] = ~(np.isfinite(span) & (std >= np.finfo(np.float64).tiny))
    return bad


def one_hot(labels: np.ndarray[Any, Any], classes: int) -> np.ndarray[Any, Any]:
    """Rows of 0/1 with a 1 in each label's column (labels: integers 0..classes−1)."""
    flat = labels.reshape(-1)
    if not np.all((flat == np.round(flat)) & (flat >= 0) & (flat < classes)):
        raise GraphFileError(f"class labels must be integers 0..{classes - 1}")
    rows: np.ndarray[Any, Any] = np.eye(classes)[flat.astype(int)]
    return rows


def accuracy(one_hot_labels: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> float:
    """The fraction of rows whose highest score is in the labelled class."""
    return float(np.mean(np.argmax(scores, axis=1) == np.argmax(one_hot_labels, axis=1)))


def r2_score(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    """Coefficient of determination, 1 − SS_res / SS_tot (SS_tot about y's own mean)."""
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean(axis=0)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def least_squares(s: Split) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Linear least squares with an intercept, fitted on the training rows.

    Returns:
        Predictions for the training rows and for the test rows.
    """

    def design(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.hstack([x, np.ones((len(x), 1))])

    coef, *_ = np.linalg.lstsq(design(s.x_train), s.y_train, rcond=None)
    return design(s.x_train) @ coef, design(s.x_test) @ coef
