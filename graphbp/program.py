"""Program: a network compiled for one backend and dtype — init it, run it, differentiate it."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graphbp.engine import Compiled, Feed, Rules, compile_plan
from graphbp.errors import InputError, PluginError
from graphbp.graph import Network, shape_matches
from graphbp.op import Array
from graphbp.plan import BackStep, Plan, build_plan

if TYPE_CHECKING:
    from graphbp.backend import Backend
    from graphbp.optim import Optimizer

TrainStep = Callable[
    [dict[int, Array], Any, Sequence[Array], Any], tuple[dict[int, Array], Any, Array]
]
"""``step(params, state, data, rows) -> (params, state, loss)``: one minibatch update.

Parameters and optimizer state are keyed by position in ``network.params``; ``data`` holds
every row of each input in plan order and ``rows`` picks the minibatch.
"""
PlanKey = tuple[tuple[Hashable, ...], bool]


class Program:
    """A network compiled for one backend and dtype.

    Args:
        network: the validated network.
        backend: the backend to run on.
        dtype: ``"float64"`` or ``"float32"``.
        check_finite: raise NonFiniteError naming the first node whose value or gradient
            is NaN or infinite (slower; off by default).
    """

    def __init__(
        self, network: Network, backend: Backend, dtype: str, check_finite: bool = False
    ) -> None:
        self.network = network
        self.backend = backend
        self.dtype = dtype
        self.check_finite = check_finite
        self.xp = backend.xp
        self._plans: dict[PlanKey, Plan] = {}
        self._compiled: dict[PlanKey, tuple[Plan, Compiled]] = {}
        self._consts = {
            n: backend.constant(network.graph.nodes[n]["value"], dtype) for n in network.consts
        }
        self._dtype = backend.asarray(0.0, dtype).dtype
        for back in self.plan(with_grad=True).backward:
            self._vjp_rule(back)  # fail now, not at the first gradient, if one is missing

    def _vjp_rule(self, back: BackStep) -> Callable[..., Any]:
        """The backend's derivative rule for a backward step, or an error naming the op."""
        rule = self.backend.vjp_of(back.op)
        if rule is None:
            raise PluginError(
                f"op {back.op.name!r} at node {back.node!r} defines no vjp, so the "
                f"{self.backend.name} backend cannot differentiate the loss through it; define "
                f"vjp(self, xp, g, out, *operands) in {type(back.op).__qualname__}, or compile "
                "with backend='jax', which differentiates its forward itself"
            )
        return rule

    def plan(self, outputs: Iterable[Hashable] | None = None, with_grad: bool = False) -> Plan:
        """The plan computing ``outputs`` (default: the loss), and with_grad its gradient."""
        key = self._key(outputs, with_grad)
        if key not in self._plans:
            self._plans[key] = build_plan(self.network, key[0], with_grad)
        return self._plans[key]

    def source(self, outputs: Iterable[Hashable] | None = None, with_grad: bool = True) -> str:
        """The Python the plan was compiled to: the forward pass, then the chain rule."""
        return self._get(outputs, with_grad)[1].source

    def _key(self, outputs: Iterable[Hashable] | None, with_grad: bool) -> PlanKey:
        key = (tuple(outputs) if outputs is not None else (self.network.loss,), with_grad)
        for n in key[0]:
            if n not in self.network.ops:
                raise InputError(f"no node {n!r} in the network; nodes: {self.network.order}")
        return key

    def _get(self, outputs: Iterable[Hashable] | None, with_grad: bool) -> tuple[Plan, Compiled]:
        key = self._key(outputs, with_grad)
        if key not in self._compiled:
            plan = self.plan(*key)
            feed = Feed(
                self.backend.array_type,
                self._dtype,
                self.network.shapes,
                self._admit,
                self._consts,
                self.backend.constant(1.0, self.dtype),
            )
            rules = self._rules(with_grad)
            self._compiled[key] = (
                plan,
                compile_plan(plan, feed, rules, with_grad, self.check_finite),
            )
        return self._compiled[key]

    def _rules(self, with_grad: bool) -> Rules:
        """The forward and vjp the engine calls for each step (the backend's choice)."""
        return Rules(lambda step: step.op.forward, self._vjp_rule)

    # ---------------------------------------------------------------- public entry points

    def init(self, seed: int = 0) -> dict[Any, Array]:
        """Fresh parameters: each from its node's ``init`` (default glorot, zeros for 1-D).

        Each parameter's stream is seeded by ``(seed, its name)``, so adding a parameter
        leaves the others' initial values unchanged.
        """
        import numpy as np

        params: dict[Any, Array] = {}
        for name in self.network.params:
            data = self.network.graph.nodes[name]
            shape = tuple(data["shape"])
            rng = np.random.default_rng([seed, zlib.crc32(str(name).encode())])
            params[name] = self.backend.asarray(
                initial_value(rng, shape, data.get("init")), self.dtype
            )
        return params

    def loss(self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]) -> Array:
        """The loss (a 0-d array) for ``params`` and ``inputs``."""
        return self._get(None, False)[1].run(self.xp, params, inputs)[0]

    def value_and_grad(
        self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]
    ) -> tuple[Array, dict[Any, Array]]:
        """The loss and ∂loss/∂param for every parameter (zeros where it does not matter)."""
        loss, grads = self._get(None, True)[1].run(self.xp, params, inputs)
        if len(grads) != len(self.network.params):
            for name in self.network.params:  # parameters the loss does not depend on
                if name not in grads:
                    grads[name] = self.xp.zeros_like(params[name])
        return loss, grads

    def forward(
        self,
        params: Mapping[Any, Array],
        inputs: Mapping[Any, Array],
        outputs: Iterable[Hashable],
    ) -> dict[Any, Array]:
        """Values of the nodes ``outputs`` (e.g. the prediction), needing only their inputs."""
        outputs = tuple(outputs)
        values = self._get(outputs, False)[1].run(self.xp, params, inputs)
        return dict(zip(outputs, values, strict=True))

    # ---------------------------------------------------------------------------- training

    def own(self, values: Mapping[Any, Any]) -> dict[Any, Array]:
        """Private copies of ``values`` as arrays of the program's dtype, where it computes."""
        return {k: self.xp.array(v, dtype=self.dtype) for k, v in values.items()}

    def train_step(
        self, optimizer: Optimizer, params: Sequence[Hashable], inputs: Sequence[Hashable]
    ) -> TrainStep:
        """One minibatch step: the loss and gradient on some rows of the data, then the update.

        Args:
            optimizer: the update rule; applied in place on a mutable backend (NumPy).
            params: the parameter names, by position.
            inputs: the input names, by position in the step's ``data``.
        """
        update = optimizer.update_ if self.backend.mutable else optimizer.update
        value_and_grad = self.value_and_grad

        def step(
            current: dict[int, Array], state: Any, data: Sequence[Array], rows: Any
        ) -> tuple[dict[int, Array], Any, Array]:
            batch = {name: data[i][rows] for i, name in enumerate(inputs)}
            loss, grads = value_and_grad({n: current[i] for i, n in enumerate(params)}, batch)
            current, state = update(current, {i: grads[n] for i, n in enumerate(params)}, state)
            return current, state, loss

        return step

    # ------------------------------------------------------------------------ leaf checks

    def _admit(self, kind: str, name: Hashable, value: Any, given: Mapping[Any, Array]) -> Array:
        """``value`` as a backend array of the program's dtype, or an error naming the leaf."""
        if value is None and name not in given:
            raise InputError(
                f"missing {kind} {name!r} (op {kind!r}); pass it in the {kind}s dict, "
                f"which has {sorted(map(str, given))}"
            )
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype != self.dtype and dtype.kind not in "fiub":
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has dtype {dtype}; pass real numbers "
                f"(they are converted to {self.dtype})"
            )
        try:
            array = self.backend.asarray(value, self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) cannot be converted to a {self.dtype} array "
                f"({exc}); pass a numeric array"
            ) from None
        if not shape_matches(array.shape, self.network.shapes[name]):
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has shape {tuple(array.shape)} but the network "
                f"declares {self.network.shapes[name]}; reshape it (None axes take any size)"
            )
        return array


def initial_value(rng: Any, shape: tuple[int, ...], init: Any) -> Any:
    """Draw a parameter's initial value (NumPy float64) by the scheme named ``init``."""
    import numpy as np

    if init is None:
        init = "glorot" if len(shape) >= 2 else "zeros"
    if isinstance(init, int | float):
        return np.full(shape, float(init))
    fan_in = shape[0] if shape else 1
    fan_out = shape[-1] if shape else 1
    if init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if init == "he":
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if init == "normal":
        return rng.standard_normal(shape)
    if init == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if init == "zeros":
        return np.zeros(shape)
    return np.ones(shape)
