"""from_jax: a JAX function becomes a graphbp network, with its parameters and inputs.

Imports jax only when called, so ``import graphbp`` does not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from graphbp.errors import InputError, show
from graphbp.graph import Network, name_key, text_problem

Arrays = dict[str, np.ndarray[Any, Any]]


def from_jax(
    fn: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0
) -> tuple[Network, Arrays, Arrays]:
    """Trace ``fn(*args)`` once with JAX and return it as a graphbp network.

    ``fn`` must return its loss, one float scalar. The arguments in ``argnums`` (as in
    ``jax.grad``) are the parameters, the others the inputs; every array leaf of them becomes
    a ``param`` or ``input`` node. Each equation becomes a built-in op node (``jit`` and
    ``checkpoint`` inlined, dead code dropped, equations of constants folded), or, without
    one, an ``opaque`` node that runs it with JAX (JAX backend only; such a network cannot
    be saved).

    Custom derivatives: JAX's own ``custom_jvp`` functions whose rule differs from their
    body's derivative become one op with that rule (``jax.nn.relu`` and ``relu6``: slope 0
    at the kinks; ``logaddexp``/``logaddexp2``, so ``jax.nn.softplus`` and ``log_sigmoid``:
    ½ each at a tie), so gradients equal ``jax.grad``'s there too; JAX's other ones
    (softmax's) are inlined, their rule being their body's derivative. A ``custom_jvp`` or
    ``custom_vjp`` function that is not JAX's own (a user's straight-through estimator,
    clipped or numerically safe gradient) is one opaque node, so that its own rule is the
    one used, as ``jax.grad`` uses it.

    Naming: a leaf of a parameter argument is named by its pytree path, keys and indices
    joined by "." without the argument's name (``W1``, ``layers.0.w``); a parameter argument
    that is a bare array, and every leaf of another argument, by ``fn``'s parameter name
    (``x``; ``batch.x`` for a pytree). Where ``fn``'s signature gives no name for an argument
    (``*args``, a builtin, a partial binding it by keyword), it is ``arg0``, ``arg1``, ...
    Leaves whose names would clash are prefixed with their argument's name. The loss node is
    ``loss``; other nodes are named by op (or primitive) and a counter (``add_3``), constants
    ``const_k``. A node's ``scope`` is the ``jax.named_scope`` names and the user's own
    ``jax.jit`` function names it sits in, joined by "/"; its ``source`` is the user's line
    that made it (``model.py:14``). A constant may be NaN or infinite (a causal mask's
    ``-jnp.inf``): it stays a const node.

    The network computes in the one float dtype it is compiled with (a cast inside ``fn``,
    such as ``.astype(jnp.float32)`` in a float64 function, is ignored). A ``bfloat16`` leaf
    (NumPy has no such dtype) is converted to float32 before tracing, and returned as float32;
    other float formats NumPy lacks (float8) are refused. Integers are computed as
    integer-valued floats, so what could differ from JAX is refused: arithmetic on integers of
    8 or 16 bits (which wraps in JAX), a narrowing conversion to such an integer, an integer
    input or constant beyond 2**24 (2**53 when traced in 64-bit mode), and any complex value
    (graphbp values are real). int32 arithmetic that overflows is not detected.

    Args:
        fn: the loss function, traced with ``jax.make_jaxpr`` (in 64-bit mode if any float
            argument is float64).
        *args: example arguments: arrays or pytrees (dicts, lists, tuples, ...) of arrays.
        argnums: which arguments are parameters: an int or a tuple of ints.

    Returns:
        ``(network, params, inputs)``: the network, and NumPy copies of the argument leaves
        by node name (their dtypes kept: integer ids stay integers).

    Raises:
        InputError: bad ``argnums``, a leaf that is not an array of numbers, a parameter
            that is not float, a name that breaks the node-name rule, ``fn`` not returning
            one float scalar, or an equation refused as above (complex, wrapping integers).
    """
    import jax

    nums = _argnums(argnums, len(args))
    names = _arg_names(fn, len(args))
    args = jax.tree_util.tree_map(_widened, args)
    leaves = _leaves(args, nums, names)
    x64 = any(_dtype_kind(getattr(v, "dtype", None)) == "f8" for _, _, v in leaves)
    context = jax.enable_x64(True) if x64 else nullcontext()
    with context:
        return _convert(fn, args, nums, leaves, names)


def _convert(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    nums: tuple[int, ...],
    leaves: list[tuple[str, int, Any]],
    names: list[str],
) -> tuple[Network, Arrays, Arrays]:
    import jax

    from graphbp.jax_convert import Converter, check_exact_ints, check_loss
    from graphbp.jax_rules import Val

    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    check_loss(out_shape, _fn_name(fn))
    jaxpr = closed.jaxpr
    conv = Converter({name_key(n) for n, _, _ in leaves} | {"loss"})
    params: Arrays = {}
    inputs: Arrays = {}
    vals = []
    for (name, arg, value), var in zip(leaves, jaxpr.invars, strict=True):
        array = np.array(value)
        shape = tuple(int(d) for d in var.aval.shape)
        kind = "param" if arg in nums else "input"
        if kind == "param" and not np.issubdtype(array.dtype, np.floating):
            raise InputError(
                f"parameter {name!r} (of argument {names[arg]!r}) is an array of dtype "
                f"{array.dtype}; parameters are differentiated, so they are float arrays "
                "(as jax.grad requires): pass it in an argument not in argnums"
            )
        if array.dtype.kind in "iu":
            check_exact_ints(array, f"input {name!r}")
        conv.leaf(name, kind, shape)
        (params if kind == "param" else inputs)[name] = array
        vals.append(Val(shape, np.dtype(var.aval.dtype), node=name))
    if len(jaxpr.eqns) == 1:
        conv.whole = jaxpr.eqns[0]
    consts = [conv.closed_over(c) for c in closed.consts]
    (loss,) = conv.run(jaxpr, consts, vals, [True])
    if loss is None:  # pragma: no cover - the one output is always needed
        raise InputError(f"{_fn_name(fn)} returned no value")
    g = conv.graph(loss)
    return Network(g, loss="loss"), params, inputs


def _argnums(argnums: Any, count: int) -> tuple[int, ...]:
    """``argnums`` as a tuple of argument positions (negative ones counted from the end)."""
    given = argnums if isinstance(argnums, tuple | list) else (argnums,)
    fix = f"give an int or a tuple of ints from 0 to {count - 1} (as jax.grad's argnums)"
    if not given:
        raise InputError(f"argnums={show(argnums)} names no argument; {fix}")
    out = []
    for num in given:
        if isinstance(num, bool) or not isinstance(num, int | np.integer):
            raise InputError(f"argnums={show(argnums)} holds {show(num)}, not an int; {fix}")
        if not -count <= num < count:
            raise InputError(
                f"argnums={show(argnums)}: {num} is out of range for {count} argument(s); {fix}"
            )
        pos = int(num) % count
        if pos in out:
            raise InputError(f"argnums={show(argnums)} names argument {pos} twice; {fix}")
        out.append(pos)
    return tuple(out)


def _arg_names(fn: Callable[..., Any], count: int) -> list[str]:
    """The name of each positional argument in ``fn``'s signature, else ``arg{i}``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = []
    for i in range(count):
        ok = i < len(params) and params[i].kind in kinds and text_problem(params[i].name) is None
        names.append(params[i].name if ok else f"arg{i}")
    return names


def _fn_name(fn: Callable[..., Any]) -> str:
    return f"function {getattr(fn, '__qualname__', None) or show(fn)}"


def _key_text(key: Any) -> str:
    """One key of a pytree path as text: a dict key, an index or an attribute name."""
    import jax

    tu = jax.tree_util
    if isinstance(key, tu.DictKey):
        return str(key.key)
    if isinstance(key, tu.SequenceKey):
        return str(key.idx)
    if isinstance(key, tu.GetAttrKey):
        return str(key.name)
    if isinstance(key, tu.FlattenedIndexKey):
        return str(key.key)
    return str(key).strip(".[]'\"")


def _leaves(
    args: tuple[Any, ...], nums: tuple[int, ...], names: list[str]
) -> list[tuple[str, int, Any]]:
    """Every array leaf of the arguments, in JAX's flattening order: (node name, argument
    position, value), named by the rule of ``from_jax``."""
    import jax

    found: list[tuple[list[str], int, Any]] = []
    for arg, value in enumerate(args):
        flat, _ = jax.tree_util.tree_flatten_with_path(value)
        for path, leaf in flat:
            keys = [_key_text(k) for k in path]
            _check_leaf(leaf, names[arg], keys)
            found.append((keys, arg, leaf))
    base = []
    for keys, arg, _ in found:
        if arg in nums and keys:
            base.append(".".join(keys))
        else:
            base.append(".".join([names[arg], *keys]))
    named = _unclash(base, [names[a] for _, a, _ in found], [bool(k) for k, _, _ in found])
    for name, (keys, arg, _) in zip(named, found, strict=True):
        problem = text_problem(name)
        if problem is not None:
            where = "".join(f"[{show(key)}]" for key in keys)
            raise InputError(
                f"the leaf {names[arg]}{where} would be node {show(name)}, {problem}; a node name "
                "has 1 to 1000 characters and no control or format characters: rename its key"
            )
    return [(name, arg, leaf) for name, (_, arg, leaf) in zip(named, found, strict=True)]


def _unclash(base: list[str], args: list[str], nested: list[bool]) -> list[str]:
    """Names made distinct (as ``name_key`` reads them): a clashing leaf inside an argument
    is prefixed with its argument's name; a suffix ``_2``, ``_3`` settles what remains."""
    counts: dict[str, int] = {}
    for name in base:
        counts[name_key(name)] = counts.get(name_key(name), 0) + 1
    counts["loss"] = counts.get("loss", 0) + 1  # the loss node's name
    names = [
        f"{arg}.{name}" if counts[name_key(name)] > 1 and deep and name != arg else name
        for name, arg, deep in zip(base, args, nested, strict=True)
    ]
    seen: set[Hashable] = {"loss"}
    out = []
    for name in names:
        unique, k = name, 1
        while name_key(unique) in seen:
            k += 1
            unique = f"{name}_{k}"
        seen.add(name_key(unique))
        out.append(unique)
    return out


def _dtype_kind(dtype: Any) -> str:
    """A dtype's kind and size (``f8``, ``i4``), or "" for none or one NumPy does not know
    (a JAX PRNG key)."""
    try:
        d = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        return ""
    return "" if d is None else f"{d.kind}{d.itemsize}"


def _widened(leaf: Any) -> Any:
    """A bfloat16 array leaf as a float32 NumPy array; any other leaf as it is."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and str(dtype) == "bfloat16":
        return np.asarray(leaf, dtype=np.float32)
    return leaf


def _check_leaf(leaf: Any, arg: str, keys: list[str]) -> None:
    import jax.numpy as jnp

    dtype = getattr(leaf, "dtype", None)
    if dtype is None and isinstance(leaf, bool | int | float):
        return
    if _dtype_kind(dtype)[:1] not in ("b", "i", "u", "f"):
        path = "".join(f"[{show(k)}]" for k in keys)
        if dtype is not None and _is_jax_float(jnp, dtype):
            raise InputError(
                f"argument leaf {arg}{path} is an array of dtype {dtype}, a float format "
                "from_jax does not support (float16, bfloat16, float32 and float64 are); cast "
                "it to float32 first (x.astype(jnp.float32))"
            )
        what = f"an array of dtype {dtype}" if dtype is not None else show(leaf)
        raise InputError(
            f"argument leaf {arg}{path} is {what}; from_jax takes arrays of numbers (bool, "
            "int or float) in dicts, lists, tuples or other pytrees"
        )


def _is_jax_float(jnp: Any, dtype: Any) -> bool:
    try:
        return bool(jnp.issubdtype(dtype, jnp.floating))
    except TypeError:
        return False
