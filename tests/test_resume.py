"""Resume: a run interrupted and resumed from its checkpoint equals the uninterrupted run, bit for bit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from linlab.checkpoint import (
    CheckpointCallback,
    CheckpointError,
    checkpoint_config,
    checkpoint_params,
    resume_state,
)
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit

EPOCHS, STOP = 12, 5
OPTIMIZERS = {
    "sgd-momentum": dict(optimizer="sgd", lr=4e-4, momentum=0.9),
    "adam": dict(optimizer="adam", lr=2e-2),
}


class Interrupt(Exception):
    pass


def interrupt_at(epoch):
    def callback(e):
        if e.epoch == epoch:
            raise Interrupt

    return callback


@pytest.fixture(scope="module")
def data():
    return synthetic(n=48, d=6, k=3, noise=0.1, seed=3)


def interrupted_then_resumed(data, config, path, val=None):
    """Train to STOP, 'crash', then resume from the file to config.epochs."""
    with pytest.raises(Interrupt):
        fit(data, config, val=val, callbacks=[CheckpointCallback(path), interrupt_at(STOP)])
    state = resume_state(path)
    assert state["epoch"] == STOP and len(state["history"]) == STOP
    return fit(data, checkpoint_config(path), val=val, resume=state)


def assert_identical(a, b):
    assert np.array_equal(a.history, b.history)
    assert all(np.array_equal(x, y) for x, y in zip(a.factors, b.factors, strict=True))
    assert (a.biases is None) == (b.biases is None)
    if a.biases is not None:
        assert all(np.array_equal(x, y) for x, y in zip(a.biases, b.biases, strict=True))
    assert a.outcome == b.outcome and a.epochs == b.epochs


@pytest.mark.parametrize("batch_size", [None, 16], ids=["full-batch", "mini-batch"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("engine", ["numpy", "autograd", "module"])
def test_resume_is_bit_identical(data, tmp_path, engine, opt, batch_size):
    config = TrainConfig(widths=(6, 4, 3), engine=engine, epochs=EPOCHS, seed=7, tol=0.0,
                         batch_size=batch_size, shuffle=True, **OPTIMIZERS[opt])
    full = fit(data, config)
    assert full.outcome == "max_epochs" and full.epochs == EPOCHS
    assert np.isfinite(full.history).all() and full.history[-1] < full.history[0]
    assert_identical(interrupted_then_resumed(data, config, tmp_path / "run.pt"), full)


@pytest.mark.parametrize("engine", ["numpy", "module"])
def test_resume_with_bias_validation_schedule_and_float32(data, tmp_path, engine):
    train, val = data.split(0.25, seed=1)
    config = TrainConfig(widths=(6, 2, 3), bias=True, engine=engine, optimizer="adam", lr=3e-2,
                         schedule="cosine", dtype="float32", epochs=EPOCHS, batch_size=10, tol=0.0)
    full = fit(train, config, val=val)
    resumed = interrupted_then_resumed(train, config, tmp_path / "run.pt", val=val)
    assert_identical(resumed, full)
    assert np.array_equal(resumed.val_history, full.val_history)


def test_the_mini_batch_order_matters(data, tmp_path):
    # the resumed run must restore the shuffling stream: restarting it gives other batches
    config = TrainConfig(widths=(6, 4, 3), epochs=EPOCHS, batch_size=8, lr=5e-4, tol=0.0)
    full = fit(data, config)
    with pytest.raises(Interrupt):
        fit(data, config, callbacks=[CheckpointCallback(tmp_path / "run.pt"), interrupt_at(STOP)])
    state = resume_state(tmp_path / "run.pt")
    state["rng"] = np.random.default_rng([config.seed, 1]).bit_generator.state
    wrong = fit(data, config, resume=state)
    assert np.array_equal(wrong.history[: STOP + 1], full.history[: STOP + 1])
    assert not np.array_equal(wrong.history, full.history)


def test_final_checkpoint_continues_with_more_epochs(data, tmp_path):
    config = TrainConfig(widths=(6, 4, 3), optimizer="sgd", lr=5e-4, momentum=0.5, epochs=EPOCHS, tol=0.0)
    long = fit(data, config.replace(epochs=2 * EPOCHS))
    cb = CheckpointCallback(tmp_path / "run.pt", every=100)
    short = fit(data, config, callbacks=[cb])
    assert cb.final(short) is not None and cb.saved == [EPOCHS]
    continued = fit(data, config.replace(epochs=2 * EPOCHS), resume=resume_state(tmp_path / "run.pt"))
    assert_identical(continued, long)


def test_diverged_run_keeps_last_finite_parameters_and_refuses_resume(data, tmp_path):
    config = TrainConfig(widths=(6, 4, 3), lr=5.0, epochs=50)
    cb = CheckpointCallback(tmp_path / "run.pt")
    result = fit(data, config, callbacks=[cb])
    assert result.outcome == "diverged"
    assert cb.final(result) == tmp_path / "run.pt"
    factors, _ = checkpoint_params(tmp_path / "run.pt")
    assert all(np.array_equal(a, b) for a, b in zip(factors, result.factors, strict=True))
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        resume_state(tmp_path / "run.pt")


SCRIPT = """
import hashlib, json, torch
torch.set_num_threads(1)
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit
data = synthetic(n=40, d=5, k=2, noise=0.1, seed=11)
out = {}
for engine in ("numpy", "module"):
    r = fit(data, TrainConfig(widths=(5, 3, 2), engine=engine, optimizer="adam", lr=1e-2,
                              epochs=15, batch_size=7, seed=4, tol=0.0))
    h = hashlib.sha256(r.history.tobytes())
    for W in r.factors:
        h.update(W.tobytes())
    out[engine] = [h.hexdigest(), float(r.history[-1])]
print(json.dumps(out))
"""


def test_same_config_and_seed_agree_across_processes():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in runs]
    assert all(p.returncode == 0 for p in runs)
    assert outs[0] == outs[1]
    assert outs[0]["numpy"][0] != outs[0]["module"][0]  # the hash sees the arrays, not a constant
