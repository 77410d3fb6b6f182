"""Elementwise nonlinearities; each rule reuses the forward output where it can."""

from __future__ import annotations

from typing import Any

from graphbp import Op
from graphbp.op import Example
from graphbp_ops._examples import away_from_zero


class _Elementwise(Op):
    """A one-operand op whose result has its operand's shape."""

    def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
        return x


class Exp(_Elementwise):
    name = "exp"
    label = "exp"
    local_grads = ("exp(x)",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.exp(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * out,)


class Log(_Elementwise):
    name = "log"
    label = "log"
    local_grads = ("1/x",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.log(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g / x,)

    def examples(self, rng: Any) -> list[Example]:
        return [((0.5 + abs(rng.standard_normal((3, 4))),), {})]


class Sigmoid(_Elementwise):
    name = "sigmoid"
    label = "σ"
    local_grads = ("σ(z)(1−σ(z))",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, z: Any) -> Any:
        if xp.__name__ == "jax.numpy":
            # What jax.nn.sigmoid computes: XLA fuses it into one loop (exp(710) is inf: 0).
            # The tanh form below costs JAX's whole training step 1.4× (XLA keeps tanh(z/2)
            # for the rule and recomputes σ from it in a second pass).
            return 1 / (1 + xp.exp(-z))
        # σ(z) = (1 + tanh(z/2)) / 2: the same function, with no overflow warning for large |z|.
        return 0.5 + 0.5 * xp.tanh(0.5 * z)

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        return (g * out * (1 - out),)


class Tanh(_Elementwise):
    name = "tanh"
    label = "tanh"
    local_grads = ("1−tanh²(z)",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, z: Any) -> Any:
        return xp.tanh(z)

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        return (g * (1 - out * out),)


class Relu(_Elementwise):
    name = "relu"
    label = "ReLU"
    local_grads = ("[z>0]",)
    vjp_reads = (0,)

    def forward(self, xp: Any, z: Any) -> Any:
        return xp.maximum(z, 0)

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        return (xp.where(z > 0, g, 0),)

    def examples(self, rng: Any) -> list[Example]:
        return [((away_from_zero(rng, (3, 4), margin=0.1),), {})]


class Relu6(_Elementwise):
    """``jax.nn.relu6``: min(max(z, 0), 6), with JAX's rule: slope 0 at both kinks."""

    name = "relu6"
    label = "ReLU6"
    local_grads = ("[0<z<6]",)
    vjp_reads = (0,)

    def forward(self, xp: Any, z: Any) -> Any:
        return xp.minimum(xp.maximum(z, 0), 6)

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        return (xp.where((z > 0) & (z < 6), g, 0),)

    def examples(self, rng: Any) -> list[Example]:
        x = away_from_zero(rng, (3, 4), margin=0.1) * 4
        return [((x + (abs(x - 6) < 0.1) * 0.5,), {})]  # no kink at 6 either


class Softplus(_Elementwise):
    name = "softplus"
    label = "softplus"
    local_grads = ("σ(z)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, z: Any) -> Any:
        return xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(z, 0)

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        return (g * (0.5 + 0.5 * xp.tanh(0.5 * z)),)
