"""Random small JAX functions, composed from the primitives graphbp imports, give
jax.value_and_grad's loss and gradients once imported with gb.from_jax, on NumPy and JAX, and
after a round trip through node-link JSON.

A recipe is drawn step by step on concrete float64 values: each step applies one operation
(elementwise math, broadcasting binary ops, comparisons with where, reductions over random
axes, reshape/transpose/slice/concatenate/expand_dims/squeeze/broadcast, dot_general with
batch dimensions, take/indexing, stop_gradient, integer conversion, and what users compose
from jax.nn and jax.numpy: softmax, logsumexp, standardize, norm, pad, roll, the piecewise
activations ...) to values made so far.
Domains are kept smooth (log of softplus, sqrt of x² + 1) and a step that would sit on a tie
(max of equal values, a comparison of near-equal ones, truncation next to an integer) or
produce large values is skipped, so JAX's choice at a kink never decides the outcome.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import graphbp as gb

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
from jax_reference import check_leaves, close, jax_value_and_grads  # noqa: E402  (imports jax)

GAP = 1e-6
"""How far apart values must stay where a kink or a branch would otherwise decide."""


@dataclass(frozen=True)
class Lib:
    """The array functions a step uses: JAX's to trace, NumPy's to draw quickly (a step's
    concrete value decides whether it is kept; JAX would compile every new shape)."""

    xp: Any
    erf: Callable[[Any], Any]
    rsqrt: Callable[[Any], Any]
    stop_gradient: Callable[[Any], Any]
    slice_in_dim: Callable[..., Any]
    sigmoid: Callable[[Any], Any]
    softplus: Callable[[Any], Any]


def _numpy_slice_in_dim(a: Any, start: int, stop: int, stride: int, axis: int) -> Any:
    return a[(slice(None),) * axis + (slice(start, stop, stride),)]


JAX = Lib(
    jnp,
    jax.lax.erf,
    jax.lax.rsqrt,
    jax.lax.stop_gradient,
    jax.lax.slice_in_dim,
    jax.nn.sigmoid,
    jax.nn.softplus,
)
NUMPY = Lib(
    np,
    np.vectorize(math.erf, otypes=[float]),
    lambda a: 1 / np.sqrt(a),
    lambda a: a,
    _numpy_slice_in_dim,
    lambda a: 1 / (1 + np.exp(-a)),
    lambda a: np.logaddexp(0, a),
)

UNARY: dict[str, Callable[[Lib, Any], Any]] = {
    "sin": lambda m, a: m.xp.sin(a),
    "cos": lambda m, a: m.xp.cos(a),
    "tanh": lambda m, a: m.xp.tanh(a),
    "sigmoid": lambda m, a: m.sigmoid(a),
    "erf": lambda m, a: m.erf(a),
    "exp(tanh)": lambda m, a: m.xp.exp(m.xp.tanh(a)),
    "log(softplus)": lambda m, a: m.xp.log(m.softplus(a)),
    "sqrt(a²+1)": lambda m, a: m.xp.sqrt(a * a + 1),
    "rsqrt(a²+1)": lambda m, a: m.rsqrt(a * a + 1),
    "log1p(a²)": lambda m, a: m.xp.log1p(a * a),
    "expm1(tanh)": lambda m, a: m.xp.expm1(m.xp.tanh(a)),
    "abs": lambda m, a: m.xp.abs(a),
    "square": lambda m, a: m.xp.square(a),
    "a**3": lambda m, a: a**3,
    "(a²+1)**-1": lambda m, a: (a * a + 1) ** -1,
    "neg": lambda m, a: -a,
    "sign·cos": lambda m, a: m.xp.sign(a) * m.xp.cos(a),
    "stop_gradient": lambda m, a: m.stop_gradient(a),
    "a + int32(3·tanh)": lambda m, a: a + (3 * m.xp.tanh(a)).astype(m.xp.int32).astype(a.dtype),
}

BINARY: dict[str, Callable[[Lib, Any, Any], Any]] = {
    "add": lambda m, a, b: a + b,
    "sub": lambda m, a, b: a - b,
    "mul": lambda m, a, b: a * b,
    "a/(b²+1)": lambda m, a, b: a / (b * b + 1),
    "max": lambda m, a, b: m.xp.maximum(a, b),
    "min": lambda m, a, b: m.xp.minimum(a, b),
    "(a²+1)**tanh(b)": lambda m, a, b: (a * a + 1) ** m.xp.tanh(b),
    "where(a>b)": lambda m, a, b: m.xp.where(a > b, m.xp.tanh(a), b),
    "where(a<=b)": lambda m, a, b: m.xp.where(a <= b, a, m.xp.sin(b)),
    "where(a>=b)": lambda m, a, b: m.xp.where(a >= b, b, a * b),
    "where(a<b)": lambda m, a, b: m.xp.where(a < b, a, 2.0),
    "where(a!=b)": lambda m, a, b: m.xp.where(a != b, a - b, b),
    "where(a==b)": lambda m, a, b: m.xp.where(a == b, a, b * 3),
}

REDUCE = ("sum", "mean", "max", "min")


def _np_logsumexp(a: Any, keepdims: bool = False) -> Any:
    m = np.max(a, axis=-1, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True))
    return out if keepdims else out[..., 0]


def _np_standardize(a: Any) -> Any:
    mean = np.mean(a, axis=-1, keepdims=True)
    return (a - mean) / np.sqrt(np.mean(a * a, axis=-1, keepdims=True) - mean**2 + 1e-5)


def _np_selu(a: Any) -> Any:
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


def _pad_widths(a: Any) -> list[tuple[int, int]]:
    return [(1, 0)] + [(0, 1)] * (a.ndim - 1)


@dataclass(frozen=True)
class Composite:
    """What users write from jax.nn and jax.numpy, traced to several primitives: its JAX
    form, a NumPy twin to draw with, the inputs where it has a kink, and what it needs."""

    jax: Callable[[Any], Any]
    numpy: Callable[[Any], Any]
    kinks: tuple[float, ...] = ()
    rank: int = 0
    even_last: bool = False


COMPOSITE = {
    "relu6(3a)": Composite(
        lambda a: jax.nn.relu6(3 * a), lambda a: np.clip(3 * a, 0, 6), kinks=(0.0, 2.0)
    ),
    "hard_tanh": Composite(jax.nn.hard_tanh, lambda a: np.clip(a, -1, 1), kinks=(-1.0, 1.0)),
    "hard_swish(2a)": Composite(
        lambda a: jax.nn.hard_swish(2 * a),
        lambda a: 2 * a * np.clip(2 * a + 3, 0, 6) / 6,
        kinks=(-1.5, 1.5),
    ),
    "clip": Composite(
        lambda a: jnp.clip(a, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), (-0.5, 0.7)
    ),
    "celu": Composite(jax.nn.celu, lambda a: np.where(a > 0, a, np.expm1(np.minimum(a, 0)))),
    "selu": Composite(jax.nn.selu, _np_selu, kinks=(0.0,)),
    "mish": Composite(jax.nn.mish, lambda a: a * np.tanh(np.logaddexp(0, a))),
    "log_sigmoid": Composite(jax.nn.log_sigmoid, lambda a: -np.logaddexp(0, -a)),
    "logsumexp": Composite(lambda a: jax.nn.logsumexp(a, axis=-1), _np_logsumexp, rank=1),
    "softmax": Composite(
        lambda a: jax.nn.softmax(a, axis=-1), lambda a: np.exp(a - _np_logsumexp(a, True)), rank=1
    ),
    "log_softmax": Composite(
        lambda a: jax.nn.log_softmax(a, axis=-1), lambda a: a - _np_logsumexp(a, True), rank=1
    ),
    "standardize": Composite(lambda a: jax.nn.standardize(a, axis=-1), _np_standardize, rank=1),
    "norm": Composite(
        lambda a: jnp.linalg.norm(a, axis=-1), lambda a: np.linalg.norm(a, axis=-1), rank=1
    ),
    "std": Composite(lambda a: jnp.std(a, axis=-1), lambda a: np.std(a, axis=-1), rank=1),
    "pad": Composite(
        lambda a: jnp.pad(a, _pad_widths(a)), lambda a: np.pad(a, _pad_widths(a)), rank=1
    ),
    "roll": Composite(lambda a: jnp.roll(a, 1, axis=0), lambda a: np.roll(a, 1, axis=0), rank=1),
    "triu": Composite(jnp.triu, np.triu, rank=2),
    "glu": Composite(
        lambda a: jax.nn.glu(a, axis=-1),
        lambda a: np.split(a, 2, -1)[0] / (1 + np.exp(-np.split(a, 2, -1)[1])),
        rank=1,
        even_last=True,
    ),
}
"""Composites with a graphbp op for every primitive they trace to."""

KINDS = ("unary", "binary", "reduce", "reshape", "transpose", "slice", "concatenate")
KINDS += ("expand_dims", "squeeze", "broadcast", "dot", "take", "composite")

MAX_SIZE = 96


@dataclass(frozen=True)
class Step:
    """One operation of a recipe: its kind and name, the values it reads, static arguments."""

    kind: str
    name: str
    args: tuple[int, ...]
    attrs: tuple[Any, ...] = ()

    def __str__(self) -> str:
        operands = [f"v{i}" for i in self.args] + [_short(a) for a in self.attrs]
        return f"{self.kind} {self.name}({', '.join(operands)})"


def _short(value: Any) -> str:
    return repr(value.tolist()) if isinstance(value, np.ndarray) else repr(value)


def apply(m: Lib, step: Step, vals: list[Any]) -> Any:
    """The value of ``step`` on ``vals`` with ``m``'s functions."""
    xp = m.xp
    a = vals[step.args[0]]
    b = vals[step.args[1]] if len(step.args) > 1 else None
    at = step.attrs
    match step.kind:
        case "unary":
            return UNARY[step.name](m, a)
        case "composite":
            c = COMPOSITE[step.name]
            return c.jax(a) if m is JAX else c.numpy(a)
        case "binary":
            return BINARY[step.name](m, a, b)
        case "reduce":
            return getattr(xp, step.name)(a, axis=at[0], keepdims=at[1])
        case "reshape":
            return a.reshape(at[0])
        case "transpose":
            return a.transpose(at[0])
        case "slice":
            axis, start, stop, stride = at
            if step.name == "index":
                return a[(slice(None),) * axis + (slice(start, stop, stride),)]
            return m.slice_in_dim(a, start, stop, stride, axis)
        case "concatenate":
            return xp.concatenate([a, b], axis=at[0])
        case "expand_dims":
            return xp.expand_dims(a, at[0])
        case "squeeze":
            return xp.squeeze(a, at[0])
        case "broadcast":
            return xp.broadcast_to(a, at[0])
        case "dot":
            return xp.einsum(at[0], a, b)
        case "take":
            axis, idx = at
            return a[idx] if step.name == "index" else xp.take(a, idx, axis=axis)
    raise AssertionError(step.kind)


@dataclass
class Recipe:
    """Parameters, an input and the steps; ``container`` holds the parameters as a
    ``dict``, a ``tuple`` or (one parameter) a ``bare`` array; the input is a bare array or
    (``x_in_dict``) ``{"inp": x}``; ``argnums`` says which arguments are parameters."""

    params: list[Any]
    x: Any
    container: str
    x_in_dict: bool = False
    argnums: tuple[int, ...] = (0,)
    steps: list[Step] = field(default_factory=list)

    def __str__(self) -> str:
        shapes = ", ".join(f"v{i}{p.shape}" for i, p in enumerate(self.params))
        x = f"v{len(self.params)}{self.x.shape}"
        lines = [
            f"params ({self.container}) {shapes}; x = {'{inp: ' + x + '}' if self.x_in_dict else x}"
            f"; argnums {self.argnums}"
        ]
        first = len(self.params) + 1
        lines += [f"v{first + i} = {s}" for i, s in enumerate(self.steps)]
        return "\n".join(lines)

    def args(self) -> tuple[Any, Any]:
        x = {"inp": self.x} if self.x_in_dict else self.x
        if self.container == "dict":
            return {f"p{i}": p for i, p in enumerate(self.params)}, x
        if self.container == "tuple":
            return tuple(self.params), x
        return self.params[0], x

    def loss(self, vals: list[Any]) -> Any:
        """Σ over the values no step reads of Σ(v · w), ``w`` a fixed ramp of v's shape."""
        read = {i for s in self.steps for i in s.args}
        total = 0.0
        for i, v in enumerate(vals):
            if i not in read:
                ramp = np.linspace(-1.0, 1.5, max(v.size, 1)).reshape(v.shape) + 0.1 * i
                total = total + jnp.sum(v * ramp)
        return total

    def fn(self) -> Callable[[Any, Any], Any]:
        """The recipe as a JAX function of (parameters, x)."""
        n = len(self.params)
        container, x_in_dict = self.container, self.x_in_dict

        def run(params: Any, x: Any) -> Any:
            leaves_ = (
                [params[f"p{i}"] for i in range(n)]
                if container == "dict"
                else list(params)
                if container == "tuple"
                else [params]
            )
            vals = [*leaves_, x["inp"] if x_in_dict else x]
            for step in self.steps:
                vals.append(apply(JAX, step, vals))
            return self.loss(vals)

        if container != "bare":
            return run

        def loss(w: Any, x: Any) -> Any:  # a bare parameter takes fn's own parameter name
            return run(w, x)

        return loss


def _ties(values: Any, axes: tuple[int, ...]) -> bool:
    """Whether a max/min over ``axes`` has a runner-up within GAP of the winner."""
    moved = np.moveaxis(values, axes, tuple(range(-len(axes), 0)))
    flat = np.sort(moved.reshape(*moved.shape[: moved.ndim - len(axes)], -1), axis=-1)
    return flat.shape[-1] > 1 and bool(
        np.any(flat[..., -1] - flat[..., -2] < GAP) or np.any(flat[..., 1] - flat[..., 0] < GAP)
    )


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        return math.prod(np.broadcast_shapes(a, b)) <= MAX_SIZE
    except ValueError:
        return False


def _draw_step(draw: Any, rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> Step | None:
    """A random step on values of ``shapes``, or None where its kind does not apply.

    Hypothesis draws the structure (kinds, operands, axes); ``rng`` picks the function within
    a kind, so that a few dozen examples meet every function.
    """
    pick = st.integers(0, len(shapes) - 1)
    i = draw(pick)
    a = shapes[i]
    kind = draw(st.sampled_from(KINDS))
    if kind == "unary":
        return Step(kind, str(rng.choice(sorted(UNARY))), (i,))
    if kind == "composite":
        fits = [
            name
            for name, c in COMPOSITE.items()
            if len(a) >= c.rank and not (c.even_last and (not a or a[-1] % 2))
        ]
        return Step(kind, str(rng.choice(sorted(fits))), (i,))
    if kind == "binary":
        partners = [j for j, s in enumerate(shapes) if _broadcastable(a, s)]
        j = draw(st.sampled_from(partners))
        return Step(kind, str(rng.choice(sorted(BINARY))), (i, j))
    if not a:  # the rest need an axis
        return None
    if kind == "reduce":
        axes = draw(st.sets(st.integers(0, len(a) - 1), min_size=1))
        name = str(rng.choice(REDUCE))
        return Step(kind, name, (i,), (tuple(sorted(axes)), draw(st.booleans())))
    if kind == "reshape":
        size = math.prod(a)
        divisors = [d for d in range(1, size + 1) if size % d == 0]
        first = draw(st.sampled_from(divisors))
        shape = draw(st.sampled_from([(size,), (first, size // first), (first, -1), (1, -1, 1)]))
        return Step(kind, "", (i,), (shape,))
    if kind == "transpose":
        perm = draw(st.sampled_from(list(permutations(range(len(a))))))
        return Step(kind, "", (i,), (perm,))
    if kind == "slice":
        axis = draw(st.integers(0, len(a) - 1))
        start = draw(st.integers(0, a[axis] - 1))
        stop = draw(st.integers(start + 1, a[axis]))
        stride = draw(st.integers(1, 2))
        return Step(
            kind, draw(st.sampled_from(["lax", "index"])), (i,), (axis, start, stop, stride)
        )
    if kind == "concatenate":
        axis = draw(st.integers(0, len(a) - 1))
        partners = [
            j
            for j, s in enumerate(shapes)
            if len(s) == len(a)
            and all(p == q for k, (p, q) in enumerate(zip(s, a, strict=True)) if k != axis)
            and math.prod(a) + math.prod(s) <= MAX_SIZE
        ]
        return Step(kind, "", (i, draw(st.sampled_from(partners))), (axis,)) if partners else None
    if kind == "expand_dims":
        return Step(kind, "", (i,), (draw(st.integers(-len(a) - 1, len(a))),))
    if kind == "squeeze":
        ones = [k for k, n in enumerate(a) if n == 1]
        return Step(kind, "", (i,), (draw(st.sampled_from(ones)),)) if ones else None
    if kind == "broadcast":
        lead = draw(st.integers(2, 3))
        shape = (lead, *[n if draw(st.booleans()) or n != 1 else 3 for n in a])
        return Step(kind, "", (i,), (shape,)) if math.prod(shape) <= MAX_SIZE else None
    if kind == "dot":
        same = [j for j, s in enumerate(shapes) if s == a]
        j = draw(st.sampled_from(same))
        letters = "abcd"[: len(a)]
        free = draw(st.sampled_from(["last", "first", "all"]))
        if free == "all" or len(a) == 1:  # contract every axis: a scalar
            spec = f"{letters},{letters}->"
        elif (
            free == "last"
        ):  # batch over the leading axes, contract the last: (.., m, n)·(.., k, n)
            lead = letters[:-2]
            spec = f"{lead}ij,{lead}kj->{lead}ik"
        else:  # contract the first axis, batch none: the Gram matrix of columns
            rest = letters[1:]
            other = "".join(chr(ord(c) + 10) for c in rest)
            spec = f"z{rest},z{other}->{rest}{other}"
        return Step(kind, free, (i, j), (spec,))
    axis = draw(st.integers(0, len(a) - 1))
    shape = draw(st.sampled_from([(1,), (3,), (2, 2)]))
    idx = rng.integers(0, a[axis], shape)
    name = "index" if axis == 0 and draw(st.booleans()) else "take"
    return Step("take", name, (i,), (axis, idx))


def _safe(step: Step, vals: list[Any], out: Any) -> bool:
    """Whether ``out`` is small and finite and ``step`` sits away from every kink it has."""
    out = np.asarray(out)
    if out.ndim > 4 or out.size > MAX_SIZE or not np.all(np.isfinite(out)):
        return False
    if np.max(np.abs(out), initial=0.0) > 1e3:
        return False
    a = np.asarray(vals[step.args[0]])
    b = np.asarray(vals[step.args[1]]) if len(step.args) > 1 else None
    if step.kind == "composite":
        kinks = COMPOSITE[step.name].kinks
        if step.name == "std" and np.any(np.std(a, axis=-1) < GAP):
            return False
        return all(bool(np.all(np.abs(a - k) > GAP)) for k in kinks)
    if step.kind == "unary" and step.name in ("abs", "sign·cos"):
        return bool(np.all(np.abs(a) > GAP))
    if step.kind == "unary" and step.name.startswith("a + int32"):
        t = 3 * np.tanh(a)
        return bool(np.all(np.abs(t - np.rint(t)) > GAP))
    if step.kind == "binary" and (step.name in ("max", "min") or step.name.startswith("where")):
        return bool(np.all(np.abs(a - b) > GAP))
    if step.kind == "reduce" and step.name in ("max", "min"):
        return not _ties(a, step.attrs[0])
    return True


@st.composite
def recipes(draw: Any) -> Recipe:
    """A random recipe; its values are computed (float64) as it is drawn."""
    rank = draw(st.integers(1, 3))
    base = tuple(draw(st.integers(2, 4)) for _ in range(rank))
    count = draw(st.integers(1, 3))
    container = draw(
        st.sampled_from(["dict", "tuple", "bare"] if count == 1 else ["dict", "tuple"])
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def variant() -> tuple[int, ...]:
        keep = draw(st.integers(0, rank))  # a suffix of base, some axes of size 1
        return tuple(n if draw(st.booleans()) else 1 for n in base[rank - keep :])

    params = [rng.standard_normal(variant()) for _ in range(count)]
    x_in_dict = draw(st.booleans())
    argnums = draw(st.sampled_from([(0,), (0, 1)]))
    recipe = Recipe(params, rng.standard_normal(base), container, x_in_dict, argnums)
    vals: list[Any] = [*params, recipe.x]
    target, attempts = draw(st.integers(2, 7)), 0
    while len(recipe.steps) < target and attempts < 5 * target:
        attempts += 1
        step = _draw_step(draw, rng, [tuple(v.shape) for v in vals])
        if step is None:
            continue
        out = np.asarray(apply(NUMPY, step, vals))
        if _safe(step, vals, out):
            recipe.steps.append(step)
            vals.append(out)
    return recipe


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_jax_functions_import_with_jax_gradients(data: st.DataObject) -> None:
    with jax.enable_x64(True):
        recipe = data.draw(recipes())
        note(str(recipe))
        fn, args = recipe.fn(), recipe.args()
        argnums = recipe.argnums
        net, params, inputs = gb.from_jax(fn, *args, argnums=argnums)
        want_loss, want = jax_value_and_grads(fn, args, argnums)
    assert sorted(params) == sorted(want)
    back = gb.Network.from_dict(json.loads(net.to_json_bytes()))  # attributes as JSON has them
    for backend, network in (("numpy", net), ("jax", net), ("numpy from JSON", back)):
        prog = network.compile(backend.split()[0], "float64")
        loss, grads = prog.value_and_grad(params, inputs)
        to_numpy = prog.backend.to_numpy
        close(to_numpy(loss), want_loss, 1e-9, f"loss on {backend}", atol=1e-12)
        for name, grad in want.items():
            close(to_numpy(grads[name]), grad, 1e-9, f"∂L/∂{name} on {backend}", atol=1e-12)
    check_leaves(fn, args, argnums, params, inputs)


def test_constants_folded_in_inner_jits_keep_their_own_values() -> None:
    """Found by the random test: index arrays of different shapes, each folded inside
    jnp.take's own jit, stay distinct constants (their arrays die with the jit's body, so a
    constant must not be recognised by the address of its array)."""

    def fn(w: Any, x: Any) -> Any:
        total = 0.0
        for k in range(1, 12):
            idx = (np.arange(k * k) % 3).reshape(k, k)
            total = total + jnp.sum(jnp.take(w, idx, axis=0, mode="clip")) * k * x
        return total

    args = (np.arange(3.0), np.ones(()))
    with jax.enable_x64(True):
        want_loss, want = jax_value_and_grads(fn, args)
        for _ in range(3):  # later traces reuse the memory of earlier ones: more chances
            net, params, inputs = gb.from_jax(fn, *args)
            loss, grads = net.compile("numpy").value_and_grad(params, inputs)
            close(loss, want_loss, 1e-12, "loss")
            close(grads["w"], want["w"], 1e-12, "∂L/∂w")
