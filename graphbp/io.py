"""Files in and out: input read only from bounded regular files, JSON strictly; output
written atomically."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphbp.errors import GraphFileError, article, show


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    The temporary file is created with mode 0o666 for the kernel to apply the umask to, as
    ``open()`` would; the process umask is never read or changed (changing it, even for a
    moment, would race with other threads creating files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_file(path: Path, data: bytes, shown: str | Path | None = None) -> None:
    """:func:`write_atomic`, a failure being a GraphFileError naming ``shown`` (default:
    ``path``) and why.

    Raises:
        GraphFileError: the system refused (no such folder, no permission, a full disk).
    """
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise GraphFileError(f"{shown or path}: cannot write ({exc.strerror})") from exc


def read_regular_file(path: Path, *, what: str, limit: int) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes, never blocking on what is not one.

    A FIFO, device or folder (``/dev/zero``, a named pipe) is refused before a byte is read,
    so a hostile path can neither hang the reader nor make it allocate without bound.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``"graph file"``).
        limit: the largest size accepted, in bytes.

    Raises:
        GraphFileError: the file is missing, unreadable, not a regular file or too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise GraphFileError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe or device"
        raise GraphFileError(f"{path}: is {kind}, not {article(what)}; give the path of a file")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limit:
            raise GraphFileError(
                f"{path}: {info.st_size:,} bytes; {article(what)} may have at most {limit:,}"
            )
        try:  # read what fstat says is there (a buffer of `limit` bytes would cost `limit`)
            data = f.read(info.st_size + 1)
            while len(data) <= limit and (more := f.read(min(2**20, limit + 1 - len(data)))):
                data += more  # it grew since fstat
        except OSError as exc:
            raise GraphFileError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    if len(data) > limit:  # it grew while being read
        raise GraphFileError(
            f"{path}: more than {limit:,} bytes; {article(what)} may have at most that"
        )
    return data


def read_json(path: Path, *, what: str, limit: int, fix: str) -> Any:
    """A bounded, strict JSON file: UTF-8 (a byte-order mark is skipped), no NaN or Infinity
    tokens, no key twice in an object.

    Args:
        path: the file; what: what it should be (e.g. ``"graph file"``); limit: its largest
            size in bytes; fix: what to do about a malformed file, ending the messages.

    Raises:
        GraphFileError: naming the file (and the line and column where there is one): as
            :func:`read_regular_file`, not UTF-8, not JSON, nested too deeply, a NaN or
            Infinity token, a key twice in an object, a number Python cannot read.
    """
    raw = read_regular_file(path, what=what, limit=limit)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise GraphFileError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); {fix}"
        ) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise GraphFileError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise GraphFileError(f"{path}: JSON nested too deeply to read; {fix}") from None
    except _ConstantError as exc:
        line, column = _where(text, exc.token)
        raise GraphFileError(
            f"{path}:{line}:{column}: {exc.token} is not a number JSON allows; {fix}"
        ) from None
    except ValueError as exc:  # a key twice, an integer beyond the digit limit
        problem = str(exc)
        if "integer string conversion" in problem:  # Python's advice is for programmers
            problem = f"a number of more than {sys.get_int_max_str_digits():,} digits"
        raise GraphFileError(f"{path}: JSON that cannot be read ({problem}); {fix}") from None


class _ConstantError(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(f"{token} is not a number JSON allows")
        self.token = token


def _refuse_constant(token: str) -> None:
    raise _ConstantError(token)


_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _where(text: str, token: str) -> tuple[int, int]:
    """The line and column of the first ``token`` (NaN, Infinity) outside JSON strings."""
    found = next(m for m in _STRING_OR_CONSTANT.finditer(text) if m.group(1) == token)
    start = found.start(1)
    return text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)


class _KeyTwice(ValueError):
    def __init__(self, key: str) -> None:
        self.key = show(key, 40)
        super().__init__(f"key {self.key} appears twice in an object")


def _unique_keys(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) != len(items):
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise _KeyTwice(key)
            seen.add(key)
    return obj


_JSON_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


def dumps_strict(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as JSON (one space of indent) without the NaN and Infinity tokens that
    strict readers, :func:`read_json` among them, refuse.

    Raises:
        ValueError: naming the first entry that is NaN or infinite (``['a'][0] is nan``), or
            two keys of one object that JSON writes alike (``1`` and ``"1"``, ``True`` and
            ``"true"``), which :func:`read_json` would refuse.
        TypeError: a value JSON cannot hold (``default`` did not convert it).
    """
    try:
        text = json.dumps(value, indent=1, allow_nan=False, default=default)
        json.loads(text, object_pairs_hook=_unique_keys)  # what read_json will read back
        return text
    except _KeyTwice as exc:
        raise ValueError(f"two keys of one object are both written {exc.key}; rename one") from None
    except ValueError:
        stack: list[tuple[str, Any]] = [("", value)]
        while stack:
            where, v = stack.pop()
            if default is not None and not isinstance(v, _JSON_TYPES):
                v = default(v)
            if isinstance(v, dict | list | tuple):
                items = v.items() if isinstance(v, dict) else enumerate(v)
                stack.extend((f"{where}[{k!r}]", x) for k, x in reversed(list(items)))
            elif isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{where or 'the value'} is {v}") from None
        raise
