"""RunResult's config given as a function: read once, on demand, and alike to a dict in every use."""

import copy
import dataclasses
import pickle

import numpy as np
import pytest

from linlab import TrainConfig
from linlab.data import seed_dataset
from linlab.engines import fit
from linlab.engines.batched import fit_batched
from linlab.models import init_factors
from linlab.results import RunResult


def result(config) -> RunResult:
    return RunResult(config, "max_epochs", "done.", np.arange(3.0), 2, 0.1, [np.ones((2, 1))])


class Counted:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"lr": 0.1, "widths": [2, 1]}


def test_a_deferred_config_is_built_once_on_first_read():
    build = Counted()
    r = result(build)
    assert build.calls == 0
    assert r.config == {"lr": 0.1, "widths": [2, 1]} and r.config is r.config
    assert build.calls == 1


def test_a_deferred_config_behaves_as_the_dict_it_builds():
    deferred, plain = result(Counted()), result({"lr": 0.1, "widths": [2, 1]})
    assert dataclasses.asdict(deferred)["config"] == plain.config
    assert dataclasses.replace(deferred, lr=0.2).config == plain.config
    assert copy.deepcopy(deferred).config == plain.config
    assert repr(deferred) == repr(plain)
    deferred.config = {"lr": 0.3}  # assignable as before
    assert deferred.config == {"lr": 0.3}


def test_batched_records_pickle_before_and_after_the_config_is_read():
    data = seed_dataset()
    runs = fit_batched(data, [TrainConfig(widths=(10, 1, 2), lr=lr, epochs=20, seed=1) for lr in (1e-5, 1e-4)])
    unread = pickle.loads(pickle.dumps(runs[0]))
    reference = fit(data, TrainConfig(widths=(10, 1, 2), lr=1e-5, epochs=20, seed=1))
    assert unread.config == {**reference.config, "engine": "batched"}
    assert pickle.loads(pickle.dumps(runs[1])).config == runs[1].config


def test_a_config_with_extra_is_recorded_as_it_was_at_the_call():
    config = TrainConfig(widths=(10, 2), lr=1e-5, epochs=5, extra={"tag": "a"})
    [r] = fit_batched(seed_dataset(), [config])
    config.extra["tag"] = "changed after the call"
    assert r.config["extra"] == {"tag": "a"}


@pytest.mark.parametrize("opt", [{}, {"momentum": 0.9}, {"optimizer": "adam"}], ids=["sgd", "momentum", "adam"])
def test_given_factors_come_back_as_each_runs_start_untouched_by_training(opt):
    # one architecture: the runs' starts are views of one array per layer, which no stack may alias
    configs = [TrainConfig(widths=(10, 3, 2), lr=1e-5, epochs=30, seed=i, **opt) for i in range(40)]
    factors = [init_factors(c.widths, c.init, c.init_scale, c.seed) for c in configs]
    given = [[W.copy() for W in fs] for fs in factors]
    results = fit_batched(seed_dataset(), configs, factors=factors)
    for r, start, fs in zip(results, given, factors, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(r.initial_factors, start, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(fs, start, strict=True))  # the caller's arrays too
        assert not np.array_equal(r.factors[0], start[0])
    truth = seed_dataset().W_true
    if truth is not None:
        for r in results:
            expected = np.linalg.norm(r.end_to_end - truth) / np.linalg.norm(truth)
            assert r.distance_to_true == pytest.approx(expected, rel=1e-12)
