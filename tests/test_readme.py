"""The README's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np

from graphbp.registry import unregister_op

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    jax_installed = importlib.util.find_spec("jax") is not None
    namespace: dict[str, Any] = {}
    try:
        for block in blocks:
            if "jax" in block and not jax_installed:
                continue  # the JAX section's examples need the [jax] extra
            exec(compile(block, str(README), "exec"), namespace)
    finally:
        unregister_op("cube")
    assert sorted(namespace["grads"]) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert np.isfinite(namespace["loss"])
    assert len(namespace["history"]) == 150
    assert namespace["history"][-1] < namespace["history"][0]
    if jax_installed:
        for name, grad in namespace["auto"].items():
            np.testing.assert_allclose(grad, namespace["grads"][name], rtol=1e-12, atol=1e-14)
        assert len(namespace["ensemble_losses"]) == 2 and len(namespace["sharded_history"]) == 2
