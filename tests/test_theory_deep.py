"""Theory of deep linear networks: curvature, balancedness, Arora's and Saxe's dynamics."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit
from linlab.engines.numpy_engine import backward, forward
from linlab.models import end_to_end, init_factors
from linlab.stats import Stats
from linlab.theory.deep import (
    balancedness,
    end_to_end_trajectory,
    end_to_end_update,
    gradient,
    hessian,
    hessian_vector_product,
    layer_balancedness,
    network_loss,
    sharpness,
    stability_lr,
)
from linlab.theory.saxe import (
    mode_strengths,
    saxe_dataset,
    saxe_factors,
    saxe_tau,
    saxe_time_to_learn,
    saxe_trajectory,
    target_modes,
    whiten,
)


def _problem(widths, seed, bias=False, n=20):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1]))
    factors = [rng.standard_normal((a, b)) for a, b in zip(widths[:-1], widths[1:])]
    biases = [rng.standard_normal(b) for b in widths[1:]] if bias else None
    return X, Y, Stats.of(X, Y), factors, biases


def _long_run(widths, lr, epochs, reduction="sum", **kw):
    # never stop early: the trajectory itself is compared
    return TrainConfig(widths=widths, lr=lr, epochs=epochs, tol=0.0, stall_window=10**6,
                       reduction=reduction, **kw)


def _fit_path(data, config, factors, record):
    """Run the numpy engine and record `record(factors)` after every update."""
    out = [record(factors)]
    fit(data, config, factors=factors, callbacks=(lambda e: out.append(record(e.engine.params()[0])),))
    return np.array(out)


widths_strategy = st.lists(st.integers(1, 4), min_size=2, max_size=5).map(tuple)


# ---------------------------------------------------------------- gradient and Hessian


@settings(max_examples=30, deadline=None)
@given(widths=widths_strategy, seed=st.integers(0, 10**6), bias=st.booleans(),
       reduction=st.sampled_from(["sum", "mean"]))
def test_gradient_and_loss_agree_with_backprop_on_the_data(widths, seed, bias, reduction):
    X, Y, s, factors, biases = _problem(widths, seed, bias)
    hs = forward(X, factors, biases)
    R = hs[-1] - Y
    c = 1.0 / R.size if reduction == "mean" else 1.0
    gW, gb = backward(hs, 2.0 * c * R, factors, bias)
    ours = gradient(s, factors, reduction, biases)
    assert len(ours) == len(gW) + len(gb or [])
    for g, ref in zip(ours, gW + (gb or [])):
        np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-9 * (1 + np.abs(ref).max()))
    assert network_loss(s, factors, reduction, biases) == pytest.approx(c * np.sum(R * R), rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(widths=widths_strategy, seed=st.integers(0, 10**6), bias=st.booleans(),
       reduction=st.sampled_from(["sum", "mean"]))
def test_hessian_vector_product_is_the_derivative_of_the_gradient(widths, seed, bias, reduction):
    _, _, s, factors, biases = _problem(widths, seed, bias)
    params = factors + (biases or [])
    rng = np.random.default_rng(seed + 1)
    V = [rng.standard_normal(p.shape) for p in params]
    hv = hessian_vector_product(s, factors, V, reduction, biases)
    eps = 1e-6

    def grad_at(e):
        moved = [p + e * v for p, v in zip(params, V)]
        return gradient(s, moved[: len(factors)], reduction, moved[len(factors):] if bias else None)

    # the gradient is polynomial: central differences err by O(eps²) only
    for h, plus, minus in zip(hv, grad_at(eps), grad_at(-eps)):
        fd = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-6 * (1 + max(np.abs(x).max() for x in hv)))
    # symmetry: ⟨U, HV⟩ = ⟨V, HU⟩
    U = [rng.standard_normal(p.shape) for p in params]
    hu = hessian_vector_product(s, factors, U, reduction, biases)
    uhv, vhu = sum(np.sum(a * b) for a, b in zip(U, hv)), sum(np.sum(a * b) for a, b in zip(V, hu))
    assert uhv == pytest.approx(vhu, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_full_hessian_matches_torch_autograd(bias, reduction):
    torch = pytest.importorskip("torch")
    widths = (3, 2, 4, 2)
    X, Y, s, factors, biases = _problem(widths, seed=7, bias=bias)
    params = factors + (biases or [])
    sizes = [p.size for p in params]
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def loss(flat):
        parts = [t.reshape(p.shape) for t, p in zip(torch.split(flat, sizes), params)]
        h = Xt
        for j, W in enumerate(parts[: len(factors)]):
            h = h @ W + (parts[len(factors) + j] if bias else 0)
        r = h - Yt
        return (r * r).mean() if reduction == "mean" else (r * r).sum()

    flat = torch.from_numpy(np.concatenate([p.ravel() for p in params]))
    H_torch = torch.autograd.functional.hessian(loss, flat).numpy()
    H = hessian(s, factors, reduction, biases)
    np.testing.assert_allclose(H, H_torch, rtol=1e-9, atol=1e-9 * np.abs(H_torch).max())
    assert sharpness(s, factors, reduction, biases) == pytest.approx(np.linalg.eigvalsh(H_torch)[-1], rel=1e-8)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_depth_one_sharpness_is_twice_the_top_eigenvalue_of_xtx(seed_data, reduction):
    s = Stats.of(seed_data.X, seed_data.Y)  # 20 parameters: the Lanczos path
    c = 1.0 / (s.n * s.n_targets) if reduction == "mean" else 1.0
    lam = np.linalg.eigvalsh(s.A)[-1]
    W = np.random.default_rng(0).standard_normal((10, 2))
    assert sharpness(s, [W], reduction) == pytest.approx(2 * c * lam, rel=1e-9)
    assert stability_lr(s, [W], reduction) == pytest.approx(1 / (c * lam), rel=1e-9)


def test_lanczos_agrees_with_the_dense_spectrum_on_a_larger_network():
    widths = (8, 12, 10, 6)  # 96 + 120 + 60 = 276 parameters
    _, _, s, factors, _ = _problem(widths, seed=3, n=40)
    factors = [0.5 * W for W in factors]
    H = hessian(s, factors)
    assert H.shape == (276, 276)
    evals = np.linalg.eigvalsh(H)
    assert evals[0] < 0 < evals[-1]  # not a minimum: the top algebraic eigenvalue is asked for
    assert sharpness(s, factors) == pytest.approx(evals[-1], rel=1e-8)


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_depth_one_gd_is_stable_exactly_below_the_stability_lr(factor):
    data = synthetic(n=60, d=4, k=2, condition=5.0, seed=1)
    s = Stats.of(data.X, data.Y)
    W0 = np.zeros((4, 2))
    lr = factor * stability_lr(s, [W0])
    r = fit(data, _long_run((4, 2), lr, 400), factors=[W0])
    if factor < 1:
        assert r.outcome == "max_epochs" and r.history[-1] < 1e-3 * r.history[0]
    else:
        assert r.outcome == "diverged"


def _balanced_minimum(s, hidden):
    # a global minimum of depth 2: P = A⁻¹C split evenly along its SVD
    U, sv, Vt = np.linalg.svd(np.linalg.solve(s.A, s.C), full_matrices=False)
    root = np.sqrt(sv[:hidden])
    return [U[:, :hidden] * root, root[:, None] * Vt[:hidden]]


@pytest.mark.parametrize("factor, grows", [(0.9, False), (1.1, True)])
def test_gd_leaves_a_minimum_exactly_when_lr_exceeds_two_over_sharpness(factor, grows):
    data = synthetic(n=50, d=4, k=3, seed=2)
    s = Stats.of(data.X, data.Y)
    star = _balanced_minimum(s, 3)
    assert max(np.abs(g).max() for g in gradient(s, star)) < 1e-9
    H = hessian(s, star)
    top = np.linalg.eigh(H)[1][:, -1]
    lr = factor * stability_lr(s, star)
    split = np.cumsum([W.size for W in star])[:-1]
    factors = [W + 1e-7 * v.reshape(W.shape) for W, v in zip(star, np.split(top, split))]
    distance = [np.linalg.norm(end_to_end(factors) - end_to_end(star))]
    for _ in range(30):
        factors = [W - lr * g for W, g in zip(factors, gradient(s, factors))]
        distance.append(np.linalg.norm(end_to_end(factors) - end_to_end(star)))
    # along the top eigenvector the error is multiplied by |1 − lr·λ| = 1.2 or 0.8 per step
    ratio = distance[-1] / distance[0]
    assert (ratio > 100) if grows else (ratio < 1e-2)


def test_curvature_rejects_bad_inputs():
    _, _, s, factors, _ = _problem((3, 2, 2), seed=0)
    with pytest.raises(ValueError, match="reduction='avg'"):
        sharpness(s, factors, "avg")
    with pytest.raises(ValueError, match="must chain from 3 features to 2 targets"):
        gradient(s, [np.ones((3, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="biases have shapes"):
        gradient(s, factors, biases=[np.zeros(2)])
    with pytest.raises(ValueError, match="direction has shapes"):
        hessian_vector_product(s, factors, [np.ones((3, 2))])
    with pytest.raises(ValueError, match="iters=0"):
        sharpness(s, factors, iters=0)


def test_linlab_theory_never_imports_torch():
    code = ("import sys, linlab.theory, linlab.theory.deep, linlab.theory.saxe; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- balancedness


def test_balancedness_of_balanced_and_unbalanced_factors():
    assert balancedness(init_factors((6, 5, 4, 3), "balanced", 0.5, seed=1)) < 1e-12
    assert balancedness([np.ones((3, 2))]) == 0.0 and layer_balancedness([np.ones((3, 2))]) == []
    W1, W2 = init_factors((4, 3, 2), "balanced", 0.5, seed=1)
    gaps = layer_balancedness([3 * W1, W2 / 3])  # same product, no longer balanced
    expected = np.linalg.norm(9 * W1.T @ W1 - W2 @ W2.T / 9)
    assert gaps == [pytest.approx(expected)] and expected > 1.0


def test_gradient_descent_conserves_balancedness_up_to_order_lr():
    data = synthetic(n=80, d=5, k=3, seed=4)
    widths = (5, 4, 4, 3)
    f0 = init_factors(widths, "scaled", 0.5, seed=0)  # unbalanced on purpose
    lam = np.linalg.eigvalsh(Stats.of(data.X, data.Y).A)[-1]

    def gaps(f):
        return np.array([a.T @ a - b @ b.T for a, b in zip(f[:-1], f[1:])])

    drift, moved = [], []
    for frac in (0.004, 0.002):  # the same time span lr·epochs, at two step sizes
        r = fit(data, _long_run(widths, frac / lam, int(2 / frac)), factors=f0)
        drift.append(np.linalg.norm(gaps(r.factors) - gaps(f0)))
        moved.append(np.linalg.norm(r.factors[1].T @ r.factors[1] - f0[1].T @ f0[1]))
    assert min(moved) > 1.0  # the factors themselves travel far ...
    assert drift[0] < 0.02 * moved[0]  # ... while their differences stay put
    assert 1.7 < drift[0] / drift[1] < 2.3  # O(η²) a step, O(η) over a fixed span


# ---------------------------------------------------------------- Arora et al. 2018


def test_end_to_end_update_at_depth_one_is_plain_gradient_descent():
    rng = np.random.default_rng(0)
    W, G = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(end_to_end_update(W, G, 1, 0.1), W - 0.1 * G, rtol=0, atol=1e-15)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(1, 5), h=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_depth_two_update_is_factor_gd_to_first_order_exactly(d, h, k, seed):
    # balanced W1, W2: (W1 − ηGW2ᵀ)(W2 − ηW1ᵀG) = end-to-end update + η² G W2ᵀ W1ᵀ G
    W1, W2 = init_factors((d, h, k), "balanced", 1.0, seed=seed)
    G, lr = np.random.default_rng(seed).standard_normal((d, k)), 0.01
    factor_step = (W1 - lr * G @ W2.T) @ (W2 - lr * W1.T @ G)
    expected = end_to_end_update(W1 @ W2, G, 2, lr) + lr**2 * G @ W2.T @ W1.T @ G
    np.testing.assert_allclose(factor_step, expected, atol=1e-10 * (1 + np.abs(factor_step).max()))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_end_to_end_trajectory_tracks_factor_gd_from_balanced_init(depth):
    data = synthetic(n=100, d=5, k=3, condition=4.0, seed=3)
    s = Stats.of(data.X, data.Y)
    widths = (5,) + (4,) * (depth - 1) + (3,)
    f0 = init_factors(widths, "balanced", 0.3, seed=0)
    lam, scale = np.linalg.eigvalsh(s.A)[-1], np.linalg.norm(data.W_true, 2) ** (2 - 2 / depth)
    errors = []
    for frac in (0.02, 0.01):  # the same time span, two step sizes
        lr, epochs = frac / (lam * scale), int(3 / frac)
        engine = _fit_path(data, _long_run(widths, lr, epochs), f0, end_to_end)
        path = end_to_end_trajectory(s, end_to_end(f0), depth, lr, epochs)
        assert np.abs(engine[-1] - engine[0]).max() > 0.3  # it learned something
        errors.append(np.linalg.norm(engine - path.W, axis=(1, 2)).max() / np.linalg.norm(data.W_true))
    assert errors[0] < 1e-2
    assert 1.7 < errors[0] / errors[1] < 2.3  # first order in η
    # from unbalanced factors with the same product the formula no longer holds
    W1, *rest = f0
    unbalanced = [3.0 * W1] + rest[:-1] + [rest[-1] / 3.0]
    lr, epochs = 0.02 / (lam * scale), 150
    engine = _fit_path(data, _long_run(widths, lr, epochs), unbalanced, end_to_end)
    path = end_to_end_trajectory(s, end_to_end(unbalanced), depth, lr, epochs)
    assert np.linalg.norm(engine - path.W, axis=(1, 2)).max() / np.linalg.norm(data.W_true) > 10 * errors[0]


def test_end_to_end_trajectory_history_and_errors():
    s = Stats.of(np.eye(3), np.diag([3.0, 2.0, 1.0]))
    path = end_to_end_trajectory(s, 0.1 * np.eye(3), 2, 0.3, 400, reduction="mean")
    assert path.W.shape == (401, 3, 3) and path.history.shape == (401,)
    assert path.history[-1] < 1e-8 < path.history[0]
    assert path.history[0] == pytest.approx(network_loss(s, [0.1 * np.eye(3)], "mean"))
    blown = end_to_end_trajectory(s, 0.1 * np.eye(3), 2, 50.0, 20)  # far past stability
    assert not np.isfinite(blown.history[-1]) and np.isfinite(blown.history[0])
    with pytest.raises(ValueError, match="depth=0"):
        end_to_end_update(np.eye(2), np.eye(2), 0, 0.1)
    with pytest.raises(ValueError, match="lr=-1"):
        end_to_end_update(np.eye(2), np.eye(2), 2, -1)
    with pytest.raises(ValueError, match="epochs=-1"):
        end_to_end_trajectory(s, np.eye(3), 2, 0.1, -1)


# ---------------------------------------------------------------- Saxe et al. 2014

STRENGTHS = [3.0, 2.0, 1.0, 0.5]


def _saxe_problem(seed=1):
    data = saxe_dataset(STRENGTHS, n=64, d=5, k=4, seed=seed)
    return data, Stats.of(data.X, data.Y)


def test_saxe_data_is_whitened_with_the_requested_modes():
    data, s = _saxe_problem()
    np.testing.assert_allclose(s.A / s.n, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(target_modes(s)[1], STRENGTHS, atol=1e-12)
    np.testing.assert_allclose(mode_strengths(data.W_true, s), STRENGTHS, atol=1e-12)
    raw = synthetic(n=120, d=4, k=2, condition=20.0, seed=5)
    w = whiten(raw)
    np.testing.assert_allclose(w.X.T @ w.X / 120, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(w.X @ w.W_true, raw.X @ raw.W_true, atol=1e-10)
    with pytest.raises(ValueError, match="linearly dependent"):
        whiten(synthetic(n=3, d=4, k=1, seed=0))
    with pytest.raises(ValueError, match="need d, k >= 4"):
        saxe_dataset(STRENGTHS, d=3)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("depth, u0", [(2, 1e-3), (3, 0.05)])
def test_gd_mode_strengths_follow_saxe_dynamics(reduction, depth, u0):
    data, s = _saxe_problem()
    widths = (5,) + (6,) * (depth - 1) + (4,)
    f0 = saxe_factors(s, widths, u0, seed=2)
    np.testing.assert_allclose(mode_strengths(end_to_end(f0), s), u0, rtol=1e-10)
    errors = []
    for tau in (100.0, 200.0):  # 1/τ = 2cnη: the same curves at two step sizes
        lr = 1 / (2 * 64 * tau) if reduction == "sum" else 4 / (2 * tau)
        assert saxe_tau(lr, 64, 4, reduction) == pytest.approx(tau)
        epochs = int(12 * tau) if depth == 2 else int(6 * tau)
        gd = _fit_path(data, _long_run(widths, lr, epochs, reduction), f0,
                       lambda f: mode_strengths(end_to_end(f), s))
        theory = saxe_trajectory(STRENGTHS, u0, lr, epochs, n=64, n_targets=4, reduction=reduction, depth=depth)
        errors.append((np.abs(gd - theory) / STRENGTHS).max())  # relative to each mode's s
        # the sigmoid's midpoint: GD crosses s/2 within 2% of the predicted epoch
        t_half = saxe_time_to_learn(STRENGTHS, u0, lr, n=64, n_targets=4, reduction=reduction, depth=depth)
        crossed = np.argmax(gd >= 0.5 * np.array(STRENGTHS), axis=0)
        np.testing.assert_allclose(crossed, t_half, rtol=0.02)
        assert np.all(np.diff(crossed) > 0)  # stronger modes first
        np.testing.assert_allclose(gd[-1], STRENGTHS, rtol=0.05)  # every mode learned
    assert errors[0] < 0.03  # within 3% of s at every epoch, for every mode
    assert 1.6 < errors[0] / errors[1] < 2.4  # discrete GD → gradient flow as η → 0


def test_modes_are_learned_strongest_first_from_random_small_balanced_init():
    data, s = _saxe_problem(seed=3)
    widths = (5, 8, 4)
    f0 = init_factors(widths, "balanced", 1e-3, seed=5)  # not aligned with the modes
    lr = 1 / (2 * 64 * 100.0)
    U, _, Vt = target_modes(s)
    gd = _fit_path(data, _long_run(widths, lr, 1500), f0, lambda f: np.abs(U.T @ end_to_end(f) @ Vt.T))
    crossed = [int(np.argmax(gd[:, i, i] >= 0.5 * STRENGTHS[i])) for i in range(4)]
    assert 0 < crossed[0] < crossed[1] < crossed[2] < crossed[3]
    # s·t½ ≈ (τ/2)·ln(s/u0): the strength times the time to learn varies only logarithmically
    products = np.array(STRENGTHS) * crossed
    assert products.max() / products.min() < 2.0
    np.testing.assert_allclose(np.diag(gd[-1]), STRENGTHS, rtol=0.02)


@settings(max_examples=25, deadline=None)
@given(s=st.floats(0.1, 5.0), ratio=st.floats(1e-4, 0.2), tau=st.floats(50.0, 200.0))
def test_depth_two_closed_form_solves_the_mode_ode(s, ratio, tau):
    u0 = ratio * s  # a small start, below s/2
    lr = 1 / (2 * tau)  # n = 1
    t_half = saxe_time_to_learn(s, u0, lr)
    assert t_half == pytest.approx(tau / (2 * s) * np.log(s / u0 - 1), rel=1e-12)
    epochs = int(2 * t_half) + 2
    u = saxe_trajectory(s, u0, lr, epochs)
    assert u[0] == pytest.approx(u0, rel=1e-12)
    t = np.arange(1, epochs)
    du = (u[2:] - u[:-2]) / 2  # dt = 1 epoch, small against τ/s
    np.testing.assert_allclose(du, 2 * u[t] * (s - u[t]) / tau, rtol=0.02, atol=1e-9 * s)
    # a flow: one epoch from u(t) lands on u(t + 1)
    np.testing.assert_allclose(saxe_trajectory(s, u[t], lr, 1)[1], u[t + 1], rtol=1e-10)
    i = int(t_half)  # u rises through s/2 between floor and ceil of t½
    assert u[i] <= s / 2 <= u[i + 1]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_trajectory_and_time_to_learn_agree_at_every_depth(depth):
    s, u0, lr = np.array([2.0, 0.7]), 0.02, 1 / (2 * 100.0)
    t_fraction = saxe_time_to_learn(s, u0, lr, fraction=0.8, depth=depth)
    u = saxe_trajectory(s, u0, lr, int(t_fraction.max()) + 2, depth=depth)
    for i in range(2):
        # between epochs the curve is smooth: interpolate u at t_fraction
        assert np.interp(t_fraction[i], np.arange(len(u)), u[:, i]) == pytest.approx(0.8 * s[i], rel=1e-3)
    if depth > 1:  # depth 1 learns every mode at the same rate 1/τ
        assert t_fraction[0] < t_fraction[1]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_saxe_trajectory_of_zero_epochs_is_the_start(depth):
    u = saxe_trajectory([2.0, 0.5], [0.01, 0.02], lr=1e-3, epochs=0, depth=depth)
    assert u.shape == (1, 2)
    np.testing.assert_allclose(u[0], [0.01, 0.02], rtol=1e-14)


@pytest.mark.parametrize("widths", [(2,), (2, 0, 2), "2,a,2"])
def test_saxe_factors_name_bad_widths(widths):
    ds = saxe_dataset([2.0, 0.5])
    with pytest.raises(ValueError, match="widths="):
        saxe_factors(Stats.of(ds.X, ds.Y), widths, 1e-3)


def test_saxe_limits_and_errors():
    u = saxe_trajectory([0.0, 1e-9], 0.01, lr=0.5, epochs=50)  # τ = 1: no target, the mode decays
    np.testing.assert_allclose(u[:, 0], 0.01 / (1 + 2 * 0.01 * np.arange(51)), rtol=1e-12)
    np.testing.assert_allclose(u[:, 1], u[:, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="u0="):
        saxe_trajectory(1.0, 0.0, 0.1, 10)
    with pytest.raises(ValueError, match="depth=0"):
        saxe_trajectory(1.0, 0.1, 0.1, 10, depth=0)
    with pytest.raises(ValueError, match="must lie below fraction"):
        saxe_time_to_learn(1.0, 0.6, 0.1)
    with pytest.raises(ValueError, match="reduction='avg'"):
        saxe_tau(0.1, 10, reduction="avg")


def test_sharpness_at_a_zero_hessian_and_at_a_non_finite_point():
    stats = Stats.of(np.random.default_rng(0).standard_normal((20, 6)), np.ones((20, 2)))
    zeros = [np.zeros((6, 3)), np.zeros((3, 3)), np.zeros((3, 2))]  # depth 3 at 0: the Hessian is 0
    assert sharpness(stats, zeros) == 0.0
    with pytest.raises(ValueError, match="needs finite factors"):
        sharpness(stats, [np.full((6, 3), np.inf), np.zeros((3, 2))])


@pytest.mark.parametrize("kwargs, reason", [
    ({"widths": (6, 4, 2), "loss": "huber"}, 'needs loss="squared"'),
    ({"widths": (6, 3, 3, 2), "init": "zeros"}, "saddle"),
])
def test_advise_without_an_auto_lr_rule_still_gives_its_other_numbers(kwargs, reason):
    from linlab.theory import advise

    data = synthetic(n=40, d=6, k=2, seed=0)
    a = advise(data, **kwargs)
    assert a.lr["recommended"] is None and reason in a.lr["rule"]
    assert a.bounds["stable_lr"] > 0 and any("No lr is recommended" in note for note in a.notes)
    assert not any('lr="auto"' in note and "train with" in note for note in a.notes)
