"""Where ops and backends come from: entry points, loaded lazily, plus register_op()."""

from __future__ import annotations

import difflib
import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from graphbp.errors import (
    BackendNotInstalledError,
    GraphbpError,
    GraphError,
    PluginError,
    show,
)
from graphbp.op import LEAVES, Arrays, Op, validate_op

if TYPE_CHECKING:
    from graphbp.backend import Backend

OPS_GROUP = "graphbp.ops"
BACKENDS_GROUP = "graphbp.backends"

_EXTRAS = {"jax": "pip install 'graphbp[jax]'"}
"""Backends graphbp knows of that ship behind an extra, and how to install them."""

_ops: dict[str, Op] = {}
_op_providers: dict[str, str] = {}
_backends: dict[str, Backend] = {}
_OWN = "graphbp"
"""graphbp's own distribution: its entry points win a clash with another package's."""


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    """The entry point used for each name of ``group``, listed without importing anything.

    Where several packages offer the same name, graphbp's own wins, else the first package
    by name, the same one every time, and a warning names them all. Op entry points named
    like a leaf kind (input, param, const) are ignored with a warning.
    """
    offers: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        offers.setdefault(ep.name, []).append(ep)
    chosen = {}
    for name, eps in sorted(offers.items()):
        if group == OPS_GROUP and name in LEAVES:
            warnings.warn(
                f"package {_provider(eps[0])} offers an op named {name!r}, a leaf kind of the "
                "graph schema that belongs to graphbp's core; it is ignored",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        eps.sort(key=lambda ep: (_provider(ep) != _OWN, _provider(ep), ep.value))
        if len(eps) > 1:
            warnings.warn(
                f"{group} entry point {name!r} is offered by "
                f"{', '.join(f'{_provider(ep)} ({ep.value})' for ep in eps)}; "
                f"{_provider(eps[0])}'s is used (uninstall the others to silence this)",
                RuntimeWarning,
                stacklevel=2,
            )
        chosen[name] = eps[0]
    return chosen


def _provider(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.module


def _instance(op: Op | type[Op]) -> Op:
    """An op instance from a class or instance, checked against the plugin contract."""
    instance = op() if isinstance(op, type) and issubclass(op, Op) else op
    if not isinstance(instance, Op):
        raise PluginError(
            f"{show(op)} is not a graphbp.Op; subclass gb.Op and define name, forward and "
            "local_grads (vjp, label and the rest are optional)"
        )
    validate_op(instance)
    return instance


def as_op(op: Op | type[Op] | str) -> Op:
    """The op meant by a registered name, an ``Op`` instance or an ``Op`` subclass
    (instantiated, as ``register_op`` does), checked against the plugin contract.

    Raises:
        GraphError: no op has that name.
        PluginError: the op breaks the plugin contract, or is not an Op at all.
    """
    return get_op(op) if isinstance(op, str) else _instance(op)


def register_op(op: Op | type[Op], *, replace: bool = False) -> Op:
    """Register an op plugin so graphs can name it in their ``op`` attribute.

    A name already taken — by an op registered or loaded before, or by an installed entry
    point, loaded or not — is refused unless ``replace=True``, whatever the import order.
    Registering the very class that already holds the name changes nothing.

    Args:
        op: an ``Op`` subclass or instance.
        replace: replace the op that holds the name (a built-in included).

    Returns:
        The registered op instance.

    Raises:
        PluginError: the op breaks the plugin contract, or its name is taken.
    """
    instance = _instance(op)
    name, cls = instance.name, type(instance)
    holder = _ops.get(name)
    ep = _entry_points(OPS_GROUP).get(name)
    if holder is not None and type(holder) is cls:
        return holder
    if holder is None and ep is not None and ep.value == f"{cls.__module__}:{cls.__qualname__}":
        return get_op(name)  # the entry point's own class: load it as usual
    if holder is not None:
        taken: str | None = f"{holder!r} (from {_op_providers[name]})"
    elif ep is not None:
        taken = f"the entry point {ep.value!r} of package {_provider(ep)}"
    else:
        taken = None
    if taken is not None and not replace:
        raise PluginError(
            f"op name {name!r} is already registered by {taken}; pick another name, or pass "
            "replace=True to register_op to use yours instead"
        )
    _ops[name] = instance
    _op_providers[name] = cls.__module__
    return instance


def unregister_op(name: str) -> None:
    """Forget an op registered with register_op (entry-point ops come back on next use)."""
    _ops.pop(name, None)
    _op_providers.pop(name, None)


def get_op(name: str) -> Op:
    """The op registered under ``name``, loading its entry point on first use.

    Raises:
        GraphError: no op has that name (the message lists close names), or it is a leaf.
        PluginError: the entry point exists but its plugin is broken.
    """
    if name in _ops:
        return _ops[name]
    if name in LEAVES:
        raise GraphError(
            f"{name!r} is a leaf kind of the graph schema, not an op; leaves "
            f"({', '.join(LEAVES)}) are values entering the graph and have no plugin"
        )
    ep = _entry_points(OPS_GROUP).get(name)
    if ep is None:
        raise GraphError(f"unknown op {show(name)}; {_unknown_hint(name)}")
    try:
        op = _instance(ep.load())
    except PluginError as exc:
        raise PluginError(f"op plugin {ep.value!r} ({_provider(ep)}): {exc}") from exc
    except Exception as exc:
        raise PluginError(
            f"op plugin {name!r} = {ep.value!r} from package {_provider(ep)} failed to load: "
            f"{type(exc).__name__}: {exc}; reinstall or fix that package"
        ) from exc
    if op.name != name:
        raise PluginError(
            f"entry point {name!r} of package {_provider(ep)} loads an op named {op.name!r}; "
            "the entry point name must equal the op's name"
        )
    _ops[name] = op
    _op_providers[name] = _provider(ep)
    return op


def _unknown_hint(name: str) -> str:
    """What to do about an unknown op name: the close names of ops that load, else all of
    them (an entry point whose plugin is broken is no op to suggest)."""
    usable = []
    for known in ops():
        try:
            get_op(known)
        except GraphbpError:
            continue
        usable.append(known)
    close = difflib.get_close_matches(name, [*LEAVES, *usable], n=3)
    if close:
        return f"did you mean {', '.join(map(repr, close))}? Else register it with gb.register_op"
    return (
        f"the ops are {', '.join(usable)}; install a package that provides it, or register it "
        "with gb.register_op"
    )


def ops() -> list[str]:
    """Names of every op available: registered ones and installed entry points (the leaf
    kinds input, param and const are not ops)."""
    return sorted(set(_ops) | set(_entry_points(OPS_GROUP)))


def op_provider(name: str) -> str:
    """The package (or module, for register_op) that provides op ``name``."""
    get_op(name)
    return _op_providers[name]


def load_all_ops() -> dict[str, Op]:
    """Load every op; a broken plugin is skipped with a warning that names it."""
    loaded: dict[str, Op] = {}
    for name in ops():
        try:
            loaded[name] = get_op(name)
        except PluginError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
    return loaded


_arrays: dict[tuple[Any, Any], Arrays] = {}


def arrays_for(xp: Any, dtype: Any) -> Arrays:
    """What a plugin's results must be where ``xp`` computes in ``dtype``: the ``Arrays`` of the
    loaded backend whose namespace is ``xp``. For an op that calls another op through
    call_forward and call_vjp, as ``dense`` calls its activation.

    Raises:
        PluginError: no loaded backend computes with ``xp``.
    """
    arrays = _arrays.get((xp, dtype))
    if arrays is None:
        backend = next((b for b in _backends.values() if b.xp is xp), None)
        if backend is None:
            raise PluginError(f"no loaded graphbp backend computes with {xp!r}")
        arrays = _arrays[xp, dtype] = backend.arrays(str(dtype))
    return arrays


def backends() -> list[str]:
    """Names of the installed backends (listed without importing them)."""
    return sorted(set(_backends) | set(_entry_points(BACKENDS_GROUP)))


def backend_provider(name: str) -> str:
    """The package that provides backend ``name``."""
    ep = _entry_points(BACKENDS_GROUP).get(name)
    return _provider(ep) if ep is not None else type(get_backend(name)).__module__


def default_backend() -> str | None:
    """The backend ``$GRAPHBP_BACKEND`` names (None: unset or empty), the default wherever
    no backend is asked for."""
    import os

    return os.environ.get("GRAPHBP_BACKEND") or None


def get_backend(name: str) -> Backend:
    """The backend called ``name``, imported on first use.

    Raises:
        BackendNotInstalledError: it is not installed (the message says how to install it).
        PluginError: it is installed but fails to load.
    """
    if name in _backends:
        return _backends[name]
    ep = _entry_points(BACKENDS_GROUP).get(name)
    if ep is None:
        how = _EXTRAS.get(name, f"install a package that provides the {name!r} backend")
        raise BackendNotInstalledError(
            f"backend {name!r} is not installed ({how}); installed: {', '.join(backends())}"
        )
    try:
        backend_cls: type[Backend] = ep.load()
        backend = backend_cls()
    except ImportError as exc:
        how = _EXTRAS.get(name, f"reinstall {_provider(ep)}")
        raise BackendNotInstalledError(
            f"backend {name!r} cannot import its dependencies ({exc}); {how}"
        ) from exc
    except Exception as exc:
        raise PluginError(
            f"backend plugin {name!r} = {ep.value!r} from package {_provider(ep)} failed to "
            f"load: {type(exc).__name__}: {exc}"
        ) from exc
    _backends[name] = backend
    return backend
