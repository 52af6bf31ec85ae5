"""A trainer killed with SIGKILL at random moments always leaves a checkpoint that loads and resumes.

The test process imports torch once and forks a trainer (NumPy engine, a checkpoint every
epoch) for each kill, so that each of the many kills costs milliseconds, not an import.
Kill times adapt to the machine: each kill waits for the child's first save, then lands
at a random moment within the time this machine, now, takes for SPAN epochs (measured on
the reference run). A child that cannot start in time is not a failure of linlab.
"""

import os
import random
import signal
import sys
import time
import warnings

import numpy as np
import pytest

from linlab.checkpoint import CheckpointCallback, load_checkpoint, resume_state
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit

KILLS = 60
SPAN = 300  # kills land within this many epochs of the first save (the reference has 400)
START_TIMEOUT_S = 30.0  # a child not saving by then is skipped (a machine too busy)
CONFIG = TrainConfig(widths=(6, 4, 3), optimizer="sgd", lr=4e-4, momentum=0.9, batch_size=16,
                     epochs=5000, tol=0.0, stall_window=10_000, seed=2)


def trainer(data, path):
    """The forked child: train, checkpoint every epoch, never return."""
    code = 1
    try:
        import torch

        torch.set_num_threads(1)
        fit(data, CONFIG, callbacks=[CheckpointCallback(path)])
        code = 0
    finally:
        os._exit(code)


def start_and_kill(data, path, delay) -> tuple[bool, bool]:
    """(started: the child saved once in time, killed: SIGKILL ended it mid-run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
    if pid == 0:
        trainer(data, path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.0005)
    started = path.exists()
    time.sleep(delay if started else 0.0)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return started, os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")
def test_sigkill_at_random_moments_never_loses_the_checkpoint(tmp_path, record_property):
    data = synthetic(n=64, d=6, k=3, noise=0.1, seed=1)
    reference_epochs = 400
    params = {}  # epoch -> factors of the uninterrupted run
    t0 = time.perf_counter()
    reference = fit(data, CONFIG.replace(epochs=reference_epochs),
                    callbacks=[lambda e: params.__setitem__(e.epoch, e.engine.params()[0])])
    span_s = SPAN * (time.perf_counter() - t0) / reference_epochs  # this machine, as loaded as it is now
    path = tmp_path / "run.pt"
    draw = random.Random(0)
    killed_mid_run = resumed = temp_left = started = 0
    for _ in range(KILLS):
        path.unlink(missing_ok=True)  # each child starts afresh; its leftovers stay for the next
        began, killed = start_and_kill(data, path, draw.uniform(0.0, span_s))
        started, killed_mid_run = started + began, killed_mid_run + killed
        temps = list(tmp_path.glob(".run.pt.tmp-*"))
        assert len(temps) <= 1  # a new save first removes what the last crash left
        temp_left += len(temps)
        if not path.exists():
            continue  # killed before its first save
        ckpt = load_checkpoint(path)
        e = ckpt["epoch"]
        assert np.array_equal(ckpt["history"].numpy(), reference.history[:e])
        if e + 3 > reference_epochs:
            continue
        more = fit(data, CONFIG.replace(epochs=e + 3), resume=resume_state(ckpt))
        assert np.array_equal(more.history, reference.history[: e + 4])
        assert all(np.array_equal(a, b) for a, b in zip(more.factors, params[e + 3], strict=True))
        resumed += 1
    CheckpointCallback(path)
    assert not list(tmp_path.glob(".run.pt.tmp-*"))
    record_property("kills", killed_mid_run)
    record_property("resumed", resumed)
    record_property("killed_while_writing", temp_left)
    print(f"{killed_mid_run} kills mid-run, {resumed} resumed, {temp_left} left a partial write")
    if started < KILLS // 2:
        pytest.skip(f"only {started} of {KILLS} trainers saved within {START_TIMEOUT_S} s: machine too busy")
    assert killed_mid_run == KILLS  # 5000 epochs: every child is still training when killed
    assert resumed >= started // 2  # most kills land before epoch 397, where a resume is compared
