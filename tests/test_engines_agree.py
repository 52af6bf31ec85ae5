"""Agreement: every engine, from the same initial factors, follows the same trajectory."""

import numpy as np
import pytest

from linlab import TrainConfig, fit, init_factors, synthetic
from linlab.engines import make_engine

ENGINES = ["numpy", "autograd", "module"]
OPTIMIZERS = [
    dict(optimizer="sgd"),
    dict(optimizer="sgd", momentum=0.9),
    dict(optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=1e-3),
    dict(optimizer="adam", lr=0.02),
    dict(optimizer="adam", lr=0.02, weight_decay=1e-2),
    dict(optimizer="adamw", lr=0.02, weight_decay=1e-2),
    dict(optimizer="rmsprop", lr=0.005),
    dict(optimizer="adagrad", lr=0.1),
]


@pytest.fixture(scope="module")
def data():
    return synthetic(n=64, d=5, k=3, noise=0.1, seed=3)


def run(data, engine, widths, epochs=100, **settings):
    base = dict(widths=widths, engine=engine, lr=2e-4, epochs=epochs, tol=0.0, stall_rtol=0.0)
    config = TrainConfig(**{**base, **settings})
    factors = init_factors(widths, "scaled", 0.5, seed=7)
    return fit(data, config, factors=factors)


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# NumPy and torch round their products differently (summation order, FMA): each epoch's
# inner products of length m <= 64 (the rows) differ by up to ~2m·u relative, u = 2^-53,
# i.e. 1.4e-14; stable GD (lr below 2/λmax) adds these up over 100 epochs to ~1.4e-12, and
# 1e-9 leaves a factor ~700 for their growth through the deeper products: far above
# rounding, far below what a wrong gradient gives (a difference of order lr·‖∇‖ per epoch).
ROUNDING = 100 * 2 * 64 * 2.0**-53  # epochs × 2m·u
RTOL = 700 * ROUNDING  # ≈ 1e-9


def assert_same(r, ref, rtol=RTOL):
    assert r.outcome == ref.outcome and r.epochs == ref.epochs
    assert rel(r.history, ref.history) < rtol
    for W, V in zip(r.factors, ref.factors, strict=True):
        assert rel(W, V) < rtol


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("widths", [(5, 3), (5, 2, 3), (5, 4, 1, 3), (5, 6, 4, 2, 3)])
@pytest.mark.parametrize("engine", ["autograd", "module"])
def test_sgd_engines_agree_with_numpy(data, engine, widths, reduction):
    lr = 2e-4 if reduction == "sum" else 0.05
    ref = run(data, "numpy", widths, reduction=reduction, lr=lr)
    assert_same(run(data, engine, widths, reduction=reduction, lr=lr), ref)


@pytest.mark.parametrize("settings", OPTIMIZERS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_every_optimizer_agrees_across_engines(data, settings):
    runs = {e: run(data, e, (5, 4, 3), **settings) for e in ENGINES}
    assert_same(runs["autograd"], runs["module"])
    assert_same(runs["numpy"], runs["module"])


@pytest.mark.parametrize("loss", [dict(loss="lp", p=4.0), dict(loss="huber", delta=0.5), dict(loss="lp", p=1.5)])
def test_other_losses_agree(data, loss):
    runs = {e: run(data, e, (5, 2, 3), lr=1e-4, **loss) for e in ENGINES}
    assert_same(runs["numpy"], runs["module"])
    assert_same(runs["autograd"], runs["module"])


@pytest.mark.parametrize("schedule", [dict(schedule="step", step_size=7, gamma=0.5),
                                      dict(schedule="exponential", gamma=0.98), dict(schedule="cosine")])
def test_schedules_agree(data, schedule):
    runs = {e: run(data, e, (5, 3, 3), epochs=40, **schedule) for e in ENGINES}
    assert_same(runs["numpy"], runs["module"])


def test_minibatch_and_bias_agree(data):
    settings = dict(batch_size=16, bias=True, momentum=0.5, epochs=30)
    runs = {e: run(data, e, (5, 4, 3), **settings) for e in ENGINES}
    assert_same(runs["numpy"], runs["module"])
    assert_same(runs["autograd"], runs["module"])
    assert all(np.abs(b).max() > 0 for b in runs["numpy"].biases)


def test_minibatch_order_depends_on_seed_only(data):
    a = run(data, "numpy", (5, 3), batch_size=10, epochs=5, seed=1)
    b = run(data, "numpy", (5, 3), batch_size=10, epochs=5, seed=1)
    c = run(data, "numpy", (5, 3), batch_size=10, epochs=5, seed=2)
    assert np.array_equal(a.history, b.history)
    assert not np.array_equal(a.history, c.history)


def test_float32_close_to_float64(data):
    ref = run(data, "numpy", (5, 3, 3), epochs=50)
    for engine in ENGINES:
        r = run(data, engine, (5, 3, 3), epochs=50, dtype="float32")
        assert rel(r.history, ref.history) < 1e-4


def test_engine_rejects_mismatched_widths(data):
    with pytest.raises(ValueError, match="need 6 features"):
        fit(data, TrainConfig(widths=(6, 3)))
    with pytest.raises(ValueError, match="initial factors have shapes"):
        make_engine("numpy", data, TrainConfig(widths=(5, 3)), [np.zeros((5, 2))])


@pytest.mark.parametrize("engine", [*ENGINES, "batched"])
@pytest.mark.parametrize("biases", [[np.zeros(3), np.zeros(4)], [np.zeros(1), np.zeros(1)]])
def test_engine_rejects_biases_of_the_wrong_shape(data, engine, biases):
    config = TrainConfig(widths=(5, 4, 3), bias=True, engine=engine)
    with pytest.raises(ValueError, match=r"initial biases have shapes .*need \[\(4,\), \(3,\)\]"):
        make_engine(engine, data, config, init_factors(config.widths), biases)
