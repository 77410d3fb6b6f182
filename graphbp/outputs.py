"""A run's output folder, replaced as a whole: the complete old set or the complete new set.

``graphbp train`` writes every output file into a new hidden folder beside ``--out``
(``.NAME.graphbp-new-XXXXXXXX``) and then swaps it in: on Linux with one
``renameat2(RENAME_EXCHANGE)`` call, which exchanges the two folders atomically, after which
the old set (now under the hidden name) is deleted. Where the kernel or file system cannot
exchange (``ENOSYS``, ``EINVAL``; not Linux), two renames are used instead (``--out`` to
``.NAME.graphbp-old-XXXXXXXX``, then the new folder to ``--out``): a kill between the two
leaves ``--out`` missing for that moment, and the next run puts the old set back. Either way a
kill, a full disk or a failing write leaves the complete old set or the complete new set,
never a mix, and leftovers are removed by the next run into the same ``--out``.

Two runs into one ``--out`` are kept apart by a lock: ``fcntl.flock`` on ``.NAME.lock``
beside it, taken without waiting (the second run fails at once and names the first one's
pid), and removed when the run ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from graphbp.errors import GraphFileError

OUTPUT_NAMES = frozenset(
    {
        "params.npz",
        "optimizer.npz",
        "model.json",
        "history.csv",
        "loss.png",
        "loss.svg",
        "metrics.json",
        "network.json",
        "chain_rule.svg",
        "graph.html",
        "chain_rule.dot",  # the diagrams' DOT source, written when Graphviz is missing
        "graph.dot",
    }
)
"""The files a ``graphbp train`` output folder may hold; anything else in ``--out`` is the
user's, and the run refuses to replace the folder rather than lose it."""

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputFolder:
    """The ``--out`` folder of one run: checked and locked before training, written in full
    beside it, then swapped in.

    Use as a context manager (it checks and locks on entry and unlocks on exit); call
    ``writing()`` for the folder to write into.

    Args:
        out: the folder, as the user named it (messages use this name).
        names: the files an output set may hold (see ``OUTPUT_NAMES``).
        command, option: the command writing the folder and its option naming it, as the
            messages say them (``graphbp import``'s ``-o``).
    """

    def __init__(
        self,
        out: Path,
        names: frozenset[str] = OUTPUT_NAMES,
        *,
        command: str = "graphbp train",
        option: str = "--out",
    ) -> None:
        self.out = out
        self.names = names
        self.command, self.option = command, option
        self.path = Path(os.path.realpath(out))  # a symlink: the folder it points to
        self.parent = self.path.parent
        self._lock_path = self.parent / f".{self.path.name}.lock"
        self._lock: int | None = None
        self._existed = False
        self._new: Path | None = None
        self._new_id: tuple[int, int] | None = None
        self._shown_new: str | None = None
        self.phase = "before training"
        """What the run is doing, in words (the caller may set it; ``writing()`` does)."""

    # ------------------------------------------------------------------------ check, lock

    def __enter__(self) -> OutputFolder:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Check that ``out`` can be replaced, lock it and remove a killed run's leftovers.

        Raises:
            GraphFileError: ``out`` is not a folder, holds files graphbp did not write, is the
                current folder, cannot be written (nor its parent), or another run holds it.
        """
        out, option = self.out, self.option
        try:
            here = Path(os.path.realpath(os.getcwd()))
        except OSError:  # the current folder was deleted: it cannot be the one named
            here = self.parent
        if self.path == self.parent or here.is_relative_to(self.path):
            raise GraphFileError(
                f"{out}: is the current folder or holds it; {self.command} replaces its {option} "
                f"folder as a whole: name a folder of its own, e.g. {option} graphbp-out"
            )
        if os.path.lexists(self.path) and not self.path.is_dir():
            raise GraphFileError(f"{out}: exists and is not a folder; choose another {option}")
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GraphFileError(
                f"{out}: cannot create its folder {self.parent} ({exc.strerror}); choose "
                f"another {option}"
            ) from exc
        try:
            name_max = os.pathconf(self.parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        spare = len(".graphbp-new-12345678") + 1  # the hidden folder's name is the longest
        if len(os.fsencode(self.path.name)) + spare > name_max:
            raise GraphFileError(
                f"{out}: name too long; the outputs are first written beside it under a name "
                f"{spare} bytes longer, so it may have at most {name_max - spare} bytes"
            )
        if not os.access(self.parent, os.W_OK | os.X_OK):
            raise GraphFileError(
                f"{out}: its folder {self.parent} is not writable, and the outputs are written "
                f"beside it first; choose another {option}"
            )
        self._take_lock()
        try:
            try:
                self._recover()
            except OSError as exc:
                raise GraphFileError(
                    f"{out}: cannot restore or remove what an interrupted run left beside it "
                    f"({exc.strerror}); see the hidden .{self.path.name}.graphbp-* folders"
                ) from exc
            self._check_contents()
        except BaseException:
            self.close()
            raise

    def check_input(self, path: Path, option: str) -> None:
        """Refuse an input file inside ``out``: the run replaces the folder, file and all.

        Raises:
            GraphFileError: naming the file, the option and ``out``.
        """
        if Path(os.path.realpath(path)).is_relative_to(self.path):
            raise GraphFileError(
                f"{path}: the {option} file lies inside {self.option} {self.out}, which this "
                f"run replaces as a whole; move the file or choose another {self.option}"
            )

    def _take_lock(self) -> None:
        """Lock ``.NAME.lock`` beside the folder without waiting, and write our pid into it."""
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise GraphFileError(
                    f"{self.out}: cannot create the lock file {self._lock_path} "
                    f"({exc.strerror}); choose another {self.option}"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                other = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise GraphFileError(
                        f"{self.out}: cannot lock {self._lock_path} ({exc.strerror})"
                    ) from exc
                who = f"another {self.command} (pid {other})" if other else "another run"
                raise GraphFileError(
                    f"{self.out}: {who} is writing to this folder; wait for it to finish or "
                    f"choose another {self.option}"
                ) from None
            # The holder before us may have removed the file after we opened it: lock the file
            # that is there now, or two runs would each hold a lock on a different file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self._lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk: let go of the lock and its file
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
            os.close(fd)
            raise GraphFileError(
                f"{self.out}: cannot write the lock file {self._lock_path} ({exc.strerror})"
            ) from exc
        self._lock = fd

    def close(self) -> None:
        """Remove what a failed run left beside the folder and release the lock."""
        if self._new is not None:
            self._discard()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()  # while still locked: the next run makes a new one
            os.close(self._lock)
            self._lock = None

    def _leftovers(self, kind: str) -> list[Path]:
        prefix = f".{self.path.name}.graphbp-{kind}-"
        try:
            entries = sorted(os.listdir(self.parent))
        except OSError:
            return []
        return [self.parent / e for e in entries if e.startswith(prefix)]

    def _recover(self) -> None:
        """Undo what a run killed while swapping left: put a set moved aside back in place
        (only the two-rename fallback ever leaves ``out`` missing), then delete the rest."""
        if not os.path.lexists(self.path):
            for old in self._leftovers("old"):
                os.rename(old, self.path)
                break
        for stale in self._leftovers("new") + self._leftovers("old"):
            self._clear(stale)

    def _check_contents(self) -> None:
        """Refuse an ``out`` holding what a swap would lose: files graphbp did not write."""
        self._existed = self.path.is_dir()
        if not self._existed:
            return
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as exc:
            raise GraphFileError(f"{self.out}: cannot list ({exc.strerror})") from exc
        foreign = [e.name for e in entries if not self._ours(e)]
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise GraphFileError(
                f"{self.out}: holds {shown}{more}, which {self.command} did not write; it "
                f"replaces the whole folder, so move {'it' if len(foreign) == 1 else 'them'} "
                f"or choose another {self.option}"
            )
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise GraphFileError(
                f"{self.out}: is read-only, and a run replaces its files; make it writable or "
                f"choose another {self.option}"
            )
        if os.path.ismount(self.path):
            raise GraphFileError(
                f"{self.out}: is a mount point, which cannot be replaced; choose a folder in it"
            )

    def _ours(self, entry: os.DirEntry[str]) -> bool:
        """Whether an entry of ``out`` is an output file, or the temporary file of one that
        an earlier graphbp left when killed while writing it in place (``.NAME.XXXX.tmp``)."""
        if entry.is_dir(follow_symlinks=False):
            return False
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp"):
            name = name[1:].rsplit(".", 2)[0]
        return name in self.names

    # ------------------------------------------------------------------ write, swap in

    @contextlib.contextmanager
    def writing(self) -> Iterator[Path]:
        """A new, empty hidden folder beside ``out`` to write the outputs into; swapped in
        for ``out`` when the block ends, or removed if it raises (``out`` is then unchanged).

        Raises:
            GraphFileError: the folder cannot be created, written or swapped in.
        """
        if self._lock is None:
            raise GraphFileError(f"{self.out}: not locked; use the OutputFolder as a context")
        new = self.parent / f".{self.path.name}.graphbp-new-{secrets.token_hex(4)}"
        self._shown_new, self.phase = str(new), "while writing"
        try:
            os.mkdir(new, 0o777)  # the umask applies, as for any folder the user makes
            self._new = new
            info = os.stat(new)
            self._new_id = (info.st_dev, info.st_ino)
            if self._existed:
                os.chmod(new, stat.S_IMODE(os.stat(self.path).st_mode))
        except OSError as exc:
            raise GraphFileError(f"{self.out}: cannot write beside it ({exc.strerror})") from exc
        try:
            yield new
            try:
                _fsync(new)
            except OSError as exc:
                raise GraphFileError(f"{self.out}: cannot write ({exc.strerror})") from exc
            self._swap(new)
        finally:
            self._discard()

    def _swap(self, new: Path) -> None:
        """Put ``new`` in place of ``out``: exchanged atomically where the kernel can."""
        try:
            if not os.path.lexists(self.path):
                os.rename(new, self.path)
            else:
                try:
                    _exchange(new, self.path)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    self._swap_by_renames(new)
        except OSError as exc:
            raise GraphFileError(
                f"{self.out}: cannot put the new outputs in place ({exc.strerror})"
            ) from exc
        with contextlib.suppress(OSError):  # done; this only hurries it to the disk
            _fsync(self.parent)

    def _swap_by_renames(self, new: Path) -> None:
        """Two renames: ``out`` aside, ``new`` in (a kill between them: see ``_recover``)."""
        old = self.parent / f".{self.path.name}.graphbp-old-{secrets.token_hex(4)}"
        os.rename(self.path, old)
        try:
            os.rename(new, self.path)
        except BaseException:
            if os.path.lexists(self.path):  # interrupted just after the rename: it is done
                self._new = old
            else:
                os.rename(old, self.path)
            raise
        self._new = old  # what _discard deletes: now the old set

    def _discard(self) -> None:
        """Remove the hidden folder: the new set if not swapped in, else the old set."""
        if self._new is None:
            return
        if not os.path.lexists(self.path):  # interrupted between the fallback's renames
            self._recover()
        self._clear(self._new)
        self._new = None

    def _clear(self, folder: Path) -> None:
        """Delete a hidden folder's output set; anything else in it — the user's, put into
        ``out`` while the run trained, and swapped out with the old set — is moved back into
        ``out``. What cannot be moved stays, with the folder, for the user to see."""
        try:
            entries = list(os.scandir(folder))
        except OSError:
            _remove_tree(folder)
            return
        kept = False
        for entry in entries:
            if self._ours(entry):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                continue
            target = self.path / entry.name
            try:
                if os.path.lexists(target) or not self.path.is_dir():
                    raise FileExistsError(entry.name)
                os.rename(entry.path, target)
            except OSError:
                kept = True
        if not kept:
            _remove_tree(folder)

    def shown(self, text: str) -> str:
        """``text`` with the hidden folder's path replaced by ``out`` as the user named it."""
        if self._shown_new is None:
            return text
        return text.replace(self._shown_new, str(self.out))

    def holds_new_set(self) -> bool:
        """Whether ``out`` is now the folder this run wrote (it was swapped in)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self._new_id

    def state(self) -> str:
        """What ``out`` holds now, in words: for the message of an interrupted run."""
        if self.holds_new_set():
            return f"{self.out} holds the complete new outputs"
        if os.path.lexists(self.path):
            return f"{self.out} is unchanged"
        return f"{self.out} was not created"


def _exchange(a: Path, b: Path) -> None:
    """Exchange two paths atomically with Linux's ``renameat2(RENAME_EXCHANGE)``.

    Raises:
        OSError: with ``ENOSYS`` where the C library has no renameat2 (not Linux, or glibc
            before 2.28), ``EINVAL`` where the file system cannot exchange.
    """
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS)) from None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _fsync(folder: Path) -> None:
    """Flush a folder's entries to disk (its files' names, a rename in it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Delete a folder and what it holds, as far as possible (the next run retries)."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path) and not os.path.isdir(path):
        with contextlib.suppress(OSError):
            path.unlink()


def _read_pid(fd: int) -> int | None:
    """The pid a lock file holds, if it holds one yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
