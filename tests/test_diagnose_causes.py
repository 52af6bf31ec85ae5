"""diagnose() names the real cause: instability, a missing bias, conditioning, the ℓp/huber
optimum, degenerate data; and it stays cheap on wide data."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import linlab
from linlab import Dataset, TrainConfig, fit, seed_dataset, synthetic
from linlab.diagnose import diagnose
from linlab.theory import convex_optimum, lr_bounds

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def run_and_diagnose(data, **settings):
    result = fit(data, TrainConfig(**settings))
    return result, diagnose(result, data)


@pytest.fixture(scope="module")
def noisy():
    return synthetic(n=200, d=4, k=2, seed=0, noise=0.5)


@pytest.fixture(scope="module")
def diabetes():
    X, y = sklearn_datasets.load_diabetes(return_X_y=True)  # columns centred, scaled to norm 1
    return Dataset(X, y[:, None], name="diabetes")


@pytest.mark.parametrize("factor", [1.001, 1.02, 1.2])
def test_lr_above_the_bound_is_never_stalled(noisy, factor):
    bound = lr_bounds(noisy, reduction="mean", intercept=True).stable_lr
    result, d = run_and_diagnose(noisy, widths=(4, 2), bias=True, reduction="mean", lr=factor * bound, epochs=100)
    assert d.verdict in ("diverged", "unstable"), d.text()
    assert d.numbers["lr_over_bound"] == pytest.approx(factor)
    assert not any("larger lr" in tip for tip in d.advice)
    if result.outcome != "diverged" and result.final_loss > result.history[0]:  # rising: divergence
        assert d.verdict == "diverged" and "rose" in d.message


def test_lr_exactly_at_the_bound_is_unstable(noisy):
    bound = lr_bounds(noisy).stable_lr
    _, d = run_and_diagnose(noisy, widths=(4, 2), lr=bound, epochs=300)
    assert d.verdict == "unstable" and "neither shrinks nor grows" in d.message
    assert any(f"lr < {bound:.3g}" in tip for tip in d.advice)


def test_a_missing_bias_and_the_conditioning_are_named(diabetes):
    _, d = run_and_diagnose(diabetes, widths=(10, 1), reduction="mean", lr=1e-5, epochs=50)
    assert d.verdict == "too_slow"
    assert d.numbers["ls_loss"] == pytest.approx(26004.3, rel=1e-5)
    assert d.numbers["ls_loss_with_bias"] == pytest.approx(2859.7, rel=1e-5)
    assert d.numbers["condition_number"] == pytest.approx(470.08, rel=1e-4)
    text = " ".join(d.advice)
    assert "no bias" in text and "κ = 470" in text and "standardizing leaves κ at 470" in text


def test_at_the_optimum_without_a_bias_names_the_bias_and_the_real_gap(diabetes):
    _, d = run_and_diagnose(diabetes, widths=(10, 1), reduction="mean", lr=100.0, epochs=5000)
    gap = d.numbers["gap_to_optimum"]
    assert d.verdict == "converged_optimum" and gap > 1e-4
    assert "within tol" not in d.message and f"{gap:.3g}" in d.message
    assert "no bias" in d.advice[0]


def test_unscaled_columns_advise_standardizing():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)) * [1e3, 1.0, 1e-2]
    data = Dataset(X, X @ [[1.0], [2.0], [3.0]], name="unscaled")
    _, d = run_and_diagnose(data, widths=(3, 1), lr="auto", epochs=200)
    assert d.numbers["condition_number"] > 1e9 > 10 > d.numbers["condition_number_standardized"]
    assert any("--standardize" in tip for tip in d.advice), d.text()


def test_auto_lr_is_not_advised_when_auto_was_used():
    data = synthetic(n=2000, d=20, k=3, rank=2, noise=0.1)
    _, d = run_and_diagnose(data, widths=(20, 8, 8, 3), init="balanced", init_scale=0.5, lr="auto", epochs=300)
    assert not any('or lr="auto"' in tip for tip in d.advice), d.text()


@pytest.mark.parametrize("loss, lr", [("huber", 3e-3), ("lp", 1e-4)])
def test_a_run_at_the_lp_or_huber_optimum_is_converged(noisy, loss, lr):
    result, d = run_and_diagnose(noisy, widths=(4, 2), loss=loss, lr=lr, epochs=5000)
    assert result.outcome == "stalled" and d.verdict == "converged_optimum", d.text()
    assert d.numbers["optimum_loss"] == pytest.approx(result.final_loss, rel=1e-6)


def test_the_convex_optimum_has_zero_gradient(noisy):
    from linlab.losses import loss_grad

    opt = convex_optimum(noisy, "huber", intercept=True)
    G = loss_grad(noisy.X @ opt.coef + opt.intercept - noisy.Y, "huber")
    assert opt.converged and np.abs(noisy.X.T @ G).max() < 1e-6 and np.abs(G.sum(0)).max() < 1e-6


def test_all_zero_features_one_row_and_lr_zero_give_a_diagnosis():
    zeros = Dataset(np.zeros((20, 3)), np.arange(20.0)[:, None], name="zeros")
    _, d = run_and_diagnose(zeros, widths=(3, 1), epochs=20)
    assert d.numbers["stable_lr"] is None and "no signal" in d.numbers["curvature"]
    one = Dataset(np.zeros((1, 2)), np.zeros((1, 1)), name="one standardized row")
    assert run_and_diagnose(one, widths=(2, 1), epochs=5)[1].verdict == "converged_optimum"
    data = seed_dataset()
    result = dataclasses.replace(fit(data, TrainConfig(widths=(10, 2), epochs=5)), lr=0.0)
    d = diagnose(result, data)
    assert d.verdict == "too_slow" and "no update" in d.message


def test_wide_data_is_diagnosed_without_dense_spectra(monkeypatch):
    module = sys.modules["linlab.diagnose"]  # `import linlab.diagnose as m` gives the function
    monkeypatch.setattr(module, "DENSE_FEATURES", 8)  # as 100,000 columns would be, at test size
    data = synthetic(n=50, d=30, k=2, noise=0.1)
    result = fit(data, TrainConfig(widths=(30, 2), lr=1e-3, epochs=20))
    bound = lr_bounds(data).stable_lr

    def dense(*args, **kwargs):
        raise AssertionError("a dense d×d eigendecomposition on wide data")

    for name in ("eigh", "eigvalsh", "lstsq", "svd"):
        monkeypatch.setattr(np.linalg, name, dense)
    d = module.diagnose(result, data)
    assert "skipped L*" in d.numbers["theory"] and "ls_loss" not in d.numbers
    assert d.numbers["stable_lr"] == pytest.approx(bound, rel=1e-5)


def test_linlab_diagnose_is_always_the_function():
    code = ("import linlab; f = linlab.diagnose; import linlab.diagnose; from linlab.diagnose import VERDICTS; "
            "assert linlab.diagnose is f and callable(f), linlab.diagnose")
    for first in ("", "import linlab.diagnose; "):
        subprocess.run([sys.executable, "-c", first + code], check=True)
    assert callable(linlab.diagnose)
