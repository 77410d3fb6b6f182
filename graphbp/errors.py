"""The error hierarchy: every message names the node, the op and the fix."""

from __future__ import annotations

from typing import Any


class GraphbpError(Exception):
    """Base class of every error graphbp raises on purpose."""


class GraphError(GraphbpError):
    """The network graph breaks the schema (cycle, unknown op, arity, shapes, loss)."""


class GraphFileError(GraphbpError):
    """A graph or data file cannot be read: missing, malformed or inconsistent."""


class PluginError(GraphbpError):
    """An op or backend plugin is broken: bad definition, or a vjp that breaks the contract.

    When a plugin's forward or vjp raised, ``method`` says which (``"forward"``/``"vjp"``)
    and ``__cause__`` is what it raised; otherwise ``method`` is None.
    """

    method: str | None = None


class BackendNotInstalledError(GraphbpError):
    """A backend was asked for that is not installed."""


class InputError(GraphbpError):
    """A run-time input or parameter is missing, or has the wrong shape or dtype."""


class NonFiniteError(GraphbpError):
    """A value or gradient became NaN or infinite (check_finite), or training diverged."""


class TransformError(GraphbpError, TypeError):
    """A JAX transformation the program's derivative rules do not support (forward mode:
    ``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``); a TypeError, as JAX's own refusal is."""


class GradientCheckError(GraphbpError, AssertionError):
    """An analytic gradient disagrees with finite differences or another oracle."""


class GraphvizError(GraphbpError):
    """Graphviz's dot is missing or failed; ``source`` is the DOT source it could not lay out."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:  # pickles with its source (args holds the message)
        return type(self), (str(self), self.source)
