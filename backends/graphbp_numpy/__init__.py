"""The NumPy backend: the engine runs eagerly with ``xp = numpy``."""

from __future__ import annotations

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
