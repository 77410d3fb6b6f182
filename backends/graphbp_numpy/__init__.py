"""The NumPy backend: the engine runs eagerly with ``xp = numpy``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from graphbp.backend import Backend


class NumpyBackend(Backend):
    """Runs every op plugin with NumPy arrays on the CPU."""

    name = "numpy"
    mutable = True
    array_types = (np.ndarray, np.generic)  # np.float64(...) is what a 0-d ufunc returns

    def is_array(self, value: Any) -> bool:
        """An ndarray itself or a NumPy scalar; no subclass of ndarray (np.matrix, a masked
        array), whose operations mean something else."""
        return type(value) is np.ndarray or isinstance(value, np.generic)

    @property
    def xp(self) -> Any:
        """The numpy module."""
        return np

    def asarray(self, value: Any, dtype: str) -> Any:
        """Convert ``value`` to a NumPy array of ``dtype`` (no copy if it already is one)."""
        return np.asarray(value, dtype=dtype)

    def constant(self, value: Any, dtype: str) -> Any:
        """A read-only copy: an op that writes into a shared constant fails loudly."""
        array = np.array(value, dtype=dtype)
        array.flags.writeable = False
        return array

    def read_only(self, value: Any) -> Any:
        """A read-only view of an ndarray (the array itself and its owner's flags unchanged):
        a plugin writing into it raises NumPy's "assignment destination is read-only". The
        view is made by ``as_strided``, whose flag cannot be set back: a plain view of a
        writable array could be made writable again with ``setflags(write=True)``."""
        if value.__class__ is np.ndarray and value.flags.writeable:
            value = np.lib.stride_tricks.as_strided(value, writeable=False)
        return value

    def independent(self, values: Sequence[Any], others: Iterable[Any]) -> tuple[Any, ...]:
        """Each of ``values`` a writable ndarray sharing memory with no other result and
        with none of ``others`` (copied where needed; fresh results, the usual case, cost a
        check).

        Memory is compared by owner: an array's ``base``, or the array itself. That covers
        one result twice, views of one array and of ``others``, not two views of a third
        array.
        """
        taken = set(map(id, others))
        out = []
        for value in values:
            if value.__class__ is not np.ndarray:  # a NumPy scalar: a 0-d array of its own
                value = np.array(value)
            owner = value if (base := value.base) is None else base
            if id(owner) in taken or id(value) in taken or not value.flags.writeable:
                value = owner = value.copy()
            taken.add(id(owner))
            out.append(value)
        return tuple(out)
