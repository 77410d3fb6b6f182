"""The error hierarchy (every message names the node, the op and the fix), and how messages
show a caller's values."""

from __future__ import annotations

from typing import Any


class GraphbpError(Exception):
    """Base class of every error graphbp raises on purpose."""


class GraphError(GraphbpError):
    """The network graph breaks the schema (cycle, unknown op, arity, shapes, loss)."""


class GraphFileError(GraphbpError):
    """A file cannot be read (missing, malformed, inconsistent) or written (an output folder
    that cannot take the outputs, a full disk)."""


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
    """A JAX transformation the program's derivative rules do not support (forward mode
    applied to the program itself: ``jax.jvp``, ``jax.jacfwd``); a TypeError, as JAX's own
    refusal is."""


class GradientCheckError(GraphbpError, AssertionError):
    """An analytic gradient disagrees with finite differences or another oracle."""


class GraphvizError(GraphbpError):
    """Graphviz's dot is missing or failed; ``source`` is the DOT source it could not lay out."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:  # pickles with its source (args holds the message)
        return type(self), (str(self), self.source)


def show(value: Any, width: int = 60) -> str:
    """``repr(value)`` for a message, cut to about ``width`` characters; safe for any value
    (an int too long for ``str()``, a broken ``__repr__``) and written visibly (see
    ``visible``), so a caller's value can neither break nor flood the message."""
    try:
        text = repr(value)
    except Exception:  # an int beyond Python's digit limit for str(), a broken __repr__
        if isinstance(value, int):
            return f"<an int of {value.bit_length():,} bits>"
        return f"<{type(value).__qualname__} object>"
    text = visible(text)
    return text if len(text) <= width else f"{text[: width - 5]}…{text[-4:]}"


def article(word: str) -> str:
    """``word`` after "a" or "an" as it is spoken: "an int", "a float", "an ndarray", "a
    uint8", "an op node" (for type, dtype and kind names in messages)."""
    low = word.lower()
    vowel = low[:1] in ("a", "e", "i", "o") or low.startswith("nd")
    if low[:1] == "u":
        vowel = not low.startswith(("uint", "uni", "use", "usu", "utf"))
    return f"an {word}" if vowel else f"a {word}"


def visible(text: str) -> str:
    """``text`` with every non-printable character (control, format, separator, lone
    surrogate: newline, ESC, U+202E, ...) written as its escape (``\\x1b``, ``\\u202e``),
    so a name can neither reorder, hide nor break the text it is drawn or printed in."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def exc_text(exc: BaseException, limit: int = 500) -> str:
    """The message of ``exc`` to put into another message: written visibly (see
    ``visible``), so on one line; at most ``limit`` characters (then ``… (N characters)``);
    ``(no message)`` when empty. Safe for any exception, even a plugin's whose ``__str__``
    raises."""
    try:
        text = str(exc)
    except Exception:  # a plugin's broken __str__, an int too long for str()
        text = f"<{type(exc).__name__} whose message cannot be read>"
    shown = visible(text[: limit + 1])
    if len(text) <= limit and len(shown) <= limit:
        return shown or "(no message)"
    return f"{shown[:limit]}… ({len(text):,} characters)"


def index_text(position: Any) -> str:
    """An array index as a user writes it, ``[0, 2]`` (never ``[np.int64(0), ...]``); empty
    for the one value of a 0-d array."""
    if not len(position):
        return ""
    return f"[{', '.join(str(int(k)) for k in position)}]"
