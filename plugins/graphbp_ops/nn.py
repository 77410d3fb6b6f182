"""Neural-network ops as lax has them: ``gather`` (embedding lookups, ``x[ids]``,
``jnp.take``), ``conv`` (``lax.conv_general_dilated``) and the window reductions of max and
average pooling (``reduce_window_max``, ``reduce_window_sum``). Attributes are the
primitives' own, as JSON lists; derivatives are JAX's (``jax.vjp`` of the primitive)."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from graphbp import Op
from graphbp.errors import show
from graphbp.op import Example
from graphbp_ops import _gather
from graphbp_ops._attrs import ints, is_int
from graphbp_ops._windows import (
    SMALL,
    Windows,
    check_work,
    count,
    fold,
    gather,
    prepare,
    scatter,
    unprepare,
    views,
    windows,
)

_BOTH = (True, True)
_INF = float("inf")


class Gather(Op):
    """``lax.gather``: slices of ``operand`` at the positions ``indices`` give (integer-valued
    floats, the last axis holding each index vector). Out-of-bounds windows are clamped
    (``clip``, ``promise_in_bounds``) or read as ``fill_value`` (``fill``; None is NaN)."""

    name = "gather"
    label = "x[i]"
    local_grads = ("scatter-add of g at i", "0")
    vjp_reads = (0, 1)

    def forward(
        self,
        xp: Any,
        operand: Any,
        indices: Any,
        *,
        dimension_numbers: Mapping[str, Any],
        slice_sizes: list[int],
        mode: str = "fill",
        fill_value: float | None = None,
    ) -> Any:
        _gather.check_mode(mode, fill_value)
        p = _gather.plan(operand.shape, indices.shape, dimension_numbers, slice_sizes)
        if math.prod(p.out_shape) == 0:
            return xp.zeros(p.out_shape, dtype=operand.dtype)
        starts, inside = _gather.read_starts(xp, p, indices)
        src = _read_order(xp, operand, p)
        at = _gather.index_arrays(xp, p, starts)
        whole = tuple(operand.shape[d] for d in p.whole)
        result = src[at] if at else xp.broadcast_to(src, p.reduced_shape + whole)
        if mode == "fill" and inside is not None:
            fill = xp.asarray(math.nan if fill_value is None else fill_value, dtype=operand.dtype)
            result = xp.where(_mask(xp, p, inside), result, fill)
        return _gather.to_output(xp, p, result)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        operand: Any,
        indices: Any,
        *,
        dimension_numbers: Mapping[str, Any],
        slice_sizes: list[int],
        mode: str = "fill",
        fill_value: float | None = None,
        needs: tuple[bool, ...] = _BOTH,
    ) -> tuple[Any, Any]:
        dindices = xp.zeros_like(indices) if needs[1] else None
        if not needs[0]:
            return None, dindices
        p = _gather.plan(operand.shape, indices.shape, dimension_numbers, slice_sizes)
        order = _gather.operand_order(p)
        total = xp.zeros(tuple(operand.shape[d] for d in order), dtype=g.dtype)
        if math.prod(p.out_shape) == 0:
            return xp.transpose(total, _inverse(order)), dindices
        starts, inside = _gather.read_starts(xp, p, indices)
        gr = _gather.from_output(xp, p, g)
        if mode != "clip" and inside is not None:  # JAX's scatter drops out-of-bounds windows
            gr = xp.where(_mask(xp, p, inside), gr, 0)
        at = _gather.index_arrays(xp, p, starts)
        if not at:
            total = xp.sum(gr, axis=tuple(range(len(p.reduced_shape))))
        elif hasattr(total, "at"):
            total = total.at[at].add(gr)
        else:
            xp.add.at(total, at, gr)
        return (total if order == sorted(order) else xp.transpose(total, _inverse(order))), dindices

    def shape(
        self,
        operand: tuple[int, ...],
        indices: tuple[int, ...],
        *,
        dimension_numbers: Mapping[str, Any],
        slice_sizes: list[int],
        mode: str = "fill",
        fill_value: float | None = None,
    ) -> tuple[int, ...]:
        _gather.check_mode(mode, fill_value)
        return _gather.plan(operand, indices, dimension_numbers, slice_sizes).out_shape

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``x[i]``, with the mode when out-of-bounds windows are filled."""
        fill = attrs.get("mode", "fill") == "fill"
        return ("x[i] (fill)" if fill else self.label), self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        def dn(offset: list[int], collapsed: list[int], start: list[int], **batch: Any) -> Any:
            return {
                "offset_dims": offset,
                "collapsed_slice_dims": collapsed,
                "start_index_map": start,
                **batch,
            }

        table = rng.standard_normal((5, 4))
        ids = [[1.0], [3.0], [0.0]]
        return [
            # table[ids], jnp.take(x, ids, axis=0) (in bounds: fill changes nothing)
            (
                (table, ids),
                {"dimension_numbers": dn([1], [0], [0]), "slice_sizes": [1, 4]},
            ),
            # jnp.take(x, ids, axis=1), clip mode with an index out of range and repeats
            (
                (table, [[2.0], [7.0], [2.0]]),
                {
                    "dimension_numbers": dn([0], [1], [1]),
                    "slice_sizes": [5, 1],
                    "mode": "clip",
                },
            ),
            # table[ids2] with 2-D ids
            (
                (table, [[[1.0], [4.0]], [[1.0], [0.0]]]),
                {
                    "dimension_numbers": dn([2], [0], [0]),
                    "slice_sizes": [1, 4],
                    "mode": "promise_in_bounds",
                },
            ),
            # x[i, j]: both axes indexed and collapsed; a window out of bounds filled with 0
            (
                (table, [[1.0, 2.0], [4.0, 0.0], [9.0, 1.0]]),
                {
                    "dimension_numbers": dn([], [0, 1], [0, 1]),
                    "slice_sizes": [1, 1],
                    "fill_value": 0.0,
                },
            ),
            # a dynamic slice of 2×3 windows, not collapsed, the offset axes first
            (
                (table, [[1.0, 0.0], [3.0, 1.0]]),
                {
                    "dimension_numbers": dn([0, 1], [], [0, 1]),
                    "slice_sizes": [2, 3],
                    "mode": "clip",
                },
            ),
            # take_along_axis: a batching axis
            (
                (table, [[[0.0]], [[3.0]], [[1.0]], [[1.0]], [[2.0]]]),
                {
                    "dimension_numbers": dn(
                        [],
                        [1],
                        [1],
                        operand_batching_dims=[0],
                        start_indices_batching_dims=[0],
                    ),
                    "slice_sizes": [1, 1],
                },
            ),
        ]


class ConvPlan(NamedTuple):
    """A convolution in the canonical layout lhs (N, *S, C), rhs (*K, I, O), out (N, *S', O)."""

    lhs_perm: list[int]
    rhs_perm: list[int]
    out_perm: list[int]
    """The actual output axis of each canonical output axis."""
    windows: Windows
    kernel: tuple[int, ...]
    groups: int
    """feature_group_count or batch_group_count (at most one of them is above 1)."""
    batch_groups: bool
    n: int
    c: int
    o: int
    out_canonical: tuple[int, ...]
    out_shape: tuple[int, ...]


_CONV_NAMES = ("window_strides", "padding", "lhs_dilation", "rhs_dilation")


def _conv_plan(
    lhs: tuple[int, ...],
    rhs: tuple[int, ...],
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any,
    rhs_dilation: Any,
    dimension_numbers: Any,
    feature_group_count: Any,
    batch_group_count: Any,
) -> ConvPlan:
    """Check a convolution's operands and attributes (ValueError/TypeError naming what does
    not fit) and lay it out in the canonical layout."""
    rank = len(lhs)
    if rank < 2 or len(rhs) != rank:
        raise ValueError(
            f"conv takes lhs and rhs of the same rank, at least 2 (batch and feature axes); "
            f"got shapes {lhs} and {rhs}"
        )
    nd = rank - 2
    specs = _conv_specs(dimension_numbers, rank)
    ls, rs, os_ = specs
    for name, value in (
        ("feature_group_count", feature_group_count),
        ("batch_group_count", batch_group_count),
    ):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {show(value)}")
    g, b = feature_group_count, batch_group_count
    if g > 1 and b > 1:
        raise ValueError("at most one of feature_group_count and batch_group_count may be > 1")
    n, c, i, o = lhs[ls[0]], lhs[ls[1]], rhs[rs[1]], rhs[rs[0]]
    if c % g or c // g != i:
        raise ValueError(
            f"lhs has {c} features, which feature_group_count {show(g)} must divide into groups of "
            f"the rhs's {i} input features"
        )
    if o % g or o % b:
        raise ValueError(
            f"the rhs's {o} output features must divide into feature_group_count {show(g)} and "
            f"batch_group_count {show(b)} groups"
        )
    if n % b:
        raise ValueError(f"batch_group_count {show(b)} must divide lhs's batch of {n}")
    ones = [1] * nd
    w = windows(
        [lhs[a] for a in ls[2:]],
        list(range(1, nd + 1)),
        [rhs[a] for a in rs[2:]],
        ones if window_strides is None else window_strides,
        [[0, 0]] * nd if padding is None else padding,
        ones if lhs_dilation is None else lhs_dilation,
        ones if rhs_dilation is None else rhs_dilation,
        _CONV_NAMES,
    )
    kernel = math.prod(w.sizes)
    check_work("the padded input", n * math.prod(w.padded) * c, kernel, "the kernel")
    check_work("the input windows", n * math.prod(w.out) * kernel * c, kernel, "the kernel")
    out_canonical = (n // b, *w.out, o)
    out_perm = [os_[0], *os_[2:], os_[1]]
    out_shape = [0] * rank
    for k, a in enumerate(out_perm):
        out_shape[a] = out_canonical[k]
    return ConvPlan(
        lhs_perm=[ls[0], *ls[2:], ls[1]],
        rhs_perm=[*rs[2:], rs[1], rs[0]],
        out_perm=out_perm,
        windows=w,
        kernel=w.sizes,
        groups=max(g, b),
        batch_groups=b > 1,
        n=n,
        c=c,
        o=o,
        out_canonical=out_canonical,
        out_shape=tuple(out_shape),
    )


def _conv_specs(dimension_numbers: Any, rank: int) -> tuple[list[int], list[int], list[int]]:
    """lhs_spec, rhs_spec and out_spec (None: lax's default, NC.../OI.../NC...)."""
    if dimension_numbers is None:
        iota = list(range(rank))
        return iota, iota, iota
    keys = ("lhs_spec", "rhs_spec", "out_spec")
    if not isinstance(dimension_numbers, Mapping) or sorted(dimension_numbers) != sorted(keys):
        raise TypeError(
            "dimension_numbers must be a dict of lhs_spec, rhs_spec and out_spec (lists of "
            f"axes, as lax.ConvDimensionNumbers); got {show(dimension_numbers)}"
        )
    specs = []
    for key in keys:
        spec = ints(f"dimension_numbers {key}", dimension_numbers[key], rank)
        if sorted(spec) != list(range(rank)):
            raise ValueError(
                f"dimension_numbers {key} must order the axes 0..{rank - 1}; got {show(spec)}"
            )
        specs.append(spec)
    return specs[0], specs[1], specs[2]


def _patches(xp: Any, lhs_c: Any, p: ConvPlan) -> Any:
    """The input windows (N, *S', K, C): every output position's receptive field."""
    return gather(xp, prepare(xp, lhs_c, p.windows, 0), p.windows, axis=-2)


def _lhs_groups(xp: Any, patches: Any, p: ConvPlan) -> Any:
    """Patches as (groups, rows, K·C_group): the left operand of the grouped matmul."""
    kc = math.prod(p.kernel) * p.c
    if p.batch_groups:
        return xp.reshape(patches, (p.groups, -1, kc))
    rows = math.prod(patches.shape[:-2])
    split = xp.reshape(patches, (rows, math.prod(p.kernel), p.groups, p.c // p.groups))
    return xp.reshape(xp.transpose(split, (2, 0, 1, 3)), (p.groups, rows, kc // p.groups))


def _lhs_ungroup(xp: Any, a: Any, p: ConvPlan) -> Any:
    """The inverse of ``_lhs_groups``."""
    k = math.prod(p.kernel)
    if p.batch_groups:
        return xp.reshape(a, (p.n, *p.windows.out, k, p.c))
    split = xp.reshape(a, (p.groups, a.shape[1], k, p.c // p.groups))
    return xp.reshape(xp.transpose(split, (1, 2, 0, 3)), (p.n, *p.windows.out, k, p.c))


def _rhs_groups(xp: Any, rhs_c: Any, p: ConvPlan) -> Any:
    """The kernel as (groups, K·I, O_group): the right operand of the grouped matmul."""
    k, i, og = math.prod(p.kernel), rhs_c.shape[-2], p.o // p.groups
    if p.batch_groups:
        return xp.transpose(xp.reshape(rhs_c, (k * i, p.groups, og)), (1, 0, 2))
    split = xp.transpose(xp.reshape(rhs_c, (k, i, p.groups, og)), (2, 0, 1, 3))
    return xp.reshape(split, (p.groups, k * i, og))


def _rhs_ungroup(xp: Any, b: Any, p: ConvPlan, i: int) -> Any:
    """The inverse of ``_rhs_groups``."""
    k, og = math.prod(p.kernel), p.o // p.groups
    if p.batch_groups:
        return xp.reshape(xp.transpose(b, (1, 0, 2)), (*p.kernel, i, p.o))
    split = xp.transpose(xp.reshape(b, (p.groups, k, i, og)), (1, 2, 0, 3))
    return xp.reshape(split, (*p.kernel, i, p.o))


def _matmul(a: Any, b: Any) -> Any:
    """``a @ b`` of stacks of matrices; one group as a 2-D product (NumPy's stacked matmul
    does not call BLAS on transposed views: 6× slower on a conv's kernel gradient)."""
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else a @ b


def _inverse(perm: list[int]) -> list[int]:
    out = [0] * len(perm)
    for k, a in enumerate(perm):
        out[a] = k
    return out


def _transpose(xp: Any, x: Any, perm: list[int]) -> Any:
    return x if perm == sorted(perm) else xp.transpose(x, perm)


def _read_order(xp: Any, operand: Any, p: _gather.Plan) -> Any:
    """The operand with its indexed axes first and its whole axes last."""
    return _transpose(xp, operand, _gather.operand_order(p))


def _mask(xp: Any, p: _gather.Plan, inside: Any) -> Any:
    """Whether each window is in bounds, broadcastable to the indexed result."""
    return xp.reshape(inside, inside.shape + (1,) * len(p.whole))


class Conv(Op):
    """``lax.conv_general_dilated``: any number of spatial axes, any layout
    (``dimension_numbers``), strides, explicit padding (negative pads crop), lhs and rhs
    dilation and feature or batch groups. Computed as one matmul of the input windows
    (im2col) with the kernel; the input's cotangent adds each window's share back."""

    name = "conv"
    label = "∗"
    local_grads = ("g ∗ᵀ W (transposed conv)", "windows(x)ᵀ·g")
    vjp_reads = (0, 1)

    def forward(
        self,
        xp: Any,
        lhs: Any,
        rhs: Any,
        *,
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        lhs_dilation: list[int] | None = None,
        rhs_dilation: list[int] | None = None,
        dimension_numbers: Mapping[str, list[int]] | None = None,
        feature_group_count: int = 1,
        batch_group_count: int = 1,
    ) -> Any:
        p = _conv_plan(
            lhs.shape,
            rhs.shape,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
        )
        if math.prod(p.out_shape) == 0 or count(p.windows) == 0:
            return xp.zeros(p.out_shape, dtype=lhs.dtype)
        patches = _patches(xp, _transpose(xp, lhs, p.lhs_perm), p)
        rhs_c = _transpose(xp, rhs, p.rhs_perm)
        grouped = _matmul(_lhs_groups(xp, patches, p), _rhs_groups(xp, rhs_c, p))
        out_c = xp.reshape(xp.transpose(grouped, (1, 0, 2)), p.out_canonical)
        return _transpose(xp, out_c, _inverse(p.out_perm))

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        lhs: Any,
        rhs: Any,
        *,
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        lhs_dilation: list[int] | None = None,
        rhs_dilation: list[int] | None = None,
        dimension_numbers: Mapping[str, list[int]] | None = None,
        feature_group_count: int = 1,
        batch_group_count: int = 1,
        needs: tuple[bool, ...] = _BOTH,
    ) -> tuple[Any, Any]:
        p = _conv_plan(
            lhs.shape,
            rhs.shape,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
        )
        if math.prod(p.out_shape) == 0 or count(p.windows) == 0:
            return (
                xp.zeros(lhs.shape, dtype=g.dtype) if needs[0] else None,
                xp.zeros(rhs.shape, dtype=g.dtype) if needs[1] else None,
            )
        g_c = _transpose(xp, g, p.out_perm)
        gg = xp.transpose(
            xp.reshape(g_c, (-1, p.groups, p.o // p.groups)), (1, 0, 2)
        )  # (groups, rows, O_group)
        lhs_c = _transpose(xp, lhs, p.lhs_perm)
        rhs_c = _transpose(xp, rhs, p.rhs_perm)
        dlhs = drhs = None
        if needs[1]:
            a = _lhs_groups(xp, _patches(xp, lhs_c, p), p)
            db = _rhs_ungroup(xp, _matmul(xp.swapaxes(a, 1, 2), gg), p, rhs_c.shape[-2])
            drhs = _transpose(xp, db, _inverse(p.rhs_perm))
        if needs[0]:
            da = _lhs_ungroup(xp, _matmul(gg, xp.swapaxes(_rhs_groups(xp, rhs_c, p), 1, 2)), p)
            w = p.windows
            padded = (lhs_c.shape[0], *w.padded, lhs_c.shape[-1])
            dx = unprepare(xp, scatter(xp, da, padded, w, axis=-2), w)
            dlhs = _transpose(xp, dx, _inverse(p.lhs_perm))
        return dlhs, drhs

    def shape(
        self,
        lhs: tuple[int, ...],
        rhs: tuple[int, ...],
        *,
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        lhs_dilation: list[int] | None = None,
        rhs_dilation: list[int] | None = None,
        dimension_numbers: Mapping[str, list[int]] | None = None,
        feature_group_count: int = 1,
        batch_group_count: int = 1,
    ) -> tuple[int, ...]:
        return _conv_plan(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
        ).out_shape

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``∗``, with the strides when they skip and the groups when there are any."""
        label = self.label
        strides = attrs.get("window_strides")
        if isinstance(strides, list | tuple) and any(s != 1 for s in strides):
            label += f" stride {'×'.join(map(str, strides))}"
        groups = attrs.get("feature_group_count", 1)
        if is_int(groups) and groups > 1:
            label += f", {groups} groups"
        return label, self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        nhwc = {"lhs_spec": [0, 3, 1, 2], "rhs_spec": [3, 2, 0, 1], "out_spec": [0, 3, 1, 2]}
        nchw = {"lhs_spec": [0, 1, 2, 3], "rhs_spec": [0, 1, 2, 3], "out_spec": [0, 1, 2, 3]}
        n = rng.standard_normal
        return [
            # NHWC / HWIO, stride 2, SAME padding as JAX resolves it for 5×5 with a 3×3 kernel
            (
                (n((2, 5, 5, 2)), n((3, 3, 2, 3))),
                {"window_strides": [2, 2], "padding": [[1, 1], [1, 1]], "dimension_numbers": nhwc},
            ),
            # NCHW / OIHW, VALID, rhs dilation
            (
                (n((1, 2, 5, 4)), n((3, 2, 2, 2))),
                {
                    "window_strides": [1, 1],
                    "padding": [[0, 0], [0, 0]],
                    "rhs_dilation": [2, 1],
                    "dimension_numbers": nchw,
                },
            ),
            # 1-D (NWC / WIO), lhs dilation (a transposed conv), asymmetric and negative pads
            (
                (n((2, 4, 2)), n((3, 2, 2))),
                {
                    "window_strides": [1],
                    "padding": [[2, -1]],
                    "lhs_dilation": [2],
                    "dimension_numbers": {
                        "lhs_spec": [0, 2, 1],
                        "rhs_spec": [2, 1, 0],
                        "out_spec": [0, 2, 1],
                    },
                },
            ),
            # feature groups (depthwise-like: 4 features in 2 groups), default layout
            (
                (n((2, 4, 4, 3)), n((4, 2, 2, 2))),
                {"window_strides": [1, 2], "padding": [[0, 1], [1, 0]], "feature_group_count": 2},
            ),
            # batch groups (as in the kernel gradient of a grouped conv)
            (
                (n((4, 2, 3, 3)), n((4, 2, 2, 2))),
                {"window_strides": [1, 1], "padding": [[0, 0], [0, 0]], "batch_group_count": 2},
            ),
        ]


class _ReduceWindow(Op):
    """The window reductions' shared attributes, shape rule and description."""

    symbol: ClassVar[str] = ""

    def shape(
        self,
        x: tuple[int, ...],
        *,
        window_dimensions: list[int],
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        base_dilation: list[int] | None = None,
        window_dilation: list[int] | None = None,
    ) -> tuple[int, ...]:
        return _pool(
            x, window_dimensions, window_strides, padding, base_dilation, window_dilation
        ).out

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The symbol and the window's size along its axes of more than one element."""
        dims = attrs.get("window_dimensions")
        if isinstance(dims, list | tuple) and all(is_int(d) for d in dims):
            big = [str(d) for d in dims if d != 1]
            return f"{self.symbol} {'×'.join(big) or '1'}", self.local_grads
        return self.label, self.local_grads


def _pool(
    x: tuple[int, ...],
    window_dimensions: Any,
    window_strides: Any,
    padding: Any,
    base_dilation: Any,
    window_dilation: Any,
) -> Windows:
    """The windows of a reduce_window over every axis of ``x``, checked."""
    rank = len(x)
    dims = ints("window_dimensions", window_dimensions, rank, low=0)
    ones = [1] * rank
    w = windows(
        x,
        list(range(rank)),
        dims,
        ones if window_strides is None else window_strides,
        [[0, 0]] * rank if padding is None else padding,
        ones if base_dilation is None else base_dilation,
        ones if window_dilation is None else window_dilation,
    )
    check_work("the padded input", math.prod(w.padded), count(w), "window_dimensions")
    check_work("the windows", math.prod(w.out) * count(w), count(w), "window_dimensions")
    return w


def _pool_examples(rng: Any, distinct: bool) -> list[Example]:
    """Pooling forms: 2×2/2 over NHWC, 3×3/2 SAME over NCHW, dilations, a 1-D window, 5×5.
    Values are distinct (a permutation of spread-out values) so no window has a tie."""

    def values(shape: tuple[int, ...]) -> Any:
        size = math.prod(shape)
        if not distinct:
            return rng.standard_normal(shape)
        return (rng.permutation(size) * 0.37 + rng.uniform(0, 0.1, size)).reshape(shape)

    return [
        (
            (values((2, 4, 4, 3)),),
            {"window_dimensions": [1, 2, 2, 1], "window_strides": [1, 2, 2, 1]},
        ),
        (
            (values((1, 2, 5, 5)),),
            {
                "window_dimensions": [1, 1, 3, 3],
                "window_strides": [1, 1, 2, 2],
                "padding": [[0, 0], [0, 0], [1, 1], [1, 1]],
            },
        ),
        (
            (values((2, 5, 4)),),
            {
                "window_dimensions": [1, 2, 2],
                "window_strides": [1, 1, 1],
                "padding": [[0, 0], [1, 0], [0, -1]],
                "base_dilation": [1, 1, 2],
                "window_dilation": [1, 2, 1],
            },
        ),
        ((values((6,)),), {"window_dimensions": [3], "window_strides": [2]}),
        (  # a window of more than SMALL elements: one gather and one scatter on JAX
            (values((1, 6, 7, 2)),),
            {
                "window_dimensions": [1, 5, 5, 1],
                "window_strides": [1, 2, 1, 1],
                "padding": [[0, 0], [2, 2], [2, 2], [0, 0]],
            },
        ),
    ]


def _select_max(xp: Any, stacked: Any) -> Any:
    """Which element of each window (along axis 0 of ``stacked``, in row-major window order)
    gets the window's cotangent, as XLA's select_and_scatter with ``>=`` picks it: a scan
    keeping the chosen element while it is >= the next (the vjp runs that scan itself on
    NumPy and on JAX for windows of at most SMALL elements). Without NaN that is the first
    maximal element; a NaN is always taken and always given up for the next element, so
    the choice is the first maximum after the window's last NaN, or that NaN if it is last."""
    k = stacked.shape[0]
    at = xp.reshape(xp.arange(k), (k,) + (1,) * (stacked.ndim - 1))
    last_nan = xp.max(xp.where(xp.isnan(stacked), at, -1), axis=0)
    after = at > last_nan  # the elements the scan can still choose
    best = xp.max(xp.where(after, stacked, -_INF), axis=0)
    first = xp.min(xp.where(after & (stacked == best), at, k), axis=0)
    return at == xp.where(last_nan == k - 1, k - 1, first)


class ReduceWindowMax(_ReduceWindow):
    """``lax.reduce_window`` with ``max`` (max pooling): padding and holes are −∞. Its
    cotangent goes, per window, to the first maximal element in row-major window order
    (the padding included), as ``jax.vjp`` (select_and_scatter_add) puts it; where the
    window holds NaN, to the element XLA's scan picks (see ``_select_max``)."""

    name = "reduce_window_max"
    label = "max window"
    symbol = "max"
    vjp_reads = (0,)
    local_grads = ("1 at each window's max, else 0",)

    def forward(
        self,
        xp: Any,
        x: Any,
        *,
        window_dimensions: list[int],
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        base_dilation: list[int] | None = None,
        window_dilation: list[int] | None = None,
    ) -> Any:
        w = _pool(
            x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        if count(w) == 0:
            return xp.full(w.out, -_INF, dtype=x.dtype)
        return fold(xp, prepare(xp, x, w, -_INF), w, xp.maximum, xp.max)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        x: Any,
        *,
        window_dimensions: list[int],
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        base_dilation: list[int] | None = None,
        window_dilation: list[int] | None = None,
    ) -> tuple[Any]:
        w = _pool(
            x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        if count(w) == 0:
            return (xp.zeros(x.shape, dtype=g.dtype),)
        padded = prepare(xp, x, w, -_INF)
        if hasattr(padded, "at") and count(w) > SMALL:  # one gather and one scatter
            chosen = _select_max(xp, gather(xp, padded, w))
            return (unprepare(xp, scatter(xp, xp.where(chosen, g, 0), w.padded, w), w),)
        # XLA's scan itself over strided views (which XLA fuses on JAX; on NumPy it needs
        # memory of one output's size)
        parts = views(padded, w)
        best, pick = parts[0], xp.zeros(g.shape, dtype=int)
        for k, part in enumerate(parts[1:], 1):
            switch = ~(best >= part)
            best, pick = xp.where(switch, part, best), xp.where(switch, k, pick)
        parts = [xp.where(pick == k, g, 0) for k in range(len(parts))]
        return (unprepare(xp, scatter(xp, parts, w.padded, w), w),)

    def examples(self, rng: Any) -> list[Example]:
        return _pool_examples(rng, distinct=True)


class ReduceWindowSum(_ReduceWindow):
    """``lax.reduce_window`` with ``add`` (sum pooling; average pooling divides it by the
    window's size): padding and holes are 0."""

    name = "reduce_window_sum"
    label = "Σ window"
    symbol = "Σ"
    local_grads = ("1 for each window holding the element",)
    vjp_reads = (0,)

    def forward(
        self,
        xp: Any,
        x: Any,
        *,
        window_dimensions: list[int],
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        base_dilation: list[int] | None = None,
        window_dilation: list[int] | None = None,
    ) -> Any:
        w = _pool(
            x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        if count(w) == 0:
            return xp.zeros(w.out, dtype=x.dtype)
        return fold(xp, prepare(xp, x, w, 0), w, operator.add, xp.sum)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        x: Any,
        *,
        window_dimensions: list[int],
        window_strides: list[int] | None = None,
        padding: list[list[int]] | None = None,
        base_dilation: list[int] | None = None,
        window_dilation: list[int] | None = None,
    ) -> tuple[Any]:
        w = _pool(
            x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        parts = xp.broadcast_to(g, (count(w), *g.shape))
        return (unprepare(xp, scatter(xp, parts, w.padded, w), w),)

    def examples(self, rng: Any) -> list[Example]:
        return _pool_examples(rng, distinct=False)
