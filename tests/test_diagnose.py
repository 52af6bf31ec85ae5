"""diagnose(): one verdict per way a run can end, with numbers that theory backs."""

import json

import numpy as np
import pytest

from linlab import TrainConfig, fit
from linlab.data import synthetic
from linlab.diagnose import VERDICTS, Diagnosis, diagnose
from linlab.theory import epochs_to_tol, lr_bounds, rank_floor


def run_and_diagnose(data, **settings):
    result = fit(data, TrainConfig(**settings))
    return result, diagnose(result, data)


CASES = {
    "diverged": dict(widths=(10, 2), lr=9e-4, epochs=300),
    "converged_optimum": dict(widths=(10, 2), lr=4e-4, epochs=100),
    "converged_floor": dict(widths=(10, 1, 2), lr=1e-5, epochs=300, tol=3e5),
    "stalled_floor": dict(widths=(10, 1, 2), lr=1e-5, epochs=300),
    "saddle": dict(widths=(10, 5, 2), lr=1e-5, init="zeros", epochs=300),
    "too_slow": dict(widths=(10, 2), lr=1e-5, epochs=100),
    "still_improving": dict(widths=(10, 2), lr=4e-4, epochs=3),
    "stalled_other": dict(widths=(10, 2), optimizer="rmsprop", lr=0.1, epochs=1000),
}


@pytest.mark.parametrize("verdict", list(CASES))
def test_each_verdict(seed_data, verdict):
    result, d = run_and_diagnose(seed_data, **CASES[verdict])
    assert d.verdict == verdict, d.text()
    assert d.verdict in VERDICTS and d.message and d.numbers["final_loss"] == result.final_loss
    assert json.loads(json.dumps(d.to_dict())) == d.to_dict()
    assert d.text().startswith(f"{verdict}: ")


def test_diverged_names_the_bound_and_factor(seed_data):
    result, d = run_and_diagnose(seed_data, **CASES["diverged"])
    bound = lr_bounds(seed_data).stable_lr
    assert d.numbers["stable_lr"] == pytest.approx(bound)
    assert d.numbers["lr_over_bound"] == pytest.approx(9e-4 / bound)
    assert "1.08x" in d.message and any("lr < 0.000834" in tip for tip in d.advice)


def test_mini_batch_divergence_is_measured_against_the_batches():
    # with "mean" a batch of one row is far sharper than the full data: lr below 2/λmax(full) diverges
    data = synthetic(n=200, d=4, k=2, seed=0, noise=0.5)
    full = lr_bounds(data, reduction="mean").stable_lr
    _, d = run_and_diagnose(data, widths=(4, 2), lr=0.9 * full, reduction="mean", batch_size=1, epochs=50)
    assert d.verdict == "diverged" and d.numbers["lr_over_bound"] > 1
    assert "mini-batch" in d.message and d.numbers["stable_lr"] == pytest.approx(2 * d.numbers["suggested_lr"])


def test_deep_mean_mini_batch_divergence_is_measured_as_lr_auto_bounds_the_batches():
    data = synthetic(n=200, d=4, k=2, seed=0, noise=0.5)
    settings = dict(widths=(4, 3, 2), reduction="mean", init="scaled", init_scale=0.3)
    full = run_and_diagnose(data, lr=1.0, epochs=0, **settings)[1].numbers["stable_lr"]
    _, d = run_and_diagnose(data, lr=0.5 * full, batch_size=1, epochs=50, **settings)
    assert d.verdict == "diverged" and d.numbers["lr_over_bound"] > 1 and "mini-batches" in d.message
    assert d.numbers["stable_lr"] == pytest.approx(2 * d.numbers["suggested_lr"])


def test_a_batch_as_large_as_the_data_is_forecast_as_full_batch(seed_data):
    _, full = run_and_diagnose(seed_data, **CASES["too_slow"])
    _, whole = run_and_diagnose(seed_data, **CASES["too_slow"], batch_size=seed_data.n_samples)
    assert whole.verdict == "too_slow" and whole.numbers["forecast_epochs_suggested"] is not None
    assert whole.numbers["forecast_epochs_now"] == full.numbers["forecast_epochs_now"]


def test_deep_divergence_is_measured_against_the_sharpness(seed_data):
    _, d = run_and_diagnose(seed_data, widths=(10, 5, 2), lr=1e-3, epochs=50)
    assert d.verdict == "diverged" and d.numbers["lr_over_bound"] > 10
    assert d.numbers["suggested_lr"] == pytest.approx(d.numbers["stable_lr"] / 2)


def test_floor_verdict_says_which_width_is_needed(seed_data):
    _, d = run_and_diagnose(seed_data, **CASES["stalled_floor"])
    floor = rank_floor(seed_data, 1)
    assert d.numbers["floor_loss"] == pytest.approx(floor.loss) == pytest.approx(248784.91, abs=0.01)
    assert d.numbers["fitted_rank"] == 2 and d.numbers["narrowest_width"] == 1
    assert any("at least 2 wide" in tip for tip in d.advice)


def test_too_slow_forecast_holds_when_the_run_goes_on(seed_data):
    result, d = run_and_diagnose(seed_data, **CASES["too_slow"])
    suggested, more = d.numbers["suggested_lr"], d.numbers["forecast_epochs_suggested"]
    assert suggested == pytest.approx(lr_bounds(seed_data).optimal_lr)
    assert more < 10 < 500 < d.numbers["forecast_epochs_now"]
    resumed = fit(seed_data, TrainConfig(widths=(10, 2), lr=suggested, epochs=100), factors=result.factors)
    assert resumed.epochs_to_tol == more
    assert more == epochs_to_tol(seed_data, result.factors[0], suggested, 1e-4)


def test_still_improving_forecasts_the_remaining_epochs(seed_data):
    result, d = run_and_diagnose(seed_data, **CASES["still_improving"])
    more = d.numbers["forecast_epochs_now"]
    resumed = fit(seed_data, TrainConfig(widths=(10, 2), lr=4e-4, epochs=100), factors=result.factors)
    assert resumed.epochs_to_tol == more and f"Run {more} more epochs" in d.advice[0]


def test_saddle_has_zero_gradient(seed_data):
    _, d = run_and_diagnose(seed_data, **CASES["saddle"])
    assert d.numbers["grad_norm"] == 0.0 < d.numbers["end_to_end_grad_norm"]


def test_noise_above_tol_is_the_optimum():
    data = synthetic(n=200, d=4, k=2, noise=0.5, seed=0)
    _, d = run_and_diagnose(data, widths=(4, 2), lr="auto", epochs=500)
    assert d.verdict == "converged_optimum" and d.numbers["ls_loss"] > 1e-4
    assert any("raise tol" in tip for tip in d.advice)


@pytest.mark.parametrize("loss", ["huber", "lp"])
def test_other_losses(seed_data, loss):
    _, d = run_and_diagnose(seed_data, widths=(10, 2), loss=loss, lr=1e-9, epochs=50)
    assert d.verdict == "too_slow" and "ls_loss" not in d.numbers
    assert d.numbers["suggested_lr"] > 2 * 1e-9


def test_wrong_data_is_refused(seed_data):
    result = fit(seed_data, TrainConfig(widths=(10, 2), lr=4e-4, epochs=5))
    with pytest.raises(ValueError, match="features"):
        diagnose(result, synthetic(n=20, d=3, k=2))


def test_text_and_dict():
    d = Diagnosis("too_slow", "slow.", {"lr": np.float64(1e-5), "n": np.int64(3), "x": None, "b": np.inf},
                  ["faster"])
    assert d.to_dict()["numbers"] == {"lr": 1e-5, "n": 3, "x": None, "b": "inf"}
    assert d.text().splitlines() == ["too_slow: slow.", "  lr = 1e-05", "  n = 3", "  b = inf", "  - faster"]


def test_bounds_are_taken_at_the_runs_own_initial_factors():
    from linlab import TrainConfig, fit, seed_dataset, seed_factors
    from linlab.diagnose import diagnose

    data = seed_dataset()
    start = seed_factors((10, 5, 2))
    r = fit(data, TrainConfig(widths=(10, 5, 2), lr=1e-5, epochs=5), factors=start)
    assert all(np.array_equal(a, b) for a, b in zip(r.initial_factors, start))
    d = diagnose(r, data)
    assert d.numbers["bound_at"] == "the run's initial factors"
    from linlab.theory import as_stats, sharpness

    assert np.isclose(d.numbers["stable_lr"], 2 / sharpness(as_stats(data), start), rtol=1e-6)
