"""The training loop's stop conditions, records, logs and callbacks."""

import math

import numpy as np
import pytest

from linlab import TrainConfig, fit, synthetic, train


@pytest.fixture(scope="module")
def data():
    return synthetic(n=50, d=3, k=2, noise=0.2, seed=1)


def test_max_epochs_history_has_one_more_entry_than_updates(data):
    r = fit(data, TrainConfig(widths=(3, 2), lr=1e-3, epochs=25, tol=0.0))
    assert r.outcome == "max_epochs" and r.epochs == 25 and len(r.history) == 26
    assert "epoch limit 25" in r.message
    assert np.all(np.diff(r.history) < 0)


def test_zero_epochs_only_evaluates(data):
    r = fit(data, TrainConfig(widths=(3, 2), epochs=0))
    assert r.epochs == 0 and len(r.history) == 1 and r.outcome == "max_epochs"


def test_converged_stops_at_the_first_epoch_below_tol(data):
    r = fit(data, TrainConfig(widths=(3, 2), lr=5e-3, epochs=500, tol=15.0))
    assert r.outcome == "converged"
    assert r.history[r.epochs_to_tol] <= 15.0 < r.history[r.epochs_to_tol - 1]
    assert r.epochs == r.epochs_to_tol == len(r.history) - 1


def test_noisy_problem_stalls_at_its_optimum(data):
    r = fit(data, TrainConfig(widths=(3, 2), lr=5e-3, epochs=5000, tol=0.0, stall_window=20, stall_rtol=1e-9))
    lstsq = np.linalg.lstsq(data.X, data.Y, rcond=None)[1].sum()
    assert r.outcome == "stalled" and np.isclose(r.final_loss, lstsq, rtol=1e-8)


@pytest.mark.parametrize("engine", ["numpy", "autograd", "module"])
def test_divergence_keeps_the_last_finite_state(data, engine):
    r = fit(data, TrainConfig(widths=(3, 4, 2), lr=0.5, epochs=100, engine=engine))
    assert r.outcome == "diverged" and "diverged at epoch" in r.message and "lr=0.5" in r.message
    assert np.all(np.isfinite(r.history)) and all(np.isfinite(W).all() for W in r.factors)
    # the kept factors are the ones whose loss is the last history entry
    assert math.isclose(np.sum((data.X @ r.end_to_end - data.Y) ** 2), r.final_loss, rel_tol=1e-9)


def test_divergence_on_the_first_epoch_after_resuming_says_what_was_kept(data):
    states = []
    config = TrainConfig(widths=(3, 2), lr=1e-3, epochs=10, tol=0.0)
    fit(data, config, callbacks=(lambda e: states.append(e.state()),))
    state = states[4]
    state["factors"] = [1e6 * W for W in state["factors"]]  # far above diverge_factor × initial loss
    r = fit(data, config, resume=state)
    assert r.outcome == "diverged" and "the first after resuming" in r.message
    assert "kept the last finite state" not in r.message
    np.testing.assert_array_equal(r.factors[0], state["factors"][0])


def test_exploding_but_finite_loss_counts_as_diverged(data):
    r = fit(data, TrainConfig(widths=(3, 2), lr=0.05, epochs=100, diverge_factor=10.0))
    assert r.outcome == "diverged" and r.final_loss <= 10 * r.history[0]


def test_validation_history_and_callbacks(data):
    train_part, val = data.split(0.2, seed=0)
    seen = []
    r = fit(train_part, TrainConfig(widths=(3, 2), lr=1e-3, epochs=5), val=val, callbacks=(seen.append,))
    assert len(r.val_history) == len(r.history) == 6
    assert [e.epoch for e in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].state()["epoch"] == 5 and len(seen[-1].state()["history"]) == 5


@pytest.mark.parametrize("engine", ["numpy", "autograd", "module", "batched"])
def test_validation_rows_of_another_shape_are_named(data, engine):
    val = synthetic(n=10, d=4, k=2, seed=0)
    with pytest.raises(ValueError, match="val 'synthetic.*' has 4 features and 2 targets, but the training"):
        fit(data, TrainConfig(widths=(3, 2), epochs=3, engine=engine), val=val)


def test_log_every(data):
    lines = []
    fit(data, TrainConfig(widths=(3, 2), lr=1e-3, epochs=9, log_every=3, tol=0), log=lines.append)
    assert [line.split("]")[0] for line in lines] == ["Epoch [3/9", "Epoch [6/9", "Epoch [9/9"]


def test_distance_to_true_and_summary(data):
    r = train(data, widths=(3, 2), lr=5e-3, epochs=300, tol=0.0)
    assert r.distance_to_true < 0.1
    s = r.summary()
    assert s["outcome"] == r.outcome and s["final_loss"] == r.final_loss and s["final_val_loss"] is None


@pytest.mark.parametrize("bad, match", [
    (dict(lr=0.0), "lr=0.0 must be a finite number > 0"),
    (dict(lr="fast"), "lr='fast'"),
    (dict(optimizer="lbfgs"), "optimizer='lbfgs' is not one of"),
    (dict(epochs=-1), "epochs=-1 must be an integer >= 0"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(momentum=1.0), r"momentum=1.0 must lie in \[0, 1\)"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(engine="numpy", device="cuda"), "runs on the CPU only"),
    (dict(widths=(10, "a", 2)), r"widths=\(10, 'a', 2\) must list at least two positive integers"),
    (dict(widths=(10, float("nan"))), r"widths=\(10, nan\) must list"),
    (dict(nesterov="no", momentum=0.5), "nesterov='no' must be True or False"),
    (dict(bias="yes"), "bias='yes' must be True or False"),
    (dict(extra=5), "extra=5 must be a dict"),
])
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config key.*'learning_rate'.*valid keys are"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    c = TrainConfig.from_dict(TrainConfig(widths=(4, 2, 1)).to_dict())
    assert c.widths == (4, 2, 1)


def test_distance_to_a_zero_true_map_is_absolute():
    from linlab.engines.batched import fit_batched

    data = synthetic(n=30, d=3, k=2, rank=0, noise=0.5, seed=0)
    config = TrainConfig(widths=(3, 2), lr=1e-3, epochs=5)
    for r in (fit(data, config), fit_batched(data, [config])[0]):
        assert np.isclose(r.distance_to_true, np.linalg.norm(r.end_to_end))
