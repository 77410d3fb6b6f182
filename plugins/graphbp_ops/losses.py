"""Losses: scalar functions of a prediction (operand 0) and a target (operand 1)."""

from __future__ import annotations

from typing import Any

from graphbp import Op
from graphbp.op import Example
from graphbp_ops._shapes import broadcast

_ALL = (True, True)
"""Default ``needs``: both cotangents (the target's is skipped when it needs no gradient)."""


class _Loss(Op):
    """A scalar function of two operands that broadcast together."""

    def shape(self, pred: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
        broadcast(pred, target)
        return ()


def _pair(rng: Any) -> list[Example]:
    return [
        ((rng.standard_normal((5, 2)), rng.standard_normal((5, 2))), {}),
        ((rng.standard_normal((4,)), rng.standard_normal((4,))), {}),
    ]


class SSE(_Loss):
    """Sum of squared errors, L = Σᵢ ‖yᵢ − ŷᵢ‖² (the textbook loss)."""

    name = "sse"
    label = "Σ‖y−ŷ‖²"
    local_grads = ("2(ŷ−y)", "−2(ŷ−y)")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, pred: Any, target: Any) -> Any:
        d = pred - target
        return xp.vdot(d, d)  # Σ d², one call

    def vjp(
        self, xp: Any, g: Any, out: Any, pred: Any, target: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        gd = (pred - target) * (2 * g)
        return gd, (-gd if needs[1] else None)

    def examples(self, rng: Any) -> list[Example]:
        return _pair(rng)


class MSE(_Loss):
    """Mean squared error over all elements."""

    name = "mse"
    label = "mean‖y−ŷ‖²"
    local_grads = ("2(ŷ−y)/n", "−2(ŷ−y)/n")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, pred: Any, target: Any) -> Any:
        d = pred - target
        return xp.mean(d * d)

    def vjp(
        self, xp: Any, g: Any, out: Any, pred: Any, target: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        gd = (pred - target) * (2 * g / pred.size)
        return gd, (-gd if needs[1] else None)

    def examples(self, rng: Any) -> list[Example]:
        return _pair(rng)


def log_softmax(xp: Any, z: Any, axis: int) -> Any:
    """log softmax(z) along ``axis``, shifted by the max for stability."""
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


class SoftmaxCrossEntropy(Op):
    """Mean over examples of −Σ_c y_c log softmax(z)_c; y one-hot or probabilities."""

    name = "softmax_cross_entropy"
    label = "CE(softmax)"
    local_grads = ("(softmax(z)·Σy − y)/n", "−log softmax(z)/n")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, logits: Any, labels: Any, axis: int = -1) -> Any:
        n = logits.size // logits.shape[axis]
        return -xp.sum(labels * log_softmax(xp, logits, axis)) / n

    def vjp(
        self, xp: Any, g: Any, out: Any, logits: Any, labels: Any, axis: int = -1
    ) -> tuple[Any, Any]:
        scale = g / (logits.size // logits.shape[axis])
        logp = log_softmax(xp, logits, axis)
        total = xp.sum(labels, axis=axis, keepdims=True)
        return scale * (xp.exp(logp) * total - labels), -scale * logp

    def shape(
        self, logits: tuple[int, ...], labels: tuple[int, ...], axis: int = -1
    ) -> tuple[int, ...]:
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"axis must be an int; got {type(axis).__name__}")
        if not -len(logits) <= axis < len(logits):
            raise ValueError(f"axis {axis} is out of bounds for logits of shape {logits}")
        if logits[axis] == 0:
            raise ValueError(
                f"softmax over axis {axis} of logits of shape {logits}, which is empty"
            )
        broadcast(labels, logits)
        return ()

    def examples(self, rng: Any) -> list[Example]:
        z = rng.standard_normal((4, 3))
        y = rng.dirichlet([1.0, 1.0, 1.0], size=4)
        return [((z, y), {}), ((z.T.copy(), y.T.copy()), {"axis": 0})]
