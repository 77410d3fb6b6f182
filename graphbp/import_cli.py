"""``graphbp import MODULE:FUNCTION --args ARGS.npz -o DIR``: a JAX function as a network folder.

The function is found as Python finds a module (``python -m``: the current folder first) or
read from a ``.py`` file; its example arguments come from an .npz file, one member per array
leaf, named after the function's parameters (``x``; ``params.W1`` for leaf ``W1`` of a dict
``params``; digits ``0``, ``1``, ... make a list). :func:`graphbp.from_jax` traces it once, and
the network, its parameters and its example inputs are written as one set into ``DIR``
(``network.json``, ``params.npz``, ``inputs.npz``; see :mod:`graphbp.folder`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from graphbp.errors import GraphbpError, GraphError, InputError, article, exc_text, show

if TYPE_CHECKING:
    import numpy as np

    from graphbp.graph import Network

MAX_DEPTH = 32
"""The deepest nesting an --args member name may give (``a.b.c`` is 3)."""
MAX_LISTED = 8
"""Parameters and inputs the summary lists by name (the rest are counted)."""


def run(args: argparse.Namespace) -> int:
    """``graphbp import``: trace the function, refuse what cannot be saved, write the folder.

    Raises:
        InputError: the function cannot be found, imported or called on the arguments, the
            arguments do not fit it, or --argnums names none of them.
        GraphFileError: the --args file is malformed or hostile, or -o cannot take the set.
        GraphError: the network has a node graphbp cannot save (an opaque JAX primitive).
    """
    from graphbp.folder import IMPORT_NAMES, INPUTS, NETWORK, PARAMS
    from graphbp.npz import npz_bytes, read_npz
    from graphbp.outputs import OutputFolder

    module, name = _split(args.function)
    _require_jax()
    out = args.output
    arrays = read_npz(
        args.args,
        None,
        fix="save finite example arrays with np.savez(path, x=..., **{'params.W1': ...})",
        kinds="biuf",
    )
    with _user_code(module):
        fn = load_function(module, name)
        call, names = arguments(fn, arrays, args.args, args.function)
        positions = _argnums(args.argnums, names, call, args.function)
        net, params, inputs = _trace(fn, call, positions, args.function)
    refuse_opaque(net, args.function)
    loss = _loss_value(net, params, inputs)
    files = {
        NETWORK: net.to_json_bytes(),
        PARAMS: npz_bytes({str(n): params[str(n)] for n in net.params}),
        INPUTS: npz_bytes({str(n): inputs[str(n)] for n in net.inputs}),
    }
    folder = OutputFolder(out, IMPORT_NAMES, command="graphbp import", option="-o")
    folder.check_input(args.args, "--args")
    folder.phase = "before writing"
    try:
        with folder, folder.writing() as new:
            from graphbp.io import write_file

            for file, content in files.items():
                write_file(new / file, content, out / file)
    except KeyboardInterrupt as exc:
        exc.add_note(f" {folder.phase}; {folder.state()}")
        raise
    print(summary(net, params, inputs, loss, args.function))
    print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


# ------------------------------------------------------------------------- the function


def _require_jax() -> None:
    """Import jax, which traces the function.

    Raises:
        InputError: it is not installed, with how to install it.
    """
    try:
        import jax  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "jax":
            raise
        raise InputError(
            "graphbp import traces the function with JAX, which is not installed; install "
            "the extra: pip install 'graphbp[jax]'"
        ) from None


def _split(text: str) -> tuple[str, str]:
    """MODULE and FUNCTION of ``MODULE:FUNCTION``."""
    module, colon, name = text.rpartition(":")
    if not colon or not module.strip() or not name.strip():
        raise InputError(
            f"{show(text, 80)}: name the function as MODULE:FUNCTION, a module or a .py file, "
            "a colon and the function (model:loss, models/mlp.py:loss, model:Net.loss)"
        )
    return module, name


def _is_file(module: str) -> bool:
    """Whether MODULE is a path to a file rather than a dotted module name."""
    return module.endswith(".py") or "/" in module or os.sep in module


@contextlib.contextmanager
def _user_code(module: str) -> Iterator[None]:
    """Python's module search path as ``python`` gives a script or ``python -m`` a module:
    the script's folder, or the current folder, first; restored afterwards."""
    folder = os.path.dirname(os.path.abspath(module)) if _is_file(module) else os.getcwd()
    saved = list(sys.path)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path[:] = saved


def load_function(module: str, name: str) -> Callable[..., Any]:
    """The function ``name`` (dotted: ``Net.loss``) of ``module`` (a dotted module name, or
    the path of a .py file).

    Raises:
        InputError: the module or file is missing, importing it raised (naming the error,
            its file and line), or it has no callable ``name``.
    """
    where = f"{module}:{name}"
    loaded = _import_file(module) if _is_file(module) else _import_module(module)
    value: Any = loaded
    done: list[str] = []
    for part in name.split("."):
        if not part.isidentifier() or not hasattr(value, part):
            owner = f"module {module}" if not done else f"{module}:{'.'.join(done)}"
            known = sorted(
                n for n in dir(value) if not n.startswith("_") and callable(getattr(value, n, 0))
            )
            listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            raise InputError(
                f"{where}: {owner} has no {show(part, 40)}; it defines "
                f"{listed or 'no public functions'}"
            )
        value = getattr(value, part)
        done.append(part)
    if not callable(value):
        raise InputError(
            f"{where}: is {article(type(value).__name__)}, not a function; name the function "
            "that computes the loss"
        )
    return value  # type: ignore[no-any-return]


def _import_file(module: str) -> ModuleType:
    """Run a .py file as a module (its folder first on Python's path, as ``python FILE``)."""
    path = Path(module)
    if not path.is_file():
        problem = "no such file" if not os.path.lexists(path) else "not a file"
        raise InputError(
            f"{module}: {problem}; give the path of a Python file, or a module name found "
            "from the current folder (MODULE:FUNCTION, e.g. model.py:loss or model:loss)"
        )
    name = f"_graphbp_import_{path.stem}"  # never shadows, nor is taken for, a module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{module}: Python cannot load it as a module; give a .py file")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # as an import would: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(loaded)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _raised(f"importing {module}", exc, [path]) from None
    return loaded


def _import_module(module: str) -> ModuleType:
    """Import a dotted module, found from the current folder first (as ``python -m``)."""
    importlib.invalidate_caches()  # files made since this process looked
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(f"{missing}.")):
            raise InputError(
                f"{module}: no module named {show(missing, 60)} in the current folder "
                f"{os.getcwd()} or on Python's path; run graphbp import from the folder that "
                f"holds {missing.replace('.', '/')}.py, or give the file's path "
                f"(path/to/{missing.split('.')[-1]}.py:FUNCTION)"
            ) from None
        raise _raised(f"importing {module}", exc, []) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _raised(f"importing {module}", exc, []) from None


def _raised(doing: str, exc: BaseException, files: Sequence[Path]) -> InputError:
    """An exception of the user's code as one line: what raised what, and where."""
    kind = type(exc).__name__
    if isinstance(exc, SystemExit):
        return InputError(
            f"{doing} called sys.exit({show(exc.code, 40)}); run a script's work under "
            "if __name__ == '__main__': so that importing it only defines its functions"
        )
    where = _user_line(exc, files)
    at = f" ({where})" if where else ""
    return InputError(f"{doing} raised {kind}: {exc_text(exc, 400)}{at}; fix the code")


def _user_line(exc: BaseException, files: Sequence[Path]) -> str:
    """Where ``exc`` was raised, as ``file:line``: the deepest frame in ``files``, else the
    deepest frame of the user's own code (not Python's, an installed package's or graphbp's),
    else the deepest frame; a SyntaxError's own file and line."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_shown_path(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    wanted = {os.path.realpath(f) for f in files}
    for keep in (lambda f: os.path.realpath(f) in wanted, _is_user_file, lambda f: True):
        picked = [f for f in frames if keep(f.filename)]
        if picked:
            return f"{_shown_path(picked[-1].filename)}:{picked[-1].lineno}"
    return ""


def _is_user_file(filename: str) -> bool:
    """Whether a frame's file is the user's code: neither Python's own, nor an installed
    package's, nor graphbp's."""
    if filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    roots.add(str(Path(__file__).resolve().parent))  # graphbp itself, also when editable
    roots.update(str(Path(file).resolve().parent) for file in _graphbp_plugins())
    return not any(Path(path).is_relative_to(os.path.realpath(r)) for r in roots)


def _graphbp_plugins() -> list[str]:
    """The files of graphbp's own op and backend packages that are imported (their frames
    are not the user's)."""
    modules = (sys.modules.get(n) for n in ("graphbp_ops", "graphbp_numpy", "graphbp_jax"))
    return [m.__file__ for m in modules if m is not None and m.__file__ is not None]


def _shown_path(filename: str) -> str:
    """A frame's file as a message shows it: relative to the current folder where inside."""
    try:
        return os.path.relpath(filename) if not filename.startswith("<") else filename
    except ValueError:
        return filename


# ------------------------------------------------------------------------- the arguments


def arguments(
    fn: Callable[..., Any], arrays: Mapping[str, Any], path: Path, where: str
) -> tuple[list[Any], list[str]]:
    """The positional arguments of ``fn`` that the .npz members give, and their names.

    Members are named after ``fn``'s parameters: ``x`` is the argument ``x``; ``params.W1``
    is leaf ``W1`` of a dict argument ``params``; names nest with "."; keys 0..n-1 at one
    level make a list. A parameter left out takes its default.

    Raises:
        InputError: a member names no parameter, a parameter without default is not
            given, or the names do not make one tree.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: Python cannot read its parameters ({exc_text(exc, 200)}); name a "
            "function defined with def"
        ) from None
    P = inspect.Parameter
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
    ]
    names = [p.name for p in positional]
    listed = f"{where.rpartition(':')[2]}{signature}"
    tree = _unflatten(arrays, path)
    unknown = [k for k in tree if k not in names]
    if unknown:
        strays = [m for m in arrays if m.split(".")[0] in unknown]
        shown = ", ".join(show(m, 40) for m in strays[:5])
        more = f" and {len(strays) - 5} more" if len(strays) > 5 else ""
        raise InputError(
            f"{path}: {'members' if len(strays) > 1 else 'member'} {shown}{more} "
            f"{'name' if len(strays) > 1 else 'names'} no parameter of {listed}; name each "
            f"member after a parameter ({', '.join(names) or 'it takes none by position'}), "
            "a dict's leaves as params.W1"
        )
    for p in signature.parameters.values():
        if p.kind == P.KEYWORD_ONLY and p.default is P.empty:
            raise InputError(
                f"{where}: its keyword-only parameter {p.name!r} has no default, and graphbp "
                "import passes arguments by position; give it a default or make it positional"
            )
    missing = [p.name for p in positional if p.name not in tree and p.default is P.empty]
    if missing:
        which = " and ".join(repr(m) for m in missing)
        raise InputError(
            f"{path}: has no member for parameter{'s' if len(missing) > 1 else ''} {which} of "
            f"{listed}; add {'them' if len(missing) > 1 else 'it'} (np.savez(path, "
            f"{missing[0]}=...), or {missing[0]}.KEY=... for each leaf of a dict)"
        )
    last = max((i for i, n in enumerate(names) if n in tree), default=-1)
    call = [
        tree[n] if n in tree else positional[i].default for i, n in enumerate(names[: last + 1])
    ]
    return call, names[: last + 1]


def _unflatten(arrays: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Members named ``a.b.c`` as nested dicts; a level keyed 0..n-1 as a list.

    Raises:
        InputError: an empty name part, nesting deeper than :data:`MAX_DEPTH`, a name that
            is both an array and a tree (``p`` and ``p.W``), digit keys that are not 0..n-1.
    """
    tree: dict[str, Any] = {}
    for member, value in arrays.items():
        parts = member.split(".")
        if not all(parts):
            raise InputError(
                f"{path}: member {show(member)} has an empty part between dots; name leaves "
                "as params.W1, layers.0.w"
            )
        if len(parts) > MAX_DEPTH:
            raise InputError(f"{path}: member {show(member)} nests deeper than {MAX_DEPTH} levels")
        node = tree
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _clash(path, ".".join(parts[: depth + 1]), member)
            node = child
        if parts[-1] in node:
            raise _clash(path, member, next(m for m in arrays if m.startswith(f"{member}.")))
        node[parts[-1]] = value
    return {k: _lists(v, k, path) for k, v in tree.items()}


def _clash(path: Path, leaf: str, nested: str) -> InputError:
    return InputError(
        f"{path}: member {show(leaf)} is an array, and member {show(nested)} makes it a dict "
        "or list; an argument is one or the other: rename one"
    )


def _lists(node: Any, where: str, path: Path) -> Any:
    """A dict whose keys are all digits as a list (they must be 0..n-1), recursively."""
    if not isinstance(node, dict):
        return node
    items = {k: _lists(v, f"{where}.{k}", path) for k, v in node.items()}
    if not all(k.isdigit() for k in items):
        return items
    if sorted(items) != sorted(str(i) for i in range(len(items))):
        raise InputError(
            f"{path}: the members under {show(where)} are numbered {', '.join(sorted(items))}; "
            f"a list's are 0 to {len(items) - 1}, each once"
        )
    return [items[str(i)] for i in range(len(items))]


def _argnums(
    given: tuple[int, ...], names: list[str], call: list[Any], where: str
) -> int | tuple[int, ...]:
    """--argnums as from_jax takes it (an int, or a tuple), each in range and a float tree.

    Raises:
        InputError: a number names no given argument, or an argument of ints or bools.
    """
    import numpy as np

    count = len(call)
    picked = []
    for k in given:
        if not -count <= k < count:
            raise InputError(
                f"--argnums {k}: {where} is called with {count} argument(s) "
                f"({', '.join(names) or 'none'}, numbered 0 to {count - 1}); choose among them"
            )
        picked.append(k % count)
    if len(set(picked)) != len(picked):
        raise InputError(f"--argnums {given}: names one argument twice")
    for k in picked:
        for leaf in _leaves(call[k]):
            kind = np.asarray(leaf).dtype
            if kind.kind != "f":
                raise InputError(
                    f"--argnums {k} makes argument {names[k]!r} a parameter, but it holds "
                    f"{kind} values; parameters are trained, so they must be floats: give "
                    "--argnums the argument(s) holding the weights (default 0)"
                )
    return picked[0] if len(picked) == 1 else tuple(picked)


def _leaves(tree: Any) -> list[Any]:
    """The arrays of an argument made of dicts and lists."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, list):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


# ------------------------------------------------------------------------- trace, check


def _trace(
    fn: Callable[..., Any], call: list[Any], positions: int | tuple[int, ...], where: str
) -> tuple[Network, dict[str, Any], dict[str, Any]]:
    """:func:`graphbp.from_jax` on ``call``; an exception of the user's code (or of JAX
    on it) as an InputError naming the line, graphbp's own errors as they are."""
    from graphbp.jax_import import from_jax

    try:
        return from_jax(fn, *call, argnums=positions)
    except GraphbpError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and not _is_user_file(frames[-1].filename) and _in_graphbp(frames[-1].filename):
            raise  # a bug of graphbp's: the command line says so
        raise _raised(f"tracing {where} on the arguments", exc, []) from None


def _in_graphbp(filename: str) -> bool:
    """Whether a file is graphbp's own (its package)."""
    return Path(os.path.realpath(filename)).is_relative_to(Path(__file__).resolve().parent)


def refuse_opaque(net: Network, where: str) -> None:
    """Refuse a network with opaque nodes (JAX primitives graphbp has no op for).

    Raises:
        GraphError: naming the first such node, its primitive and source line, and the fix.
    """
    opaque = [n for n in net.order if net.op_name(n) == "opaque"]
    if not opaque:
        return
    node = opaque[0]
    attrs = net.graph.nodes[node]
    primitive = attrs.get("primitive", "?")
    source = attrs.get("source")
    at = f" at {source}" if source else ""
    more = f" (and {len(opaque) - 1} more such node(s))" if len(opaque) > 1 else ""
    raise GraphError(
        f"{where}: node {show(node)} is the JAX primitive {show(primitive)}{at}, which graphbp "
        f"has no op for{more}: it runs only through JAX and cannot be saved to network.json, "
        "so nothing was written; write that part with operations graphbp has ops for "
        "(graphbp ops lists them; for control flow, jnp.where instead of lax.cond and a Python "
        "loop instead of lax.scan or fori_loop), or use gb.from_jax in Python on the jax backend"
    )


def _loss_value(net: Network, params: Mapping[Any, Any], inputs: Mapping[Any, Any]) -> float:
    """The loss of the imported network on the example arguments (NumPy, float64)."""
    prog = net.compile("numpy", "float64")
    return float(prog.loss(params, inputs))


def summary(
    net: Network,
    params: Mapping[Any, np.ndarray[Any, Any]],
    inputs: Mapping[Any, np.ndarray[Any, Any]],
    loss: float,
    where: str,
) -> str:
    """What was imported: nodes, parameters and inputs with their shapes, the loss."""
    import numpy as np

    def listed(names: list[Hashable], values: Mapping[Hashable, Any]) -> str:
        shown = [f"{show(n, 40)} {tuple(np.shape(values[n]))}" for n in names[:MAX_LISTED]]
        rest = len(names) - MAX_LISTED
        return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "") or "none"

    count = sum(int(np.size(params[n])) for n in net.params)
    return "\n".join(
        [
            f"graphbp import: {where}: {len(net.order):,} nodes",
            f"  params ({count:,} numbers): {listed(list(net.params), params)}",
            f"  inputs: {listed(list(net.inputs), inputs)}",
            f"  loss {show(net.loss, 40)} on the example arguments: {loss!r} (numpy, float64)",
        ]
    )
