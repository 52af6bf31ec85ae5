"""Theory for plain regression and least squares, checked against gradient descent itself."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab import TrainConfig, fit, init_factors
from linlab.data import Dataset, synthetic
from linlab.stats import Stats
from linlab.theory import (
    auto_lr,
    bounds_from_spectrum,
    epochs_to_tol,
    heavy_ball_rate,
    hessian_spectrum,
    least_squares,
    loss_forecast,
    lr_bounds,
    momentum_lr,
    rank_floor,
    sharpness,
)

SEED_FLOOR = 248784.91  # width-1 floor on the seed data (sum reduction)


def gd(data, widths, lr, epochs, factors=None, **settings):
    """Full-batch GD with the numpy engine in float64, no early stop unless asked."""
    settings = {"tol": 0.0, "stall_window": 10**6, **settings}
    config = TrainConfig(widths=widths, lr=lr, epochs=epochs, **settings)
    return fit(data, config, factors=factors)


@pytest.fixture(scope="module")
def W0():
    return init_factors((10, 2), seed=0)[0]


@pytest.fixture(scope="module")
def ill():
    """Noisy, ill-conditioned data (κ(XᵀX) ≈ 100) with a rank-1 truth: L* > 0."""
    return synthetic(n=300, d=5, k=3, rank=1, noise=0.5, condition=100.0, seed=3)


# --- least squares -------------------------------------------------------------------

def test_seed_hessian_facts(seed_data):
    lam = hessian_spectrum(seed_data)
    assert lam.shape == (10,)
    assert 1643.8 <= lam.min() < 1643.9 and 2396.8 <= lam.max() < 2396.9
    b = lr_bounds(seed_data)
    assert f"{b.stable_lr:.3g}" == "0.000834" and f"{b.optimal_lr:.3g}" == "0.000495"
    mean = lr_bounds(seed_data, reduction="mean")
    assert mean.stable_lr == pytest.approx(b.stable_lr * 2000, rel=1e-12)  # s = 1/(n·k)


def test_least_squares_rows_and_stats_agree(ill):
    rows, stats = least_squares(ill), least_squares(Stats.of(ill.X, ill.Y))
    np.testing.assert_allclose(rows.coef, stats.coef, rtol=1e-9)
    assert rows.loss == pytest.approx(stats.loss, rel=1e-9) and rows.loss > 0
    assert rows.loss == pytest.approx(float(np.sum((ill.X @ rows.coef - ill.Y) ** 2)), rel=1e-12)
    assert least_squares(ill, reduction="mean").loss == pytest.approx(rows.loss / ill.Y.size, rel=1e-12)


def test_intercept_matches_augmented_lstsq(ill):
    Y = ill.Y + np.array([3.0, -1.0, 0.5])
    fit_ = least_squares((ill.X, Y), intercept=True)
    Xa = np.hstack([ill.X, np.ones((ill.n_samples, 1))])
    W, res, *_ = np.linalg.lstsq(Xa, Y, rcond=None)
    np.testing.assert_allclose(fit_.coef, W[:-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit_.intercept, W[-1], rtol=1e-9)
    assert fit_.loss == pytest.approx(res.sum(), rel=1e-9)
    from_stats = least_squares(Stats.of(ill.X, Y), intercept=True)
    np.testing.assert_allclose(from_stats.intercept, W[-1], rtol=1e-7)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 30), d=st.integers(1, 6), k=st.integers(1, 3), dup=st.booleans(),
       seed=st.integers(0, 10**6))
def test_least_squares_is_min_norm_pinv(n, d, k, dup, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
    if dup:
        X = np.hstack([X, X[:, :1]])  # rank-deficient: a repeated column
    expected = np.linalg.pinv(X) @ Y
    for data in ((X, Y), Stats.of(X, Y)):
        fit_ = least_squares(data)
        np.testing.assert_allclose(fit_.coef, expected, rtol=1e-6, atol=1e-8)
        assert fit_.rank == np.linalg.matrix_rank(X)
        assert fit_.loss == pytest.approx(np.sum((X @ expected - Y) ** 2), rel=1e-6, abs=1e-9)


# --- reduced rank --------------------------------------------------------------------

def test_seed_width1_floor_is_where_gd_stalls(seed_data):
    floor = rank_floor(seed_data, (10, 1, 2))
    assert floor.binding and floor.fitted_rank == 2 and floor.width == 1
    assert floor.loss == pytest.approx(SEED_FLOOR, abs=0.01)
    assert 0.14 < floor.share < 0.15
    run = fit(seed_data, TrainConfig(widths=(10, 1, 2), lr=1e-5, epochs=750))
    assert run.outcome == "stalled"
    assert run.final_loss == pytest.approx(floor.loss, rel=1e-9)
    assert not rank_floor(seed_data, (10, 5, 2)).binding


def test_rank_floor_reads_widths_as_configs_do(seed_data):
    assert rank_floor(seed_data, "10,1,2").loss == rank_floor(seed_data, 1).loss
    for bad in ("10,a,2", (10, 1.5, 2), (10,)):
        with pytest.raises(ValueError, match="widths="):
            rank_floor(seed_data, bad)


def test_bottleneck_with_bias_reaches_its_floor():
    data = synthetic(n=200, d=4, k=3, rank=3, noise=0.1, seed=1)
    data = Dataset(data.X, data.Y + np.array([2.0, -1.0, 0.5]))
    floor = rank_floor(data, (4, 1, 3), intercept=True)
    assert floor.binding and floor.gap > 1.0
    config = TrainConfig(widths=(4, 1, 3), bias=True, init="scaled", init_scale=0.3, lr=3e-4,
                         epochs=4000, tol=0.0, stall_rtol=1e-12, seed=2)
    run = fit(data, config)
    assert run.final_loss == pytest.approx(floor.loss, rel=1e-6)
    assert run.final_loss > floor.ls_loss + 0.9 * floor.gap


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), r=st.integers(1, 3))
def test_rank_floor_is_eckart_young(seed, r):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 4))
    floor = rank_floor((X, Y), r)
    Yhat = X @ np.linalg.lstsq(X, Y, rcond=None)[0]
    sv = np.linalg.svd(Yhat, compute_uv=False)
    assert floor.loss == pytest.approx(floor.ls_loss + np.sum(sv[r:] ** 2), rel=1e-9)
    assert np.linalg.matrix_rank(floor.coef) <= r
    assert floor.loss == pytest.approx(np.sum((X @ floor.coef - Y) ** 2), rel=1e-9)
    for _ in range(5):  # no rank-r matrix does better
        W = rng.standard_normal((5, r)) @ rng.standard_normal((r, 4))
        assert np.sum((X @ W - Y) ** 2) >= floor.loss * (1 - 1e-12)


# --- forecast and epochs to tol -----------------------------------------------------

@pytest.mark.parametrize("lr", [1e-5, 3e-4, 4.949691923300859e-4, 8e-4])
def test_forecast_matches_gd_epoch_by_epoch(seed_data, W0, lr):
    run = gd(seed_data, (10, 2), lr, 150, factors=[W0])
    forecast = loss_forecast(seed_data, W0, lr, 150)
    np.testing.assert_allclose(forecast, run.history, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_forecast_with_bias_rank_deficient_and_mean(reduction):
    base = synthetic(n=120, d=4, k=2, noise=0.3, condition=20.0, seed=5)
    X = np.hstack([base.X, base.X[:, :1] + base.X[:, 1:2]])  # rank 4 of 5: one direction never moves
    data = Dataset(X, base.Y + 1.5)
    lr = 0.9 * lr_bounds(data, reduction=reduction, intercept=True).stable_lr
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((5, 2)), rng.standard_normal(2)
    run = fit(data, TrainConfig(widths=(5, 2), bias=True, reduction=reduction, lr=lr, epochs=200, tol=0.0,
                                stall_window=10**6), factors=[W], biases=[b])
    forecast = loss_forecast(data, W, lr, 200, b0=b, reduction=reduction)
    np.testing.assert_allclose(forecast, run.history, rtol=1e-9)
    assert run.final_loss > least_squares(data, intercept=True, reduction=reduction).loss


@pytest.mark.parametrize("lr, tol", [(1e-5, 1e-4), (4.95e-4, 1e-4), (8e-4, 1e-2), (2e-4, 1.0)])
def test_epochs_to_tol_matches_gd(seed_data, W0, lr, tol):
    predicted = epochs_to_tol(seed_data, W0, lr, tol)
    run = fit(seed_data, TrainConfig(widths=(10, 2), lr=lr, tol=tol, epochs=5000), factors=[W0])
    assert run.outcome == "converged" and run.epochs_to_tol == predicted


@settings(max_examples=40, deadline=None)
@given(frac=st.floats(0.01, 1.03), log_tol=st.floats(-6, 4), seed=st.integers(0, 100))
def test_epochs_to_tol_is_first_forecast_below_tol(ill, frac, log_tol, seed):
    W = np.random.default_rng(seed).standard_normal((5, 3))
    lr, tol = frac * lr_bounds(ill).stable_lr, least_squares(ill).loss + 10.0**log_tol
    t = epochs_to_tol(ill, W, lr, tol)
    path = loss_forecast(ill, W, lr, 4000)
    hits = np.flatnonzero(path <= tol)
    if t is None:
        assert hits.size == 0
    elif t <= 4000:
        assert hits[0] == t
    else:
        assert hits.size == 0 and loss_forecast(ill, W, lr, t)[-1] <= tol


def test_epochs_to_tol_never(ill):
    W = np.zeros((5, 3))
    ls = least_squares(ill).loss
    assert epochs_to_tol(ill, W, 0.5 * lr_bounds(ill).stable_lr, 0.5 * ls) is None  # tol below L*
    assert epochs_to_tol(ill, W, 1.5 * lr_bounds(ill).stable_lr, ls * 1.01) is None  # diverges first
    with pytest.raises(ValueError, match="lr=-1"):
        epochs_to_tol(ill, W, -1, 1.0)
    with pytest.raises(ValueError, match=r"b0 has shape \(5,\); expected \(n_targets,\) = \(3,\)"):
        epochs_to_tol(ill, W, 0.5 * lr_bounds(ill).stable_lr, 1.0, b0=np.zeros(5))


# --- stability bound on both sides --------------------------------------------------

def test_lr_one_percent_around_the_bound(seed_data, W0):
    bound = lr_bounds(seed_data).stable_lr
    below = gd(seed_data, (10, 2), 0.99 * bound, 400, factors=[W0])
    assert below.outcome == "max_epochs" and below.final_loss < 1e-3 * below.history[0]
    assert np.all(np.diff(below.history) <= 1e-9 * below.history[:-1])  # never rises
    above = gd(seed_data, (10, 2), 1.01 * bound, 2000, factors=[W0])
    assert above.outcome == "diverged"
    forecast = loss_forecast(seed_data, W0, 1.01 * bound, 400)
    assert forecast[-1] > 1e3 * forecast[0]


# --- heavy ball ------------------------------------------------------------------------

def test_heavy_ball_settings(ill):
    lam = hessian_spectrum(ill)
    b = bounds_from_spectrum(lam)
    assert b.momentum_lr == pytest.approx(4 / (np.sqrt(b.lam_max) + np.sqrt(b.lam_min)) ** 2)
    assert heavy_ball_rate(b.momentum_lr, b.momentum, lam) == pytest.approx(b.momentum_rate, rel=1e-6)
    assert heavy_ball_rate(b.optimal_lr, 0.0, lam) == pytest.approx(b.rate, rel=1e-12)
    for lr, mu in [(b.momentum_lr, b.momentum), (0.7 * b.stable_lr, 0.3)]:  # vs the companion matrix
        radius = max(np.abs(np.linalg.eigvals([[1 + mu - lr * x, -mu], [1.0, 0.0]])).max() for x in lam)
        assert heavy_ball_rate(lr, mu, lam) == pytest.approx(radius, rel=1e-6)
    assert momentum_lr(lam, 0.9) == b.momentum_lr
    best = momentum_lr(lam, 0.2)  # below μ*: numeric, no grid point does better
    grid = np.linspace(0.01, 1.0, 400) * 2 * 1.2 / b.lam_max
    assert heavy_ball_rate(best, 0.2, lam) <= min(heavy_ball_rate(x, 0.2, lam) for x in grid) + 1e-9


def test_auto_lr_with_momentum_beats_plain_gd(ill):
    b, tol = lr_bounds(ill), least_squares(ill).loss + 1e-6
    config = TrainConfig(widths=(5, 3), lr="auto", epochs=3000, tol=tol, stall_window=10**6, seed=1)
    plain, heavy = fit(ill, config), fit(ill, config.replace(momentum=b.momentum))
    assert plain.lr == pytest.approx(b.optimal_lr) and heavy.lr == pytest.approx(b.momentum_lr)
    assert plain.outcome == heavy.outcome == "converged"
    assert heavy.epochs_to_tol < plain.epochs_to_tol / 3


# --- lr="auto" -------------------------------------------------------------------------

def test_auto_lr_rules(seed_data):
    cfg = TrainConfig(widths=(10, 2), lr="auto")
    f = init_factors(cfg.widths)
    assert auto_lr(seed_data, cfg, f) == pytest.approx(lr_bounds(seed_data).optimal_lr)
    huber = auto_lr(seed_data, cfg.replace(loss="huber"), f)
    assert huber == pytest.approx(2 * lr_bounds(seed_data).optimal_lr)
    deep = cfg.replace(widths=(10, 5, 2))
    fd = init_factors(deep.widths)
    assert auto_lr(seed_data, deep, fd) == pytest.approx(1 / sharpness(Stats.of(seed_data.X, seed_data.Y), fd))
    refused = [(cfg.replace(optimizer="adam"), "optimizer"), (deep.replace(loss="huber"), "squared"),
               (cfg.replace(momentum=0.9, nesterov=True), "nesterov"), (cfg.replace(loss="lp", p=1.5), "p >= 2")]
    for bad, match in refused:
        with pytest.raises(ValueError, match=match):
            auto_lr(seed_data, bad, fd if bad.depth > 1 else f)
    with pytest.raises(ValueError, match="saddle"):
        auto_lr(seed_data, deep.replace(widths=(10, 3, 3, 2)), init_factors((10, 3, 3, 2), "zeros"))


@pytest.mark.parametrize("settings_", [
    {}, {"batch_size": 100}, {"batch_size": 1, "reduction": "mean", "epochs": 60, "tol": 1e-6},
    {"loss": "huber"}, {"bias": True, "reduction": "mean", "tol": 1e-8},
])
def test_auto_lr_trains_plain_regression(seed_data, settings_):
    config = TrainConfig(**{"widths": (10, 2), "lr": "auto", "epochs": 2000, **settings_})
    run = fit(seed_data, config)
    assert run.outcome == "converged", run.message


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_mini_batch_auto_lr_contracts_on_every_batch_the_loop_makes(reduction):
    # 11 rows in batches of 10: the last holds one row, which with "mean" is the sharpest batch
    rng = np.random.default_rng(0)
    X = rng.standard_normal((11, 3)) * np.array([[5.0]] + [[1.0]] * 10)
    data = Dataset(X, X @ np.ones((3, 2)))
    config = TrainConfig(widths=(3, 2), lr="auto", batch_size=10, reduction=reduction)
    lr = auto_lr(data, config, init_factors(config.widths))
    for rows in (np.arange(10), np.arange(1, 11), np.array([0])):
        scale = 1.0 if reduction == "sum" else 1.0 / (len(rows) * 2)
        top = 2 * scale * np.linalg.eigvalsh(X[rows].T @ X[rows])[-1]
        assert 0 < lr * top <= 1 + 1e-12


def test_mini_batch_auto_lr_for_lp_bounds_every_batch_hessian():
    data = synthetic(n=200, d=4, k=1, seed=0, noise=0.5)
    config = TrainConfig(widths=(4, 1), lr="auto", loss="lp", p=4, reduction="mean", batch_size=1,
                         epochs=200, tol=0.0)
    W = init_factors(config.widths)[0]
    lr = auto_lr(data, config, [W])
    r = (data.X @ W - data.Y)[:, 0]
    sharpest = max(12 * r[i] ** 2 * data.X[i] @ data.X[i] for i in range(200))  # p(p−1)|r|^{p−2}‖x‖², m = 1
    assert 0 < lr * sharpest <= 1 + 1e-12
    run = fit(data, config)
    assert run.outcome != "diverged" and run.final_loss < 0.1 * run.history[0]


def test_auto_lr_lp_descends_monotonically(seed_data):
    # ℓ4's curvature vanishes with the residuals, so progress is sublinear, but never unstable
    run = fit(seed_data, TrainConfig(widths=(10, 2), loss="lp", lr="auto", epochs=500, tol=0.0))
    assert run.outcome == "max_epochs"
    assert np.all(np.diff(run.history) <= 0) and run.final_loss < 1e-4 * run.history[0]


def test_auto_lr_reaches_tol_in_the_forecast_epochs(seed_data, W0):
    run = fit(seed_data, TrainConfig(widths=(10, 2), lr="auto", epochs=100), factors=[W0])
    assert run.epochs_to_tol == epochs_to_tol(seed_data, W0, run.lr, 1e-4) <= 10


def test_deep_auto_lr_is_lowered_when_the_loss_rises(seed_data):
    run = fit(seed_data, TrainConfig(widths=(10, 5, 2), lr="auto", init="scaled", init_scale=0.1,
                                     epochs=400))
    changes = run.extra["lr_changes"]
    assert run.outcome == "converged" and changes
    assert all(c["to"] <= c["from"] / 2 for c in changes)
    assert run.lr == changes[-1]["to"]
    steady = fit(seed_data, TrainConfig(widths=(10, 1, 2), lr="auto", epochs=400))
    assert steady.outcome == "stalled" and "lr_changes" not in steady.extra  # rounding is no rise


@pytest.mark.parametrize("batch_size", [1, 7])
def test_deep_mini_batch_auto_lr_with_mean_reduction_is_stable(batch_size):
    # each batch's mean divides by its own m·k entries: the full data's sharpness is n/m times too low
    data = synthetic(n=200, d=4, k=2, seed=0, noise=0.5)
    config = TrainConfig(widths=(4, 3, 2), lr="auto", reduction="mean", batch_size=batch_size, epochs=30,
                         init="scaled", init_scale=0.3, tol=0.0)
    factors = init_factors(config.widths, "scaled", 0.3)
    smallest = 200 % batch_size or batch_size
    full = auto_lr(data, config.replace(batch_size=None), factors)
    assert auto_lr(data, config, factors) == pytest.approx(full * smallest / 200, rel=1e-12)
    run = fit(data, config)
    assert run.outcome != "diverged" and run.final_loss < 0.5 * run.history[0]


def test_deep_auto_lr_with_momentum_keeps_the_effective_step(seed_data):
    config = TrainConfig(widths=(10, 5, 2), lr="auto", momentum=0.9, epochs=1000)
    plain_lr = auto_lr(seed_data, config.replace(momentum=0.0), init_factors(config.widths))
    run = fit(seed_data, config)
    assert run.lr == pytest.approx(0.1 * plain_lr, rel=1e-6)
    assert run.outcome == "converged" and "lr_changes" not in run.extra


def test_theory_does_not_import_torch():
    code = "import sys, linlab.theory; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
