"""Optimizers: a pure ``update`` (for backends that jit the step) and an in-place ``update_``.

Both compute the same rule. The in-place form exists because, on NumPy, allocating a fresh
array per parameter per step costs more than the step's arithmetic for large layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphbp.errors import InputError
from graphbp.op import Array

Params = dict[Any, Array]


class SGD:
    """Plain gradient descent: W ← W − η·∇W L."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def init(self, params: Mapping[Any, Array]) -> Any:
        """SGD keeps no state."""
        return ()

    def update(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, returning new arrays."""
        return {k: p - self.lr * grads[k] for k, p in params.items()}, state

    def update_(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, overwriting ``params``' arrays."""
        for k, p in params.items():
            p -= self.lr * grads[k]
        return params, state


class Momentum:
    """Heavy-ball momentum: v ← μ·v + ∇W L;  W ← W − η·v."""

    def __init__(self, lr: float, momentum: float = 0.9) -> None:
        self.lr, self.momentum = lr, momentum

    def init(self, params: Mapping[Any, Array]) -> Any:
        """Velocities, zero."""
        return {k: p * 0 for k, p in params.items()}

    def update(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, returning new arrays."""
        v = {k: self.momentum * state[k] + grads[k] for k in params}
        return {k: p - self.lr * v[k] for k, p in params.items()}, v

    def update_(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, overwriting ``params``' and the state's arrays."""
        for k, p in params.items():
            v = state[k]
            v *= self.momentum
            v += grads[k]
            p -= self.lr * v
        return params, state


class Adam:
    """Adam (Kingma & Ba, 2015): moment estimates with bias correction."""

    def __init__(self, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps

    def init(self, params: Mapping[Any, Array]) -> Any:
        """First and second moments, zero, and the step count."""
        return 0, {k: p * 0 for k, p in params.items()}, {k: p * 0 for k, p in params.items()}

    def _rate(self, t: Any) -> Any:
        """The bias-corrected step size at step ``t`` (an int, or a traced array under jit)."""
        return self.lr * (1 - self.b2**t) ** 0.5 / (1 - self.b1**t)

    def update(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, returning new arrays."""
        t, m, v = state
        b1, b2, rate = self.b1, self.b2, self._rate(t + 1)
        m = {k: b1 * m[k] + (1 - b1) * grads[k] for k in params}
        v = {k: b2 * v[k] + (1 - b2) * grads[k] * grads[k] for k in params}
        new = {k: p - rate * m[k] / (v[k] ** 0.5 + self.eps) for k, p in params.items()}
        return new, (t + 1, m, v)

    def update_(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        """One step, overwriting ``params``' and the moments' arrays."""
        t, m, v = state
        b1, b2, rate = self.b1, self.b2, self._rate(t + 1)
        for k, p in params.items():
            g = grads[k]
            m[k] *= b1
            m[k] += (1 - b1) * g
            v[k] *= b2
            v[k] += (1 - b2) * g * g
            p -= rate * m[k] / (v[k] ** 0.5 + self.eps)
        return params, (t + 1, m, v)


Optimizer = SGD | Momentum | Adam

OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, lr: float) -> Optimizer:
    """The optimizer called ``name`` with learning rate ``lr``."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise InputError(f"learning rate must be positive, got {lr}")
    return OPTIMIZERS[name](lr)
