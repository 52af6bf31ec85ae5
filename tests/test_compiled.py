"""The compiled statistics-path epoch: agreement with the eager path, fallback, the switch."""

import numpy as np
import pytest
import torch
from conftest import same_histories, same_runs

from linlab import TrainConfig
from linlab.data import seed_dataset
from linlab.engines.batched import fit_batched, plan
from linlab.engines.batched.kernels import compiled
from linlab.sweeps import sweep

needs_compiler = pytest.mark.skipif(not compiled.compiler_found(), reason="needs a C++ compiler (g++)")


def _configs():
    # two depths x three optimizers, each stack above compiled.MIN_ROWS runs: mixed widths,
    # per-run lrs, and at every depth some runs that diverge or converge within 200 epochs
    # (none at the edge of stability, where rounding grows until the paths part)
    out = []
    for i in range(40):
        lr = 1e-5 * (0.2 + (i % 10) / 5) * (40.0 if i % 13 == 0 else 1.0)
        out.append(TrainConfig(widths=(10, 2 + i % 39, 2), lr=lr, epochs=200, seed=i))
        out.append(TrainConfig(widths=(10, 2 + i % 39, 2), lr=lr, epochs=200, seed=i, momentum=0.9,
                               nesterov=i % 2 == 1))
        deep_lr = 2e-7 * (1 + i % 5) * (1000.0 if i % 13 == 0 else 1.0)  # stable, or diverging at once
        out.append(TrainConfig(widths=(10, 3 + i % 7, 2 + i % 5, 2), lr=deep_lr, epochs=200, seed=i))
        out.append(TrainConfig(widths=(10, 3 + i % 7, 2 + i % 5, 2), lr=1e-2 * (1 + i % 3), epochs=200,
                               seed=i, optimizer="adam"))
    return out


@pytest.fixture(scope="module")
def both():
    data, configs = seed_dataset(), _configs()
    calls = []
    original = compiled.CompiledEpoch.__call__

    def spy(self, *args):
        out = original(self, *args)
        calls.append(out is not None)
        return out

    compiled.CompiledEpoch.__call__ = spy
    try:  # the per-epoch loop for every stack (fused SGD stacks: test_fused)
        with pytest.MonkeyPatch.context() as m:
            m.setattr("linlab.engines.batched.plan.eligible", lambda path, configs: False)
            on = fit_batched(data, configs, compile=True)
    finally:
        compiled.CompiledEpoch.__call__ = original
    return fit_batched(data, configs, compile=False), on, calls


@needs_compiler
def test_compiled_runs_follow_the_eager_trajectories(both):
    eager, on, calls = both
    assert calls and all(calls)  # the compiled kernel ran, every time it was asked
    outcomes = {r.outcome for r in eager}
    assert {"diverged", "converged"} <= outcomes
    same_runs(eager, on, rows=1000)


@needs_compiler
def test_compiled_epoch_is_the_loss_and_gradient_of_each_run():
    rng = np.random.default_rng(0)
    d, k, B = 4, 3, 40
    Ws = [torch.from_numpy(rng.standard_normal(s)) for s in [(d, 5, B), (5, 2, B), (2, k, B)]]
    P, r = (torch.from_numpy(rng.standard_normal((d, k, 1))) for _ in range(2))
    R = torch.from_numpy(rng.standard_normal((d, d)))
    stacked = torch.cat([R, 2 * R.T @ R])  # [R; sA] with A = RᵀR, s = 2 (summed loss)
    loss, grads = compiled.compiled_stats_epoch()(Ws, P, stacked, 2 * r, r)
    ref_loss, ref_grads = compiled.stats_epoch(Ws, P, stacked, 2 * r, r)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for g, h in zip(grads, ref_grads):
        torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-12)
    for b in (0, 17, B - 1):  # ‖RΔ‖² + 2⟨r, Δ⟩ and its gradient by autograd, run by run
        W = [w[..., b].clone().requires_grad_() for w in Ws]
        D = W[0] @ W[1] @ W[2] - P[..., 0]
        value = (R @ D).square().sum() + 2 * (r[..., 0] * D).sum()
        value.backward()
        assert torch.isclose(loss[b], value.detach(), rtol=1e-12)
        for g, w in zip(grads, W):
            torch.testing.assert_close(g[..., b], w.grad, rtol=1e-10, atol=1e-10)


def test_a_failed_compile_warns_and_runs_eagerly(monkeypatch):
    def broken():
        def fail(*args):
            raise RuntimeError("no working C++ compiler\nsecond line")
        return fail

    monkeypatch.setattr(compiled, "compiled_stats_epoch", broken)
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 1 + i % 20, 2), lr=1e-3 * (1 + i % 4), epochs=30, seed=i, optimizer="adam")
               for i in range(40)]  # adam: the per-epoch loop (SGD stacks run fused, see test_fused)
    with pytest.warns(RuntimeWarning, match="no working C\\+\\+ compiler.*running eagerly"):
        fallback = fit_batched(data, configs, compile=True)
    eager = fit_batched(data, configs, compile=False)
    same_histories(eager, fallback, rows=1000)


def test_compile_modes():
    from linlab.engines.batched.kernels import native

    kernel = "kernel" if native.compiler() else None
    assert plan.compile_plan(False, "cpu", 10**12) is None
    assert plan.compile_plan(True, "cpu", 1) == plan.compile_plan(True, "cuda", 1) == "all"
    assert plan.compile_plan("auto", "cpu", 1) == kernel  # the C kernel: built in a second
    assert plan.compile_plan("auto", "cpu", plan.AUTO_RUN_EPOCHS - 1) == kernel
    assert plan.compile_plan("auto", "cuda", 10**12) is None
    assert plan.compile_plan("auto", "cpu", plan.AUTO_RUN_EPOCHS) == (
        "all" if compiled.compiler_found() else kernel)
    with pytest.raises(ValueError, match="compile='yes' must be 'auto', True or False"):
        fit_batched(seed_dataset(), [TrainConfig()], compile="yes")
    with pytest.raises(ValueError, match="compile=1 must be"):
        sweep({"fixed": {"epochs": 2}}, compile=1)


def test_small_stacks_stay_eager_even_when_compiling(monkeypatch):
    # below MIN_ROWS runs the kernel is never called: no compile for a handful of runs
    def never():
        raise AssertionError("compiled for a small stack")

    monkeypatch.setattr(compiled, "compiled_stats_epoch", never)
    configs = [TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=20, seed=i) for i in range(compiled.MIN_ROWS - 1)]
    results = fit_batched(seed_dataset(), configs, compile=True)
    assert all(r.outcome == "max_epochs" for r in results)


def test_a_compiled_sweep_runs_in_large_batches_and_decides_once(monkeypatch):
    from linlab import sweeps

    sizes, modes = [], []
    monkeypatch.setattr(sweeps, "run_batch", lambda data, configs, **kw: sizes.append(len(configs))
                        or modes.append(kw["compile"]) or [None] * len(configs))
    monkeypatch.setattr(sweeps, "to_table", lambda rows: sweeps.SCHEMA.empty_table())
    monkeypatch.setattr(sweeps, "result_row", lambda *a: None)
    grid = {"fixed": {"epochs": 5, "engine": "batched"}, "grid": {"seed": list(range(300))}}
    sweep(grid, compile=True)
    sweep(grid, compile=False)
    grid["fixed"]["engine"] = "numpy"
    sweep(grid, compile=True)
    assert sizes == [300] + [256, 44] + [16] * 18 + [12]
    assert modes[:3] == [True, False, False]
    from linlab.engines.batched.kernels import native

    grid["fixed"]["engine"] = "batched"
    sweep(grid)  # "auto": the C kernel's plan, which runs large batches too
    assert (sizes[-1], modes[-1]) == ((300, "auto") if native.compiler() else (44, "auto"))
    monkeypatch.setattr(plan, "AUTO_RUN_EPOCHS", 1500)  # 300 runs x 5 epochs
    sweep(grid)
    assert modes[-1] == (True if compiled.compiler_found() else "auto")
