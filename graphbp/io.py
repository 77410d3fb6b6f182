"""Files in and out: input read only from bounded regular files; output written atomically."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from graphbp.errors import GraphFileError, article


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
