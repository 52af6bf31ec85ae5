"""Fused SGD stacks (stop rules and update inside the compiled call) against the per-epoch loop."""

from collections import Counter

import numpy as np
import pytest
from conftest import same_histories, same_history, same_runs

from linlab import TrainConfig
from linlab.data import seed_dataset
from linlab.engines.batched import fit_batched, plan
from linlab.engines.batched.kernels import compiled, fused, gram

pytestmark = pytest.mark.skipif(not compiled.compiler_found(), reason="needs a C++ compiler (g++)")


def _spy(monkeypatch):
    ran = []
    original = fused.run_stack_fused

    def spy(*args):
        out = original(*args)
        ran.append(out is not None)
        return out

    monkeypatch.setattr("linlab.engines.batched.fit.run_stack_fused", spy)
    return ran


@pytest.fixture(params=["c", "inductor"])
def kernel(request, monkeypatch):
    """Which compiled code fused CPU stacks run: the C kernel (linlab.engines.batched.kernels.native) or,
    with it switched off, TorchInductor (linlab.engines.batched.kernels.fused, gram)."""
    if request.param == "inductor":
        monkeypatch.setattr(plan, "native_kernel", lambda path, depth=2: None)
    return request.param


def _blocks(monkeypatch) -> list[str]:
    # the class of every fused block run
    ran = []
    for cls in (fused.Native, fused.Factors, gram.Gram):
        original = cls.block
        monkeypatch.setattr(cls, "block",
                            lambda self, *a, _o=original, _c=cls: ran.append(_c.__name__) or _o(self, *a))
    return ran


def _every_rule(hyper: dict, n: int = 45, wide: bool = False) -> list[TrainConfig]:
    # runs that converge, stall, diverge (after a few epochs, past a low diverge_factor, or at
    # epoch 0 from an overflowing init), reach their own epoch limits, and follow a schedule
    out = []
    for i in range(n):
        kind = i % 6
        h = 24 + i % 17 if wide else 2 + i % 9
        c = dict(widths=(10, h, 2), seed=i, epochs=60 + 7 * (i % 5), init="scaled", init_scale=0.1,
                 tol=1.0, **hyper)
        c.update([
            dict(lr=1e-5 * (0.5 + 0.1 * (i % 4))),  # converges
            dict(lr=1e-9, stall_window=8, stall_rtol=0.05),  # stalls
            dict(lr=3e-5 * (1 + i % 3), diverge_factor=1e6 if i % 2 else 3.0),  # diverges
            dict(lr=1e-5, init_scale=1e200),  # diverges at epoch 0
            dict(lr=1e-5, schedule="step", step_size=9, gamma=0.5, tol=50.0),
            dict(lr=1e-7),  # reaches its epoch limit
        ][kind])
        out.append(TrainConfig(**c))
    return out


@pytest.mark.parametrize("hyper, wide", [
    ({}, False),
    ({"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}, False),
    ({"momentum": 0.5}, False),
    ({}, True),  # on the Gram matrix (depth 2, no momentum, wide: linlab.engines.batched.kernels.gram)
    ({"weight_decay": 1e-3}, True),
])
def test_fused_stacks_follow_the_per_epoch_loop(monkeypatch, kernel, hyper, wide):
    monkeypatch.setattr(plan, "UNROLL", 2)  # a small graph: the same code as UNROLL = 8, compiled faster
    ran, blocks = _spy(monkeypatch), _blocks(monkeypatch)
    data, configs = seed_dataset(), _every_rule(hyper, wide=wide)
    on = fit_batched(data, configs, compile=True)
    expected = "Native" if kernel == "c" else "Gram" if wide else "Factors"
    assert ran == [True] and set(blocks) == {expected}
    eager = fit_batched(data, configs, compile=False)
    outcomes = Counter(r.outcome for r in eager)
    assert set(outcomes) == {"converged", "stalled", "diverged", "max_epochs"}, outcomes
    assert any(len(r.history) == 0 and r.outcome == "diverged" for r in eager)  # at epoch 0
    assert any(len(r.history) > 1 and r.outcome == "diverged" for r in eager)
    same_runs(eager, on, rows=1000)
    for a, b in zip(eager, on):  # the single-run loop's sentences
        if a.outcome != "stalled":  # its best loss is printed to 6 digits, the others to 4
            assert a.message == b.message


def test_the_shipped_unroll_on_a_seed_style_sweep(monkeypatch, kernel):
    ran = _spy(monkeypatch)
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 1 + i % 8, 2), lr=1e-5 * (0.5 + i % 7), epochs=150, seed=i)
               for i in range(64)]
    on = fit_batched(data, configs, compile=True)
    assert ran and all(ran)
    same_runs(fit_batched(data, configs, compile=False), on, rows=1000)


@pytest.mark.parametrize("kernel", ["c", "inductor"])
def test_what_cannot_run_fused_runs_per_epoch(monkeypatch, kernel):
    # the C kernel runs any SGD stack; TorchInductor's graphs need MIN_ROWS runs and stall
    # windows of UNROLL epochs
    from linlab.engines.batched.kernels import native

    if kernel == "c" and native.compiler() is None:
        pytest.skip("needs a C compiler")
    if kernel == "inductor":
        monkeypatch.setattr(plan, "native_kernel", lambda path, depth=2: None)
    data = seed_dataset()
    calls = []
    original = fused.run_stack_fused
    monkeypatch.setattr("linlab.engines.batched.fit.run_stack_fused", lambda *a: calls.append(1) or original(*a))
    adam = [TrainConfig(widths=(10, 3, 2), optimizer="adam", lr=1e-2, epochs=5, seed=i) for i in range(40)]
    short = [TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=5, seed=i, stall_window=1) for i in range(40)]
    auto = [TrainConfig(widths=(10, 3, 2), lr="auto", epochs=5, seed=i) for i in range(40)]
    few = [TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=5, seed=i) for i in range(compiled.MIN_ROWS - 1)]
    monkeypatch.setattr(compiled, "compiled_stats_epoch", lambda: compiled.stats_epoch)  # no compiling here
    fused_in_c = {"short", "few"} if kernel == "c" else set()
    for name, configs in {"adam": adam, "short": short, "auto": auto, "few": few}.items():
        expected = fit_batched(data, configs, compile=False)
        calls.clear()
        same_runs(expected, fit_batched(data, configs, compile=True), rows=1000)
        assert bool(calls) == (name in fused_in_c), name


def test_a_failed_fused_compile_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(plan, "native_kernel", lambda path, depth=2: None)  # TorchInductor's failure

    def broken():
        def fail(*args, **kwargs):
            raise RuntimeError("compiler exploded")
        return fail

    monkeypatch.setattr(fused, "compiled_sgd_block", broken)
    monkeypatch.setattr(compiled, "compiled_stats_epoch", broken)
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, 2 + i % 5, 2), lr=1e-5, epochs=40, seed=i) for i in range(40)]
    with pytest.warns(RuntimeWarning, match="compiler exploded.*running eagerly"):
        fallback = fit_batched(data, configs, compile=True)
    eager = fit_batched(data, configs, compile=False)
    same_histories(eager, fallback, rows=1000)


def test_float32_stacks_run_fused_with_float64_stop_rules(monkeypatch, kernel):
    monkeypatch.setattr(plan, "UNROLL", 2)
    ran, blocks = _spy(monkeypatch), _blocks(monkeypatch)
    data = seed_dataset()
    configs = [TrainConfig(widths=(10, h, 2), init="scaled", init_scale=0.1, lr=lr, tol=1.0, epochs=80, seed=i,
                           dtype="float32")
               for i, (h, lr) in enumerate([(h, lr) for h in (3, 30) for lr in (1e-7, 1e-5, 1e-3)] * 12)]
    on = fit_batched(data, configs, compile=True)
    # TorchInductor: a stack on the factors and one on the Gram matrix; C: one padded stack
    assert (ran, set(blocks)) == (([True], {"Native"}) if kernel == "c" else ([True, True], {"Factors", "Gram"}))
    eager = fit_batched(data, configs, compile=False)
    assert {r.outcome for r in eager} == {"converged", "diverged", "max_epochs"}
    for a, b in zip(eager, on):
        assert (a.outcome, a.epochs) == (b.outcome, b.epochs)
        same_history(a.history, b.history, rows=1000, dtype=np.float32)
