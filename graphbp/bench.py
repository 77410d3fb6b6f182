"""Benchmarks: graphbp against hand-written NumPy and JAX, in the same process, as ratios.

Run with ``graphbp bench`` (or ``python -m graphbp.bench``). Times are the best of several
repeats of many steps, so one noisy moment on a shared machine does not decide the ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import networkx as nx
import numpy as np

from graphbp.testing import handwritten_step

SIZES = [(32, 8, 16, 1), (256, 64, 128, 1), (64, 784, 1024, 10)]
"""(batch, in, hidden, out) of the seed network."""
CHAIN_OPS = ("tanh", "sigmoid")
"""The elementwise ops the per-op overhead chain alternates."""


def best_times(
    fns: dict[str, Callable[[], Any]], repeats: int, budget: float = 0.1
) -> dict[str, float]:
    """Seconds per call of each function: the best of ``repeats`` loops of ~``budget`` s each.

    The functions take turns within every repeat, so a slow moment on a shared machine
    hits all of them alike rather than skewing one ratio.
    """
    loops = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        fn()
        loops[name] = max(1, int(budget / max(time.perf_counter() - start, 1e-9)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / loops[name])
    return best


def seed_data(batch: int, n_in: int, n_out: int, seed: int = 0) -> dict[str, Any]:
    """Random inputs for the seed network."""
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, n_in)), "y": rng.standard_normal((batch, n_out))}


def chain_graph(length: int) -> nx.DiGraph:
    """A chain of ``length`` elementwise ops on a 4-vector parameter, summed into the loss."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(4,), init="normal")
    prev: Hashable = "p"
    for i in range(length):
        g.add_node(i, op=CHAIN_OPS[i % len(CHAIN_OPS)])
        g.add_edge(prev, i)
        prev = i
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return g


def bench_seed(repeats: int) -> list[dict[str, Any]]:
    """Time one training step of the seed network: graphbp-numpy vs hand-written NumPy."""
    return [_bench_seed_size(size, repeats) for size in SIZES]


def _bench_seed_size(size: tuple[int, int, int, int], repeats: int) -> dict[str, Any]:
    from graphbp import Network, seed_network
    from graphbp.optim import SGD

    batch, n_in, hidden, n_out = size
    lr = 1e-4
    prog = Network(seed_network(n_in, hidden, n_out)).compile("numpy", "float64")
    data = seed_data(batch, n_in, n_out)
    params = prog.init(0)
    hand = {k: np.array(v) for k, v in params.items()}
    opt = SGD(lr)

    def graphbp_step() -> None:
        _, grads = prog.value_and_grad(params, data)
        opt.update_(params, grads, ())

    def hand_step() -> None:
        handwritten_step(hand, data["x"], data["y"], lr)

    times = best_times({"hand": hand_step, "graphbp": graphbp_step}, repeats)
    return {
        "size": size,
        "numpy_us": times["hand"] * 1e6,
        "graphbp_us": times["graphbp"] * 1e6,
        "ratio": times["graphbp"] / times["hand"],
    }


def bench_chain(length: int, repeats: int) -> dict[str, float]:
    """Per-op cost of forward + backward on a long chain of elementwise ops on a 4-vector."""
    from graphbp import Network

    prog = Network(chain_graph(length)).compile("numpy", "float64")
    params = prog.init(0)
    p = params["p"]
    start = time.perf_counter()
    prog.value_and_grad(params, {})  # the first call writes and compiles the plan
    first_call = time.perf_counter() - start

    def hand() -> Any:
        values = [p]
        for i in range(length):
            z = values[-1]
            values.append(np.tanh(z) if i % 2 == 0 else 0.5 + 0.5 * np.tanh(0.5 * z))
        g = np.ones_like(p)
        for i in reversed(range(length)):
            out = values[i + 1]
            g = g * (1 - out * out) if i % 2 == 0 else g * out * (1 - out)
        return g

    times = best_times({"graphbp": lambda: prog.value_and_grad(params, {}), "hand": hand}, repeats)
    t, t_hand = times["graphbp"], times["hand"]
    return {
        "length": length,
        "graphbp_us_per_op": t / length * 1e6,
        "numpy_us_per_op": t_hand / length * 1e6,
        "first_call_s": first_call,
    }


def seed_loss_jax(params: dict[str, Any], x: Any, y: Any) -> Any:
    """The seed network's loss written directly in jax.numpy, as a JAX user would."""
    import jax
    import jax.numpy as jnp

    h1 = jax.nn.sigmoid(x @ params["W1"] + params["b1"])
    h2 = jax.nn.sigmoid(h1 @ params["W2"] + params["b2"])
    return jnp.sum((h2 @ params["W3"] + params["b3"] - y) ** 2)


def bench_seed_jax(repeats: int) -> list[dict[str, Any]]:
    """Time one training step: graphbp-jax vs ``jax.jit(jax.value_and_grad)`` by hand."""
    return [_bench_seed_jax_size(size, repeats) for size in SIZES]


def _bench_seed_jax_size(size: tuple[int, int, int, int], repeats: int) -> dict[str, Any]:
    """Both steps gather the batch from device-resident data, compute loss and gradient, and
    apply W ← W − η·∇W under one jit with the parameters donated; the same rows each time."""
    import jax

    from graphbp import Network, seed_network
    from graphbp.optim import SGD

    batch, n_in, hidden, n_out = size
    lr = 1e-4
    net = Network(seed_network(n_in, hidden, n_out))
    prog = net.compile("jax", "float64")
    names = net.params
    inputs = [n for n, _ in prog.plan(with_grad=True).inputs]
    owned = prog.own(seed_data(batch, n_in, n_out))
    data = [owned[n] for n in inputs]
    rows = np.arange(batch)
    opt = SGD(lr)
    step = prog.train_step(opt)
    init = prog.init(0)

    def hand_update(params: dict[str, Any], x: Any, y: Any, rows: Any) -> Any:
        loss, grads = jax.value_and_grad(seed_loss_jax)(params, x[rows], y[rows])
        return {k: p - lr * grads[k] for k, p in params.items()}, loss

    hand_step = jax.jit(hand_update, donate_argnums=0)
    hand = prog.own({str(n): init[n] for n in names})
    current = prog.own({i: init[n] for i, n in enumerate(names)})
    start = time.perf_counter()
    with jax.enable_x64(True):
        hand, loss = hand_step(hand, *data, rows)
    loss.block_until_ready()
    hand_first_call = time.perf_counter() - start
    start = time.perf_counter()
    current, _, loss = step(current, (), data, rows)
    loss.block_until_ready()
    first_call = time.perf_counter() - start
    numpy_prog = net.compile("numpy", "float64")
    numpy_params = numpy_prog.init(0)
    numpy_data = seed_data(batch, n_in, n_out)

    def graphbp_jax() -> None:
        nonlocal current
        current, _, loss = step(current, (), data, rows)
        loss.block_until_ready()

    def hand_jax() -> None:
        nonlocal hand
        with jax.enable_x64(True):
            hand, loss = hand_step(hand, *data, rows)
        loss.block_until_ready()

    def graphbp_numpy() -> None:
        _, grads = numpy_prog.value_and_grad(numpy_params, numpy_data)
        opt.update_(numpy_params, grads, ())

    # NumPy is timed on its own: right after a NumPy step its BLAS threads are still
    # spinning, and would slow whichever JAX step came next.
    # Short loops and many turns: on a shared machine the best turn is a quiet one.
    times = best_times({"hand": hand_jax, "graphbp": graphbp_jax}, 3 * repeats, budget=0.02)
    times.update(best_times({"numpy": graphbp_numpy}, repeats))
    return {
        "size": size,
        "jax_us": times["hand"] * 1e6,
        "graphbp_us": times["graphbp"] * 1e6,
        "ratio": times["graphbp"] / times["hand"],
        "graphbp_numpy_us": times["numpy"] * 1e6,
        "first_call_s": first_call,
        "hand_first_call_s": hand_first_call,
    }


COMPOSITION_SIZES = [*SIZES, (4096, 256, 512, 10)]
"""Sizes of the JAX user's own step around ``prog.loss``, float32."""


def bench_jax_composition(repeats: int, sizes: list[Any] | None = None) -> list[dict[str, Any]]:
    """Time a JAX user's own training step around ``prog.loss`` against the hand-written one."""
    return [_bench_jax_composition_size(size, repeats) for size in sizes or COMPOSITION_SIZES]


def _bench_jax_composition_size(size: tuple[int, int, int, int], repeats: int) -> dict[str, Any]:
    """``jax.jit`` of ``jax.value_and_grad(prog.loss)`` and the SGD update, written by a JAX user
    (so JAX differentiates graphbp's plugins through their custom_vjp rules), against the same
    step around the seed loss written in ``jax.numpy``; float32, the batch gathered from
    device-resident data, parameters donated, the two taking turns."""
    import jax
    import jax.numpy as jnp

    from graphbp import Network, seed_network

    batch, n_in, hidden, n_out = size
    lr = 1e-4
    prog = Network(seed_network(n_in, hidden, n_out)).compile("jax", "float32")
    data = {k: jnp.asarray(v, jnp.float32) for k, v in seed_data(batch, n_in, n_out).items()}
    rows = jnp.arange(batch)

    def users_step(params: dict[str, Any], x: Any, y: Any, rows: Any) -> Any:
        loss, grads = jax.value_and_grad(prog.loss)(params, {"x": x[rows], "y": y[rows]})
        return {k: p - lr * grads[k] for k, p in params.items()}, loss

    def hand_step(params: dict[str, Any], x: Any, y: Any, rows: Any) -> Any:
        loss, grads = jax.value_and_grad(seed_loss_jax)(params, x[rows], y[rows])
        return {k: p - lr * grads[k] for k, p in params.items()}, loss

    steps = {"users": users_step, "hand": hand_step}
    jitted = {k: jax.jit(step, donate_argnums=0) for k, step in steps.items()}
    init = {str(k): np.asarray(v, np.float32) for k, v in prog.init(0).items()}
    state = {k: {n: jnp.asarray(v) for n, v in init.items()} for k in steps}

    def run(key: str) -> Callable[[], None]:
        def one_step() -> None:
            state[key], loss = jitted[key](state[key], data["x"], data["y"], rows)
            loss.block_until_ready()

        return one_step

    times = best_times({k: run(k) for k in steps}, repeats)
    return {
        "size": size,
        "jax_us": times["hand"] * 1e6,
        "users_us": times["users"] * 1e6,
        "ratio": times["users"] / times["hand"],
    }


IMPORTED_DTYPES = ("float32", "float64")
"""The dtypes the imported models' training steps are timed in (``--quick``: the first)."""


def imported_models(quick: bool = False) -> dict[str, Callable[[str], Any]]:
    """The JAX models ``graphbp bench`` imports, by name: each builds ``(loss_fn, args)`` for a
    dtype afresh (new functions, so JAX's trace caches never serve a second import).

    ``cnn``: graphbp.jax_examples.cnn on 64 of the 8×8 digits (16 with ``quick``); ``stack``:
    a 12-block residual attention stack (jax_examples.residual_attention) on 16 sequences of
    16 tokens, width 32, 2 heads, MLP width 64 (8 sequences of 8 with ``quick``).
    """
    from graphbp import jax_examples

    batch, seq = (8, 8) if quick else (16, 16)
    return {
        "cnn": lambda dtype: jax_examples.cnn(batch=16 if quick else 64, dtype=dtype),
        "stack": lambda dtype: jax_examples.residual_attention(
            12, batch=batch, seq=seq, d_model=32, d_hidden=64, heads=2, dtype=dtype
        ),
    }


def bench_import(build: Callable[[str], Any], repeats: int) -> dict[str, Any]:
    """Seconds to import a JAX model with gb.from_jax — trace, convert, validate — the best of
    ``repeats`` fresh models, the first one apart; and the network's size."""
    from graphbp.jax_import import from_jax

    times = []
    for _ in range(max(repeats, 2)):
        fn, args = build("float32")
        start = time.perf_counter()
        net, _, _ = from_jax(fn, *args)
        times.append(time.perf_counter() - start)
    kinds = net.kind
    return {
        "nodes": len(kinds),
        "op_nodes": sum(1 for k in kinds.values() if k == "op"),
        "params": len(net.params),
        "first_s": times[0],
        "best_s": min(times[1:]),
    }


def bench_imported_step(
    build: Callable[[str], Any], dtype: str, repeats: int, numpy: bool = True
) -> dict[str, Any]:
    """Time one SGD training step of an imported model: graphbp-jax's ``prog.train_step``
    against ``jax.jit`` of ``jax.value_and_grad`` of the model's own function with the same
    update, both gathering the same rows from device-resident data, parameters donated, taking
    turns; and, with ``numpy``, graphbp-numpy's step (timed apart, as in
    :func:`bench_seed_jax`)."""
    import jax
    import jax.numpy as jnp

    from graphbp.jax_import import from_jax
    from graphbp.optim import SGD

    lr = 1e-3
    fn, (params0, *rest) = build(dtype)
    net, params, inputs = from_jax(fn, params0, *rest)
    prog = net.compile("jax", dtype)
    step = prog.train_step(SGD(lr))
    order = [n for n, _ in prog.plan(with_grad=True).inputs]
    owned = prog.own(inputs)
    data = [owned[n] for n in order]
    rows = np.arange(len(rest[0]))
    current = prog.own({i: params[str(n)] for i, n in enumerate(net.params)})

    def hand_update(p: Any, x: Any, y: Any, rows: Any) -> Any:
        loss, grads = jax.value_and_grad(fn)(p, x[rows], y[rows])
        return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

    with prog.precision():
        hand_step = jax.jit(hand_update, donate_argnums=0)
        hand = jax.tree.map(jnp.asarray, params0)
        hand_data = [jnp.asarray(a) for a in rest]
        start = time.perf_counter()
        hand, loss = hand_step(hand, *hand_data, rows)
        loss.block_until_ready()
    hand_first_call = time.perf_counter() - start
    start = time.perf_counter()
    current, _, loss = step(current, (), data, rows)
    loss.block_until_ready()
    first_call = time.perf_counter() - start

    def graphbp_jax() -> None:
        nonlocal current
        current, _, loss = step(current, (), data, rows)
        loss.block_until_ready()

    def hand_jax() -> None:
        nonlocal hand
        with prog.precision():
            hand, loss = hand_step(hand, *hand_data, rows)
        loss.block_until_ready()

    def graphbp_numpy() -> None:
        _, grads = numpy_prog.value_and_grad(numpy_params, inputs)
        opt.update_(numpy_params, grads, ())

    if numpy:
        numpy_prog = net.compile("numpy", dtype)
        numpy_params = numpy_prog.own(params)
        opt = SGD(lr)

    # Short loops and many turns: on a shared machine the best turn is a quiet one.
    times = best_times({"hand": hand_jax, "graphbp": graphbp_jax}, 3 * repeats, budget=0.02)
    if numpy:
        times.update(best_times({"numpy": graphbp_numpy}, repeats))
    return {
        "dtype": dtype,
        "jax_us": times["hand"] * 1e6,
        "graphbp_us": times["graphbp"] * 1e6,
        "ratio": times["graphbp"] / times["hand"],
        "graphbp_numpy_us": times["numpy"] * 1e6 if numpy else None,
        "first_call_s": first_call,
        "hand_first_call_s": hand_first_call,
    }


def first_gradient(length: int) -> dict[str, float]:
    """Seconds from a ``length``-op chain graph to its first gradient on NumPy: the Network
    built (validation, shape inference), compiled, and the first value_and_grad."""
    from graphbp import Network

    graph = chain_graph(length)
    start = time.perf_counter()
    net = Network(graph)
    built = time.perf_counter()
    prog = net.compile("numpy", "float64")
    params = prog.init(0)
    compiled = time.perf_counter()
    prog.value_and_grad(params, {})
    done = time.perf_counter()
    return {
        "length": length,
        "network_s": built - start,
        "compile_s": compiled - built,
        "first_run_s": done - compiled,
        "total_s": done - start,
    }


def jax_chain_first_call(length: int) -> dict[str, float]:
    """Seconds for the first value-and-gradient of a ``length``-op chain on JAX (trace and
    XLA compile): graphbp's, and the same chain hand-written under jax.jit(value_and_grad)."""
    import jax
    import jax.numpy as jnp

    from graphbp import Network

    prog = Network(chain_graph(length)).compile("jax", "float64")
    params = prog.init(0)
    start = time.perf_counter()
    loss, _ = prog.value_and_grad(params, {})
    loss.block_until_ready()
    graphbp = time.perf_counter() - start

    def chain_loss(p: Any) -> Any:
        for i in range(length):
            p = jnp.tanh(p) if i % 2 == 0 else 1 / (1 + jnp.exp(-p))  # σ as graphbp-jax
        return jnp.sum(p)

    start = time.perf_counter()
    with jax.enable_x64(True):
        loss, _ = jax.jit(jax.value_and_grad(chain_loss))(params["p"])
    loss.block_until_ready()
    return {"graphbp_s": graphbp, "hand_s": time.perf_counter() - start}


def run(quick: bool = False, backends: list[str] | None = None) -> None:
    """Print the benchmark tables for ``backends`` (default: numpy)."""
    backends = backends or ["numpy"]
    repeats = 3 if quick else 7
    if "numpy" in backends:
        _run_numpy(quick, repeats)
    if "jax" in backends:
        _run_jax(quick, repeats)


def _run_jax(quick: bool, repeats: int) -> None:
    print(f"One jitted SGD training step of the seed network (float64), best of {repeats} repeats")
    print(
        f"{'(batch, in, hidden, out)':<26}{'hand JAX':>12}{'graphbp-jax':>13}{'ratio':>8}"
        f"{'graphbp-numpy':>15}{'first call: hand, graphbp':>27}"
    )
    for row in bench_seed_jax(repeats):
        print(
            f"{row['size']!s:<26}{row['jax_us']:>10.1f}µs{row['graphbp_us']:>11.1f}µs"
            f"{row['ratio']:>7.2f}×{row['graphbp_numpy_us']:>13.1f}µs"
            f"{row['hand_first_call_s']:>18.2f}s, {row['first_call_s']:.2f}s"
        )
    print()
    print("A JAX user's own step: jax.jit of jax.value_and_grad(prog.loss) and SGD (float32)")
    print(f"{'(batch, in, hidden, out)':<26}{'hand JAX':>12}{'around prog.loss':>18}{'ratio':>8}")
    for row in bench_jax_composition(repeats, SIZES if quick else None):
        print(
            f"{row['size']!s:<26}{row['jax_us']:>10.1f}µs{row['users_us']:>16.1f}µs"
            f"{row['ratio']:>7.2f}×"
        )
    length = 500 if quick else 2000
    first = jax_chain_first_call(length)
    print(
        f"  first call of a chain of {length} ops on JAX (trace + XLA compile): graphbp "
        f"{first['graphbp_s']:.2f} s, the same chain hand-written {first['hand_s']:.2f} s"
    )
    print()
    run_imported(imported_models(quick), IMPORTED_DTYPES[:1] if quick else IMPORTED_DTYPES, repeats)
    print()


def run_imported(
    models: dict[str, Callable[[str], Any]], dtypes: tuple[str, ...], repeats: int
) -> None:
    """Print the import table and the training-step table of ``models`` (see
    :func:`imported_models`) in each of ``dtypes``."""
    print(f"Importing a JAX model: gb.from_jax (trace + convert + validate), best of {repeats}")
    print(f"{'model':<8}{'nodes':>7}{'op nodes':>10}{'params':>8}{'first':>9}{'best':>9}")
    for name, build in models.items():
        row = bench_import(build, repeats)
        print(
            f"{name:<8}{row['nodes']:>7}{row['op_nodes']:>10}{row['params']:>8}"
            f"{row['first_s']:>8.2f}s{row['best_s']:>8.2f}s"
        )
    print()
    print(f"One jitted SGD training step of the imported model, best of {3 * repeats} turns")
    print(
        f"{'model':<8}{'dtype':<9}{'hand JAX':>12}{'graphbp-jax':>13}{'ratio':>8}"
        f"{'graphbp-numpy':>15}{'first call: hand, graphbp':>27}"
    )
    for name, build in models.items():
        for dtype in dtypes:
            row = bench_imported_step(build, dtype, repeats)
            print(
                f"{name:<8}{dtype:<9}{row['jax_us']:>10.0f}µs{row['graphbp_us']:>11.0f}µs"
                f"{row['ratio']:>7.2f}×{row['graphbp_numpy_us']:>13.0f}µs"
                f"{row['hand_first_call_s']:>18.2f}s, {row['first_call_s']:.2f}s"
            )


def _run_numpy(quick: bool, repeats: int) -> None:
    print(f"One SGD training step of the seed network (float64), best of {repeats} repeats")
    print(f"{'(batch, in, hidden, out)':<26}{'hand NumPy':>12}{'graphbp':>12}{'ratio':>8}")
    for row in bench_seed(repeats):
        print(
            f"{row['size']!s:<26}{row['numpy_us']:>10.1f}µs{row['graphbp_us']:>10.1f}µs"
            f"{row['ratio']:>7.2f}×"
        )
    chain = bench_chain(500 if quick else 2000, repeats)
    print()
    print(f"Chain of {chain['length']} elementwise ops on a 4-vector, forward + backward per op:")
    print(
        f"  graphbp {chain['graphbp_us_per_op']:.2f} µs/op   "
        f"(the same ufunc calls hand-written: {chain['numpy_us_per_op']:.2f} µs/op)"
    )
    print(f"  first call, which writes and compiles the plan: {chain['first_call_s']:.2f} s")
    first = first_gradient(20_000 if quick else 100_000)
    print(
        f"First gradient of a chain of {first['length']:,} ops (interpreted): Network "
        f"{first['network_s']:.2f} s + compile {first['compile_s']:.2f} s + first "
        f"value_and_grad {first['first_run_s']:.2f} s = {first['total_s']:.2f} s"
    )
    print()


if __name__ == "__main__":
    run()
