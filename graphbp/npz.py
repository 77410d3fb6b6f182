""".npz files of named arrays, written without pickles and read as hostile.

A file is read only if it is a regular file of bounded size whose members are all stored
uncompressed (so its size on disk bounds what reading it allocates); each member's ``.npy``
header — shape, dtype, order — is checked before its data is read, and together the members
may declare no more data than the file holds (entries that overlap cannot multiply it).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphbp.errors import GraphFileError, show
from graphbp.io import read_regular_file

if TYPE_CHECKING:
    from graphbp.op import Shape

NPZ_LIMIT = 2**31
"""The largest .npz file read (params.npz, optimizer.npz, inputs.npz, graphbp import's
--args)."""
MAX_ITEMSIZE = 8
"""The widest element read, in bytes (float64, int64): wider types (float128, complex)
are not real numbers graphbp computes with."""
KIND_NAMES = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float"}


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """``arrays`` as an uncompressed .npz (one ``NAME.npy`` member each, no pickles)."""
    buffer = io.BytesIO()  # np.savez(**arrays) would take a member named "file" as its own
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()


def read_npz(
    path: Path,
    shapes: Mapping[str, Shape | None] | None,
    *,
    fix: str = "train again",
    kinds: str = "fiu",
    finite: bool = True,
    owner: str = "this model's network",
) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of an .npz file.

    Args:
        path: the file.
        shapes: the members it must hold, exactly, and their shapes (None axes take any
            size); None: any members of any shapes.
        fix: what to do about a bad file, ending the messages.
        kinds: the NumPy dtype kinds accepted (``"b"`` bool, ``"i"``/``"u"`` int, ``"f"``
            float).
        finite: refuse NaN and Inf.
        owner: what the file belongs to, for the messages on members missing or extra.

    Returns:
        The arrays by member name (without ``.npy``), in the order ``shapes`` names them
        (else the file's), in native byte order.

    Raises:
        GraphFileError: naming the file and the member: missing, too large, truncated or
            malformed, compressed, a member missing, extra or twice, of another shape or
            dtype, declaring more data than the file holds, or holding NaN or Inf.
    """
    data = read_regular_file(path, what=".npz file", limit=NPZ_LIMIT)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise GraphFileError(f"{path}: not a readable .npz file ({exc}); {fix}") from None
    with archive:
        names = archive.namelist()
        packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
        if packed:  # its size on disk would not bound what reading it allocates
            raise GraphFileError(
                f"{path}: member {show(packed[0])} is compressed; graphbp reads uncompressed "
                f".npz files only (np.savez, not np.savez_compressed); {fix}"
            )
        other = [n for n in names if not n.endswith(".npy")]
        if other:
            raise GraphFileError(f"{path}: member {show(other[0])} is not a .npy array; {fix}")
        members = {n.removesuffix(".npy"): n for n in names}
        if len(members) != len(names):
            twice = next(n for n in members if names.count(members[n]) > 1)
            raise GraphFileError(f"{path}: holds the array {show(twice)} twice; {fix}")
        if shapes is not None:
            extra = [n for n in members if n not in shapes]
            missing = [n for n in shapes if n not in members]
            if missing or extra:
                what = (
                    f"has no array {show(missing[0])}"
                    if missing
                    else f"has an extra member {show(extra[0])}"
                )
                raise GraphFileError(f"{path}: {what}; it does not belong to {owner}")
        wanted: Mapping[str, Shape | None] = (
            shapes if shapes is not None else dict.fromkeys(members)
        )
        reader = _Reader(path, archive, len(data), fix, kinds, finite)
        return {name: reader.member(members[name], name, want) for name, want in wanted.items()}


class _Reader:
    """Reads the members of one archive, counting the bytes they declare."""

    def __init__(
        self,
        path: Path,
        archive: zipfile.ZipFile,
        size: int,
        fix: str,
        kinds: str,
        finite: bool,
    ) -> None:
        self.path, self.archive, self.left = path, archive, size
        self.fix, self.kinds, self.finite = fix, kinds, finite

    def member(self, member: str, name: str, want: Shape | None) -> np.ndarray[Any, Any]:
        """One array, its header checked before its data is read."""
        from graphbp.op import shape_fits

        where = f"{self.path}: array {show(name)}"
        try:
            with self.archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                shape = tuple(shape)
                if want is not None and not shape_fits(shape, want):
                    raise GraphFileError(
                        f"{where} has shape {shape} but the network needs {tuple(want)}; "
                        f"the file does not belong to it; {self.fix}"
                    )
                if dtype.hasobject or dtype.kind not in self.kinds or dtype.itemsize > MAX_ITEMSIZE:
                    accepted = ", ".join(dict.fromkeys(KIND_NAMES[k] for k in self.kinds))
                    raise GraphFileError(
                        f"{where} has dtype {dtype}; expected numbers ({accepted}, at most "
                        f"64 bits; no objects or pickles); {self.fix}"
                    )
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > self.left:  # overlapping entries would multiply the file
                    raise GraphFileError(
                        f"{where} declares {nbytes:,} bytes of data, more than the file has "
                        f"left for it; {self.fix}"
                    )
                self.left -= nbytes
                if self.archive.getinfo(member).file_size != f.tell() + nbytes:
                    raise GraphFileError(f"{where} is truncated or too long; {self.fix}")
                raw = f.read(nbytes + 1)
                if len(raw) != nbytes:
                    raise GraphFileError(f"{where} is truncated or too long; {self.fix}")
                array = np.frombuffer(raw, dtype=dtype).reshape(
                    shape, order="F" if fortran else "C"
                )
        except GraphFileError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise GraphFileError(f"{where} cannot be read ({exc}); {self.fix}") from None
        if self.finite and dtype.kind == "f" and not np.isfinite(array).all():
            raise GraphFileError(f"{where} holds NaN or Inf; {self.fix}")
        return array.astype(array.dtype.newbyteorder("="), copy=True)
