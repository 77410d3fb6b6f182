"""The JAX backend: NumPy's results, a JAX function whose derivative rules are the plugins',
one jitted training step, float64 without global side effects, and several devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from graphs import NETWORKS, example_inputs
from user_ops import Cube

import graphbp as gb
from graphbp.optim import SGD
from graphbp.testing import check_backends_agree, check_network, check_op, check_op_autodiff

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NETWORKS)
def test_numpy_and_jax_compute_the_same_loss_and_gradients(name: str, dtype: str) -> None:
    net = gb.Network(NETWORKS[name]())
    inputs = example_inputs(net, np.random.default_rng(0), batch=6)
    report = check_backends_agree(net, ("numpy", "jax"), dtype=dtype, inputs=inputs)
    assert report.compared > 0
    assert report.max_rel_error <= (1e-10 if dtype == "float64" else 1e-5)
    assert any(key.startswith("jax jax.grad") for key in report.worst)


def test_backend_agreement_check_can_fail(register: Any, param_chain: Any) -> None:
    """An op whose vjp depends on the backend is caught by the cross-backend check."""

    class Drift(gb.Op):
        name = "drift"
        label = "drift"
        local_grads = ("1",)

        def forward(self, xp: Any, x: Any) -> Any:
            return x

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
            return (g * (1.0 if xp is np else 1.001),)

    register(Drift)
    net = gb.Network(param_chain(["drift"]))
    with pytest.raises(gb.GradientCheckError, match=r"∂L/∂p on jax vs numpy .*allowed 1e-10"):
        check_backends_agree(net)


def test_prog_loss_is_an_ordinary_jax_function(seed_net: gb.Network) -> None:
    prog = seed_net.compile("jax")
    params = prog.init(0)
    data = example_inputs(seed_net, np.random.default_rng(1), batch=6)
    inputs = prog.own(data)  # float64 JAX arrays: JAX keeps them float64 across its own jit
    loss, grads = prog.value_and_grad(params, data)

    auto = jax.grad(prog.loss)(params, inputs)
    value, auto2 = jax.value_and_grad(prog.loss)(params, inputs)
    jitted = jax.jit(jax.grad(prog.loss))(params, inputs)
    assert float(value) == pytest.approx(float(loss), rel=1e-14)
    assert float(jax.jit(prog.loss)(params, inputs)) == pytest.approx(float(loss), rel=1e-14)
    for name in seed_net.params:
        for other in (auto, auto2, jitted):
            assert other[name].dtype == np.float64
            np.testing.assert_allclose(other[name], grads[name], rtol=1e-12, atol=1e-14)

    # vmap over a stack of parameter sets (an ensemble) ...
    numpy_params = {k: np.asarray(v) for k, v in params.items()}
    stack = {k: np.stack([v, 2 * v, -v]) for k, v in numpy_params.items()}
    losses = jax.vmap(prog.loss, in_axes=(0, None))(prog.own(stack), inputs)
    for k in range(3):
        one = {n: v[k] for n, v in stack.items()}
        assert float(losses[k]) == pytest.approx(float(prog.loss(one, inputs)), rel=1e-12)
    # ... and over examples: per-example gradients, whose sum is the batch gradient (L is a sum).
    # JAX batches the transposed program after prog.loss has returned, so a float64 program
    # under vmap of grad needs JAX's 64-bit mode around the user's own call (README).
    per_example = prog.own({n: v[:, None, :] for n, v in data.items()})
    with jax.enable_x64(True):
        example_grads = jax.vmap(jax.grad(prog.loss), in_axes=(None, 0))(params, per_example)
    for name in seed_net.params:
        summed = np.asarray(example_grads[name]).sum(axis=0)
        np.testing.assert_allclose(summed, grads[name], rtol=1e-12, atol=1e-14)


class _Cube(Cube):
    """The README's Cube without its rule: JAX differentiates its forward."""

    name = "cube3"
    vjp = gb.Op.vjp


class _ScaledCube(_Cube):
    """A deliberately wrong rule (5× too large): it must show up in jax.grad."""

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (5 * 3 * g * x**2,)


def test_jax_grad_uses_the_plugins_own_vjp(register: Any, param_chain: Any) -> None:
    register(_ScaledCube)
    prog = gb.Network(param_chain(["cube3"], init="normal")).compile("jax")
    params = prog.init(0)
    p = np.asarray(params["p"])
    by_jax = jax.grad(prog.loss)(params, {})["p"]
    by_traversal = prog.value_and_grad(params, {})[1]["p"]
    np.testing.assert_allclose(by_jax, 5 * 3 * p**2, rtol=1e-14)
    np.testing.assert_allclose(by_traversal, 5 * 3 * p**2, rtol=1e-14)
    # The oracles see through it: JAX's autodiff of the forward and central differences.
    with pytest.raises(gb.GradientCheckError, match="plugin vjp vs jax.vjp"):
        check_op_autodiff("cube3")
    with pytest.raises(gb.GradientCheckError, match="analytic"):
        check_op("cube3", "jax")


def test_an_op_without_vjp_is_differentiated_by_jax_and_rejected_by_numpy(
    register: Any, param_chain: Any
) -> None:
    register(_Cube)
    net = gb.Network(param_chain(["tanh", "cube3"], init="normal", names=["h", "c"]))
    prog = net.compile("jax")
    params = prog.init(0)
    p = np.asarray(params["p"])
    want = 3 * np.tanh(p) ** 2 * (1 - np.tanh(p) ** 2)
    np.testing.assert_allclose(prog.value_and_grad(params, {})[1]["p"], want, rtol=1e-13)
    np.testing.assert_allclose(jax.grad(prog.loss)(params, {})["p"], want, rtol=1e-13)
    assert check_network(net, "jax").compared > 0
    assert check_op("cube3", "jax").compared > 0
    with pytest.raises(gb.PluginError, match=r"op 'cube3' at node 'c' defines no vjp.*'jax'"):
        net.compile("numpy")
    with pytest.raises(gb.GradientCheckError, match="op 'cube3' defines no vjp"):
        check_op("cube3", "numpy")


def test_float64_leaves_the_users_own_jax_code_in_float32(seed_net: gb.Network) -> None:
    prog = seed_net.compile("jax", "float64")
    params = prog.init(0)
    data = example_inputs(seed_net, np.random.default_rng(2), batch=6)
    loss, grads = prog.value_and_grad(params, data)
    trained, _ = gb.train(prog, params, data, epochs=1, batch_size=3, progress=False)
    assert loss.dtype == np.float64 and grads["W1"].dtype == np.float64
    assert trained["W1"].dtype == np.float64
    assert not jax.config.jax_enable_x64
    assert jnp.zeros(3).dtype == jnp.float32
    assert jnp.asarray(np.ones(2)).dtype == jnp.float32


def test_float32_programs_compute_in_float32(seed_net: gb.Network) -> None:
    prog = seed_net.compile("jax", "float32")
    loss, grads = prog.value_and_grad(
        prog.init(0), example_inputs(seed_net, np.random.default_rng(3), batch=6)
    )
    assert loss.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_on_jax_equals_training_on_numpy(seed_net: gb.Network, optimizer: str) -> None:
    data = example_inputs(seed_net, np.random.default_rng(4), batch=20)
    runs = {}
    for backend in ("numpy", "jax"):
        prog = seed_net.compile(backend)
        runs[backend] = gb.train(
            prog, prog.init(0), data, lr=0.01, epochs=4, batch_size=6, optimizer=optimizer
        )
    (p_np, h_np), (p_jax, h_jax) = runs["numpy"], runs["jax"]
    np.testing.assert_allclose(h_jax, h_np, rtol=1e-10)
    for name in seed_net.params:
        np.testing.assert_allclose(p_jax[name], p_np[name], rtol=1e-10, atol=1e-13)


def test_the_training_step_is_one_jitted_function_traced_once(
    register: Any, seed_net: gb.Network
) -> None:
    """The plugins' Python runs while JAX traces the step, never again; params are donated."""
    calls = []

    class CountingSigmoid(type(gb.get_op("sigmoid"))):  # type: ignore[misc]
        name = "counting_sigmoid"

        def forward(self, xp: Any, z: Any) -> Any:
            calls.append("forward")
            return super().forward(xp, z)

        def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> Any:
            calls.append("vjp")
            return super().vjp(xp, g, out, z)

    register(CountingSigmoid)
    graph = gb.seed_network(5, 4, 2)
    nx.set_node_attributes(graph, dict.fromkeys(["h1", "h2"], "counting_sigmoid"), "activation")
    prog = gb.Network(graph).compile("jax")
    data = example_inputs(seed_net, np.random.default_rng(5), batch=24)
    seen: list[int] = []
    gb.train(
        prog,
        prog.init(0),
        data,
        epochs=5,
        batch_size=8,
        callback=lambda *_: seen.append(len(calls)),
    )
    assert seen[0] > 0 and seen == [seen[0]] * 5  # 15 steps, one trace

    step = prog.train_step(SGD(0.1))
    current = prog.own({i: v for i, v in enumerate(prog.init(0).values())})
    arrays = prog.own(data)
    new, _, loss = step(current, (), [arrays["x"], arrays["y"]], np.arange(8))
    assert all(current[i].is_deleted() for i in current)  # donated: updated without a copy
    assert not any(new[i].is_deleted() for i in new) and np.isfinite(float(loss))


def test_check_finite_names_the_node_on_jax(param_chain: Any) -> None:
    prog = gb.Network(param_chain(["log"], init=-1.0, names=["logp"])).compile(
        "jax", check_finite=True
    )
    with pytest.raises(gb.NonFiniteError, match=r"node 'logp' \(op 'log'\)"):
        prog.value_and_grad(prog.init(0), {})


def test_input_errors_are_the_same_on_jax(seed_net: gb.Network) -> None:
    prog = seed_net.compile("jax")
    params = prog.init(0)
    with pytest.raises(gb.InputError, match="missing input 'y'"):
        prog.loss(params, {"x": np.zeros((3, 5))})
    with pytest.raises(gb.InputError, match=r"input 'x' .* has shape \(3, 4\)"):
        prog.loss(params, {"x": np.zeros((3, 4)), "y": np.zeros((3, 2))})
    with pytest.raises(gb.InputError, match="devices=64, but JAX sees"):
        seed_net.compile("jax", devices=64)
    with pytest.raises(gb.InputError, match="numpy backend takes no option devices=2"):
        seed_net.compile("numpy", devices=2)


def test_graphbp_backend_variable_picks_the_default(
    seed_net: gb.Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHBP_BACKEND", "jax")
    assert seed_net.compile().backend.name == "jax"
    assert seed_net.compile("numpy").backend.name == "numpy"


SHARDED = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import json
    import jax
    import numpy as np
    from jax.sharding import Mesh
    import graphbp as gb

    assert jax.device_count() == 4
    net = gb.Network(gb.seed_network(6, 8, 2))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((42, 6)), "y": rng.standard_normal((42, 2))}
    mesh = Mesh(np.array(jax.devices()), ("data",))
    out = {}
    for label, devices in (("one", None), ("four", 4), ("mesh", mesh)):
        prog = net.compile("jax", "float32", devices=devices)
        # a batch of 8 rows is split 2 per device; each epoch's last batch (42 = 5*8 + 2)
        # does not split evenly and runs replicated
        params, history = gb.train(prog, prog.init(0), data, lr=0.01, epochs=3, batch_size=8,
                                   optimizer="adam")
        h1 = prog.forward(params, {"x": data["x"][:8]}, ["h1"])["h1"]
        loss, grads = prog.value_and_grad(params, data)
        out[label] = {
            "params": {k: np.asarray(v).tolist() for k, v in params.items()},
            "grads": {k: np.asarray(v).tolist() for k, v in grads.items()},
            "history": history,
            "param_devices": len(params["W1"].sharding.device_set),
            "h1_rows_per_device": h1.sharding.shard_shape(h1.shape)[0],
        }
    print(json.dumps(out))
    """
)


def test_sharded_training_equals_single_device_training(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, "-c", SHARDED],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    one = out["one"]
    assert one["param_devices"] == 1 and one["h1_rows_per_device"] == 8
    for label in ("four", "mesh"):
        sharded = out[label]
        assert sharded["param_devices"] == 4  # replicated on every device
        assert sharded["h1_rows_per_device"] == 2  # the batch is split four ways
        np.testing.assert_allclose(sharded["history"], one["history"], rtol=1e-6)
        for kind in ("params", "grads"):
            for name, value in one[kind].items():
                want = np.asarray(value)
                got = np.asarray(sharded[kind][name])
                assert np.max(np.abs(got - want)) <= 1e-6 * max(1.0, np.max(np.abs(want)))


def test_node_names_of_mixed_types_work_on_jax() -> None:
    """JAX cannot sort dict keys like 0 and "q"; graphbp keeps them out of JAX's pytrees."""
    g = nx.DiGraph(loss="L")
    g.add_node(0, op="param", shape=(3,), init="normal")
    g.add_node("q", op="param", shape=(3,), init="normal")
    g.add_node("x", op="input", shape=(None, 3))
    for node, op, operands in ((1, "mul", [0, "q"]), ("h", "mul", ["x", 1]), ("L", "sum", ["h"])):
        g.add_node(node, op=op)
        for i, a in enumerate(operands):
            g.add_edge(a, node, arg=i)
    net = gb.Network(g)
    data = {"x": np.random.default_rng(6).standard_normal((4, 3))}
    want = net.compile("numpy")
    prog = net.compile("jax")
    params = want.init(0)
    _, grads = prog.value_and_grad(params, data)
    for name, grad in want.value_and_grad(params, data)[1].items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-13)
    trained, _ = gb.train(prog, params, data, epochs=2, batch_size=2)
    assert set(trained) == {0, "q"}
