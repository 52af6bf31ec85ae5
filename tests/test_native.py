"""The C kernel of fused SGD stacks (linlab.engines.batched.kernels.native): agreement with the eager loop at
every depth, threads, the build and its cache, and the fallbacks."""

import numpy as np
import pytest
import torch
from conftest import same_runs

from linlab import TrainConfig
from linlab.data import seed_dataset, synthetic
from linlab.engines.batched import fit_batched, plan
from linlab.engines.batched.kernels import compiled, fused, native

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="needs a C compiler")


@pytest.fixture
def blocks(monkeypatch):
    ran = []
    original = fused.Native.block
    monkeypatch.setattr(fused.Native, "block", lambda self, *a: ran.append(len(self.runs)) or original(self, *a))
    return ran


@pytest.mark.parametrize("widths", [
    [(6, 3)],  # depth 1
    [(6, 4, 3, 3), (6, 2, 5, 3), (6, 1, 1, 3)],  # depth 3, mixed widths (zero-padded)
    [(6, 3, 2, 4, 3)],  # depth 4
])
@pytest.mark.parametrize("hyper", [{}, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
                                   {"reduction": "mean", "momentum": 0.5}])
def test_every_depth_follows_the_per_epoch_loop(blocks, widths, hyper):
    data = synthetic(n=200, d=6, k=3, noise=0.1, condition=30.0, seed=3)
    if hyper.get("reduction") == "mean":  # the gradient is n·k times smaller: lrs that many times larger
        hyper = {**hyper, "lr_scale": 600.0}
    scale = hyper.pop("lr_scale", 1.0)
    # 37 runs: the last lane block is part-full; some converge, some stall, some diverge
    configs = [TrainConfig(widths=widths[i % len(widths)], init="scaled", init_scale=0.3, seed=i, epochs=120,
                           lr=scale * [1e-3, 3e-3, 5e-2, 1e-7][i % 4], tol=1e-2 / scale, stall_window=10,
                           **hyper)
               for i in range(37)]
    on = fit_batched(data, configs, compile="auto")
    assert blocks  # the C kernel ran
    eager = fit_batched(data, configs, compile=False)
    assert {"diverged", "max_epochs"} <= {r.outcome for r in eager}
    same_runs(eager, on, rows=200)


@pytest.mark.parametrize("opt", [{}, {"momentum": 0.9}, {"momentum": 0.5, "nesterov": True, "weight_decay": 1e-3}],
                         ids=["sgd", "momentum", "nesterov-wd"])
def test_every_run_follows_the_single_run_numpy_engine(blocks, opt):
    # depths 1-3 and mixed widths, one lr per run (some diverge), 200 epochs: 36 or more runs
    # per depth, so every depth runs in the kernel
    from linlab.engines import fit

    data = seed_dataset()
    widths = [(10, 2), (10, 1, 2), (10, 5, 2), (10, 3, 4, 2), (10, 8, 2)]
    configs = [TrainConfig(widths=w, lr=lr, epochs=200, seed=i, **opt)
               for i, (w, lr) in enumerate([(w, lr) for w in widths for lr in (1e-5, 1e-4, 1e-3)] * 12)]
    results = fit_batched(data, configs, compile="auto")
    assert sum(blocks) >= len(configs)  # every run went through the kernel
    assert "diverged" in {r.outcome for r in results} and len({r.outcome for r in results}) > 1
    for r, c in zip(results, configs):
        ref = fit(data, c.replace(engine="numpy"))
        same_runs([ref], [r], rows=1000)
        assert r.message == ref.message


def test_threads_split_the_runs_without_changing_them(monkeypatch):
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 1 + i % 9, 2), lr=1e-5 * (1 + i % 4), epochs=60, seed=i)
               for i in range(203)]
    results, used = [], []
    run = native.run
    monkeypatch.setattr(native, "run", lambda fn, block, B, threads=None: used.append(threads) or run(fn, block, B,
                                                                                                     threads))
    for threads in (1, 2, 3):
        with native.host_threads():  # torch's setting comes back after the call
            torch.set_num_threads(threads)
            results.append(fit_batched(data, configs, compile="auto"))
    assert used and set(used) == {1, 2, 3}
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a.history, b.history)
            for Wa, Wb in zip(a.factors, b.factors):
                np.testing.assert_array_equal(Wa, Wb)


def test_the_host_state_comes_back_after_a_call_even_a_failed_one(monkeypatch):
    # torch's threads (one thread around the kernel), the garbage collector (paused inside),
    # and objects another part of the program froze stay as they were
    import gc

    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=30, seed=i) for i in range(40)]
    threads, frozen = torch.get_num_threads(), gc.get_freeze_count()
    fit_batched(data, configs, compile="auto")
    assert (torch.get_num_threads(), gc.isenabled(), gc.get_freeze_count()) == (threads, True, frozen)

    def broken(*args):
        raise MemoryError("the C kernel could not allocate its scratch memory.")

    monkeypatch.setattr(native, "run", broken)
    with pytest.raises(MemoryError):
        fit_batched(data, configs, compile="auto")
    assert (torch.get_num_threads(), gc.isenabled()) == (threads, True)
    kept = [[i] for i in range(1000)]
    gc.freeze()  # someone else's frozen objects: fit_batched must not thaw them
    try:
        monkeypatch.undo()
        before = gc.get_freeze_count()
        fit_batched(data, configs, compile="auto")
        assert len(kept) <= gc.get_freeze_count() <= before  # (some frozen objects may die meanwhile)
    finally:
        gc.unfreeze()


def test_float32_runs_in_its_own_build(blocks):
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 5, 2), lr=1e-5, epochs=50, seed=i, tol=1.0, dtype="float32")
               for i in range(40)]
    on = fit_batched(data, configs, compile="auto")
    assert blocks
    same_runs(fit_batched(data, configs, compile=False), on, rows=1000, dtype=np.float32)


def test_the_build_is_cached_and_shared(monkeypatch, tmp_path):
    monkeypatch.setenv("LINLAB_CACHE_DIR", str(tmp_path))
    first = native._build(native.compiler(), "double")
    assert first.parent == tmp_path / "kernels" and first.exists()
    monkeypatch.setattr(native.subprocess, "run", lambda *a, **k: pytest.fail("built twice"))
    assert native._build(native.compiler(), "double") == first
    # no temporary file left; the library and its recorded hash, in a folder of this user's alone
    names = sorted(p.name for p in first.parent.iterdir())
    assert names == sorted([first.name, first.with_suffix(".sha256").name])
    assert first.parent.stat().st_mode & 0o777 == 0o700


PLANTED = """#include <stdio.h>
__attribute__((constructor)) static void planted(void) { fopen(MARKER, "w"); }
int sgd_block(void *b, long lo, long hi) { return 0; }
"""


def test_a_planted_library_is_refused_and_rebuilt(monkeypatch, tmp_path):
    # a library at the cache's name that linlab did not build would run on load
    monkeypatch.setenv("LINLAB_CACHE_DIR", str(tmp_path))
    target = native._build(native.compiler(), "double")
    marker = tmp_path / "planted-ran"
    (tmp_path / "planted.c").write_text(PLANTED.replace("MARKER", f'"{marker}"'))
    for record in (True, False):  # with the old record left in place, and with none
        native.subprocess.run([native.compiler(), "-shared", "-fPIC", str(tmp_path / "planted.c"),
                               "-o", str(target)], check=True)
        if not record:
            target.with_suffix(".sha256").unlink()
        with pytest.warns(RuntimeWarning, match="not the C kernel that linlab built"):
            assert native._build(native.compiler(), "double") == target
        assert native.verified(target) and not marker.exists()
    native.kernel.cache_clear()
    try:
        assert native.kernel(torch.float64) is not None and not marker.exists()
    finally:
        native.kernel.cache_clear()


@pytest.mark.parametrize("mode, uid, match", [
    (0o777, None, "writable by others"),
    (0o770, None, "writable by others"),
    (0o700, 12345, "belongs to another user"),
])
def test_a_cache_others_can_write_is_refused(monkeypatch, tmp_path, mode, uid, match):
    monkeypatch.setenv("LINLAB_CACHE_DIR", str(tmp_path))
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels").chmod(mode)
    if uid is not None:
        monkeypatch.setattr(native.os, "getuid", lambda: uid)
    native.kernel.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=f"building the C kernel failed.*{match}.*LINLAB_CACHE_DIR"):
            assert native.kernel(torch.float64) is None
    finally:
        native.kernel.cache_clear()
    assert not list((tmp_path / "kernels").iterdir())


def test_a_hung_compiler_times_out_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("LINLAB_CACHE_DIR", str(tmp_path))
    (tmp_path / "hung-cc").write_text("#!/bin/sh\nexec sleep 60\n")
    (tmp_path / "hung-cc").chmod(0o755)
    monkeypatch.setenv("CC", str(tmp_path / "hung-cc"))
    monkeypatch.setattr(native, "COMPILE_TIMEOUT", 0.5)
    native.kernel.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="building the C kernel failed.*hung-cc ran past 0.5 s"):
            assert native.kernel(torch.float64) is None
    finally:
        native.kernel.cache_clear()


def test_a_failed_build_warns_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("LINLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(native.shutil, "which", lambda name: str(tmp_path / "broken-cc") if name else None)
    (tmp_path / "broken-cc").write_text("#!/bin/sh\necho 'cc: fatal error: broken' >&2\nexit 1\n")
    (tmp_path / "broken-cc").chmod(0o755)
    native.kernel.cache_clear()
    try:
        monkeypatch.setattr(compiled, "compiled_stats_epoch", lambda: compiled.stats_epoch)  # no TorchInductor
        data = seed_dataset()
        configs = [TrainConfig(widths=(10, 3, 2), lr=1e-5, epochs=30, seed=i) for i in range(40)]
        with pytest.warns(RuntimeWarning, match="building the C kernel failed.*broken"):
            fallback = fit_batched(data, configs, compile="auto")
        same_runs(fit_batched(data, configs, compile=False), fallback, rows=1000)
        assert not list((tmp_path / "kernels").glob("*.so"))
    finally:
        native.kernel.cache_clear()


def test_without_a_compiler_auto_runs_eagerly(monkeypatch):
    monkeypatch.setattr(native, "compiler", lambda: None)
    monkeypatch.setattr(compiled, "compiler_found", lambda: False)
    assert plan.compile_plan("auto", "cpu", 10**12) is None
