"""Training: the update rules exactly, minibatching, and the embedded default end to end."""

from __future__ import annotations

import numpy as np
import pytest

import graphbp as gb
from graphbp.datasets import least_squares, load_example, r2_score, split
from graphbp.errors import InputError
from graphbp.optim import SGD, Adam, Momentum


def _data(n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    return {"x": x, "y": np.sin(x.sum(axis=1, keepdims=True))}


def test_one_full_batch_sgd_step_is_w_minus_lr_grad() -> None:
    prog = gb.Network(gb.seed_network(3, 4)).compile()
    p0, data = prog.init(0), _data()
    _, grads = prog.value_and_grad(p0, data)
    p1, history = gb.train(prog, p0, data, lr=0.01, epochs=1, batch_size=20, progress=False)
    for k in p0:  # equal up to the order rows are summed in (train shuffles them)
        np.testing.assert_allclose(p1[k], p0[k] - 0.01 * grads[k], rtol=1e-13, atol=1e-16)
    assert len(history) == 1


def test_train_does_not_modify_the_given_parameters() -> None:
    prog = gb.Network(gb.seed_network(3, 4)).compile()
    p0 = prog.init(0)
    copy = {k: v.copy() for k, v in p0.items()}
    gb.train(prog, p0, _data(), epochs=2, batch_size=4, progress=False)
    assert all(np.array_equal(p0[k], copy[k]) for k in p0)


@pytest.mark.parametrize("opt", [SGD(0.1), Momentum(0.1), Adam(0.1)])
def test_in_place_and_pure_updates_agree(opt: SGD | Momentum | Adam) -> None:
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}
    pure, inplace = dict(params), {k: v.copy() for k, v in params.items()}
    s_pure, s_in = opt.init(pure), opt.init(inplace)
    for _ in range(3):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        pure, s_pure = opt.update(pure, grads, s_pure)
        inplace, s_in = opt.update_(inplace, grads, s_in)
    for k in params:
        np.testing.assert_allclose(inplace[k], pure[k], rtol=1e-14)


def test_momentum_and_adam_follow_their_formulas() -> None:
    p, g = {"w": np.array([1.0])}, {"w": np.array([0.5])}
    m = Momentum(0.1, momentum=0.9)
    p1, v = m.update(p, g, m.init(p))
    p2, _ = m.update(p1, g, v)
    assert p2["w"][0] == pytest.approx(1.0 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 + 0.5))
    a = Adam(0.1)
    q1, _ = a.update(p, g, a.init(p))
    assert q1["w"][0] == pytest.approx(1.0 - 0.1, rel=1e-6)  # first Adam step moves by ~lr


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.02), ("momentum", 0.005), ("adam", 0.01)])
def test_every_optimizer_lowers_the_loss(optimizer: str, lr: float) -> None:
    prog = gb.Network(gb.seed_network(3, 8)).compile()
    _, history = gb.train(
        prog,
        prog.init(0),
        _data(64),
        lr=lr,
        epochs=60,
        batch_size=16,
        optimizer=optimizer,
        progress=False,
    )
    assert history[-1] < 0.6 * history[0]


def test_each_epoch_visits_every_row_once() -> None:
    """With lr tiny, the epoch's summed minibatch SSE equals the full-data SSE."""
    prog = gb.Network(gb.seed_network(3, 4)).compile()
    p0, data = prog.init(0), _data(23)
    full = float(prog.loss(p0, data))
    _, history = gb.train(prog, p0, data, lr=1e-12, epochs=1, batch_size=5, progress=False)
    assert history[0] * 5 == pytest.approx(full, rel=1e-9)  # 5 batches: 5+5+5+5+3 rows


def test_bad_training_arguments() -> None:
    prog = gb.Network(gb.seed_network(3, 4)).compile()
    p0 = prog.init()
    with pytest.raises(InputError, match=r"no array for input\(s\) \['y'\]"):
        gb.train(prog, p0, {"x": np.ones((4, 3))}, progress=False)
    with pytest.raises(
        InputError, match=r"input 'x' has 4 rows \(shape \(4, 3\)\) but input 'y' has 5"
    ):
        gb.train(prog, p0, {"x": np.ones((4, 3)), "y": np.ones((5, 1))}, progress=False)
    with pytest.raises(InputError, match=r"params has no value for parameter\(s\) \['b1'\]"):
        gb.train(prog, {k: v for k, v in p0.items() if k != "b1"}, _data(), progress=False)
    with pytest.raises(InputError, match="unknown optimizer 'sgdd'"):
        gb.train(prog, p0, _data(), optimizer="sgdd", progress=False)
    with pytest.raises(InputError, match="learning rate must be positive"):
        gb.train(prog, p0, _data(), lr=0, progress=False)


def test_default_split_is_standardised_with_training_statistics_only() -> None:
    s = split(load_example("diabetes"), 0.2, seed=0)
    assert len(s.x_train) + len(s.x_test) == 442 and len(s.x_test) == 88
    np.testing.assert_allclose(s.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(s.x_train.std(axis=0), 1, atol=1e-12)
    assert abs(s.x_test.mean()) > 1e-6  # the test rows keep their own offset
    _, ls_test = least_squares(s)
    assert 0.3 < r2_score(s.y_test, ls_test) < 0.7
