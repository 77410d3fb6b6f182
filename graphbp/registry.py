"""Where ops and backends come from: entry points, loaded lazily, plus register_op()."""

from __future__ import annotations

import difflib
import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from graphbp.errors import BackendNotInstalledError, GraphError, PluginError
from graphbp.op import Op, validate_op

if TYPE_CHECKING:
    from graphbp.backend import Backend

OPS_GROUP = "graphbp.ops"
BACKENDS_GROUP = "graphbp.backends"

_EXTRAS = {"jax": "pip install 'graphbp[jax]'"}
"""Backends graphbp knows of that ship behind an extra, and how to install them."""

_ops: dict[str, Op] = {}
_op_providers: dict[str, str] = {}
_backends: dict[str, Backend] = {}


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    """Entry points of ``group`` by name, listed without importing anything."""
    return {ep.name: ep for ep in entry_points(group=group)}


def _provider(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.module


def register_op(op: Op | type[Op], *, replace: bool = False) -> Op:
    """Register an op plugin so graphs can name it in their ``op`` attribute.

    Args:
        op: an ``Op`` subclass or instance.
        replace: allow replacing an op already registered under the same name.

    Returns:
        The registered op instance.

    Raises:
        PluginError: the op breaks the plugin contract, or its name is taken.
    """
    instance = op() if isinstance(op, type) and issubclass(op, Op) else op
    if not isinstance(instance, Op):
        raise PluginError(f"{op!r} is not a graphbp.Op; subclass gb.Op and define forward, vjp")
    validate_op(instance)
    existing = _ops.get(instance.name)
    if existing is not None and type(existing) is not type(instance) and not replace:
        raise PluginError(
            f"op name {instance.name!r} is already registered by {existing!r}; "
            "pick another name, or pass replace=True to register_op"
        )
    _ops[instance.name] = instance
    _op_providers[instance.name] = type(instance).__module__
    return instance


def unregister_op(name: str) -> None:
    """Forget an op registered with register_op (entry-point ops come back on next use)."""
    _ops.pop(name, None)
    _op_providers.pop(name, None)


def get_op(name: str) -> Op:
    """The op registered under ``name``, loading its entry point on first use.

    Raises:
        GraphError: no op has that name (the message lists close names).
        PluginError: the entry point exists but its plugin is broken.
    """
    if name in _ops:
        return _ops[name]
    ep = _entry_points(OPS_GROUP).get(name)
    if ep is None:
        close = difflib.get_close_matches(name, ops(), n=3)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see `graphbp ops`"
        raise GraphError(f"unknown op {name!r}; {hint}, or register it with gb.register_op")
    try:
        loaded = ep.load()
        op = register_op(loaded)
    except PluginError as exc:
        raise PluginError(f"op plugin {ep.value!r} ({_provider(ep)}): {exc}") from exc
    except Exception as exc:
        raise PluginError(
            f"op plugin {name!r} = {ep.value!r} from package {_provider(ep)} failed to load: "
            f"{type(exc).__name__}: {exc}; reinstall or fix that package"
        ) from exc
    if op.name != name:
        unregister_op(op.name)
        raise PluginError(
            f"entry point {name!r} of package {_provider(ep)} loads an op named {op.name!r}; "
            "the entry point name must equal the op's name"
        )
    _op_providers[name] = _provider(ep)
    return op


def ops() -> list[str]:
    """Names of every op available: registered ones and installed entry points."""
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


def backends() -> list[str]:
    """Names of the installed backends (listed without importing them)."""
    return sorted(set(_backends) | set(_entry_points(BACKENDS_GROUP)))


def backend_provider(name: str) -> str:
    """The package that provides backend ``name``."""
    ep = _entry_points(BACKENDS_GROUP).get(name)
    return _provider(ep) if ep is not None else type(get_backend(name)).__module__


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
