r"""Every fast SGD path of the batched engine against :mod:`linlab.optim` itself.

The reference knows nothing of the engine: per run, its factors W1..WL as torch tensors,
the exact full-batch gradient of ‖X W1⋯WL − Y‖² (divided by n·k for ``reduction="mean"``)
by autograd from the rows X, Y in float64, and ``optim.step("sgd", ...)`` with the run's
learning rate (``optim.lr_at`` under its schedule), momentum, Nesterov and weight decay.
Each path runs the same runs from the same factors through ``fit_batched`` and must follow
it: the C kernel (``compile=True`` on the CPU), the fused block on the factors and on the
Gram matrix (the graphs TorchInductor compiles, run here as plain torch: compiling them
takes about a minute, which the agreement tests of test_fused.py spend), and the per-epoch
loop (``compile=False``). Every test checks that the path it names is the one that ran.

Tolerances (:func:`_tolerances`): each epoch rounds sums of at most m = n·k + Σ widths terms
(the loss over the n·k residuals; the products through the widths), which the worst-case
bound of recursive summation puts at m units in the last place of the terms; two
computations that round independently differ by at most twice that: ``ulps = 2m`` per epoch,
about 300 here. Every run's lr is at most half of 1/c for a bound c on its curvature (a
quarter of the stable step, :func:`_stack`), where gradient descent does not amplify a
perturbation, so the errors of successive epochs add up: ‖ΔW_j‖_F ≤ ulps·eps·(t + 1)·‖W_j‖_F.
The loss inherits them through its first-order change, |ΔL| ≤ 2‖X‖₂‖ΔP‖_F·√L + ‖X‖₂²‖ΔP‖_F²
with ‖ΔP‖_F ≤ ulps·eps·(t + 1)·Σ_j ‖W_j‖_F ∏_{i≠j}‖W_i‖₂, plus the rounding of evaluating
it, ulps·eps·(L + 2‖|X||P| + |Y|‖_F·√L). For float32 stacks eps is float32's (the float64
reference's own rounding is negligible beside it). Measured errors stay 250 times or more
below these bounds on every path, while an lr or a momentum one part in 10⁹ off, or a
weight decay one part in 10⁸ off, exceeds them
(:func:`test_the_bounds_tell_a_slightly_different_step_apart`).
"""

from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linlab import TrainConfig, optim
from linlab.data import synthetic
from linlab.engines.batched import fit as fit_module
from linlab.engines.batched import fit_batched, plan
from linlab.engines.batched.kernels import fused, gram, native
from linlab.engines.batched.objective_stats import StatsPath

N, D, K = 64, 5, 2  # rows, features, targets
B = 32  # runs per stack: the fewest that run fused (kernels.compiled.MIN_ROWS)
SCHEDULES = [{}, {"schedule": "step", "step_size": 5, "gamma": 0.5}, {"schedule": "exponential", "gamma": 0.97},
             {"schedule": "cosine"}]
HYPERS = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.5, "nesterov": True},
    "decay": {"weight_decay": 1.0},  # in units of the loss's curvature scale (see _stack)
    "all": {"momentum": 0.9, "nesterov": True, "weight_decay": 1.0},
}
# an update run op by op needs each of its branches once: without momentum, with it, with Nesterov
# and weight decay (each combination is a graph of its own only where compiled; the C kernel runs all)
BRANCHES = ["plain", "momentum", "all"]
EXAMPLES = settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS64, EPS32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
needs_cc = pytest.mark.skipif(native.compiler() is None, reason="needs a C compiler")


def _stack(seed: int, depth: int, hyper: dict, reduction: str, epochs: int, hidden=(1, 3, 6), dtype="float64"):
    """A dataset and one stack of B runs: hidden widths drawn from `hidden` (zero-padded in the
    stack), init N(0, 1/fan_in), up to `epochs` epochs (some stop inside a block of the fused
    paths), a schedule and a learning rate per run.

    Each lr is a fraction (0.05-0.5) of 1/c, times 1 − momentum, for a bound c on the curvature
    wherever every factor's norm stays below s = max_j max(‖W_j‖₂, ‖P_ls‖₂^(1/L)) (the balanced
    factors of the solution): c = (2/divisor)·λ_max(XᵀX)·(L·s^(2L−2) + (L−1)·s^(L−2)·‖P₀ − P_ls‖₂)
    (the Gauss-Newton term and the residual's), plus the weight decay."""
    data = synthetic(n=N, d=D, k=K, noise=0.1, condition=10.0, seed=seed)
    rng = np.random.default_rng(seed)
    divisor = 1 if reduction == "sum" else N * K
    scale = 2 * np.linalg.eigvalsh(data.X.T @ data.X).max() / divisor  # the curvature at unit factors
    solution = np.linalg.lstsq(data.X, data.Y, rcond=None)[0]
    hyper = {**hyper, "weight_decay": float(0.05 * scale * hyper.get("weight_decay", 0.0))}
    configs, factors = [], []
    for i in range(B):
        widths = (D, *rng.choice(hidden, size=depth - 1), K)
        fs = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
        s = max(max(np.linalg.norm(W, 2) for W in fs), np.linalg.norm(solution, 2) ** (1 / depth))
        gap = np.linalg.norm(np.linalg.multi_dot([*fs, np.eye(K)]) - solution, 2)
        c = scale * (depth * s ** (2 * depth - 2) + (depth - 1) * s ** (depth - 2) * gap) + hyper["weight_decay"]
        lr = rng.uniform(0.05, 0.5) * (1 - hyper.get("momentum", 0.0)) / c
        configs.append(TrainConfig(
            widths=tuple(int(w) for w in widths), lr=float(lr), epochs=int(epochs - rng.integers(0, 4)),
            reduction=reduction, tol=0.0, stall_window=10**4, dtype=dtype, **SCHEDULES[i % 4], **hyper))
        factors.append(fs)
    return data, configs, factors


class Run(NamedTuple):
    """One run of the reference: its losses, final factors, and per epoch the magnitudes its
    tolerances scale with (see :func:`_tolerances`)."""

    history: np.ndarray
    factors: list
    spread: np.ndarray  # Σ_j ‖W_j‖_F ∏_{i≠j} ‖W_i‖₂: ‖ΔP‖_F per unit relative error of the factors
    magnitude: np.ndarray  # ‖|X||P| + |Y|‖_F: the size of the terms the residuals cancel


def reference(data, configs, factors) -> list[Run]:
    """Each run from :mod:`linlab.optim` and autograd alone.

    Runs of one widths are stepped together (per-run learning rates broadcast over the stack;
    each run's gradient is its own, as the stacked losses are summed)."""
    out = [None] * len(configs)
    groups = {}
    for i, c in enumerate(configs):
        groups.setdefault(c.widths, []).append(i)
    for runs in groups.values():
        for i, run in zip(runs, _reference_group(data, [configs[i] for i in runs], [factors[i] for i in runs])):
            out[i] = run
    return out


def _reference_group(data, configs, factors) -> list[Run]:
    X, Y = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (data.X, data.Y))
    divisor = 1 if configs[0].reduction == "sum" else Y.numel()
    Ws = [torch.tensor(np.stack(layer), requires_grad=True) for layer in zip(*factors)]  # (B, a, b)
    state, ends = optim.init("sgd", Ws), np.array([c.epochs for c in configs])
    rows, finals = [], [None] * len(configs)
    for t in range(ends.max() + 1):
        P = Ws[0]
        for W in Ws[1:]:
            P = P @ W
        E = X @ P - Y  # (B, n, k)
        losses = (E * E).sum((1, 2)) / divisor
        with torch.no_grad():
            magnitude = (X.abs() @ P.abs() + Y.abs()).square().sum((1, 2)).sqrt()
            rows.append(torch.stack([losses, _spread(Ws), magnitude]))
            for b in np.flatnonzero(ends == t):
                finals[b] = [W[b].numpy().copy() for W in Ws]
        grads = torch.autograd.grad(losses.sum(), Ws)
        lr = torch.tensor([optim.lr_at(c, t, c.lr) for c in configs], dtype=torch.float64).view(-1, 1, 1)
        with torch.no_grad():
            state = optim.step("sgd", Ws, grads, state, lr, configs[0])
    rows = torch.stack(rows).numpy()  # (T, 3, B)
    return [Run(rows[: e + 1, 0, b], finals[b], rows[: e + 1, 1, b], rows[: e + 1, 2, b])
            for b, e in enumerate(ends)]


def _spread(Ws) -> torch.Tensor:
    F = [torch.linalg.matrix_norm(W) for W in Ws]
    S = [torch.linalg.matrix_norm(W, ord=2) for W in Ws]
    total = torch.zeros_like(F[0])
    for j in range(len(Ws)):
        term = F[j]
        for i in range(len(Ws)):
            term = term if i == j else term * S[i]
        total += term
    return total


def _tolerances(data, config, run: Run, eps: float):
    """Per-epoch bounds on the factors' relative error and the loss's absolute error (module docstring)."""
    ulps = 2 * (N * K + sum(config.widths))
    divisor = 1 if config.reduction == "sum" else N * K
    rel = ulps * eps * np.arange(1, len(run.history) + 1)
    x2 = np.linalg.norm(np.asarray(data.X, dtype=np.float64), 2)
    L = run.history * divisor  # the summed loss
    dP = rel * run.spread
    dL = 2 * x2 * dP * np.sqrt(L) + (x2 * dP) ** 2 + ulps * eps * (L + 2 * run.magnitude * np.sqrt(L))
    return rel, dL / divisor


def assert_follows(data, configs, results, refs, eps: float = EPS64) -> float:
    """Assert every result followed its reference run to the tolerances; return the worst
    error as a fraction of its bound (for the record: how tight the bounds are)."""
    worst = 0.0
    for i, (c, r, ref) in enumerate(zip(configs, results, refs)):
        assert (r.outcome, r.epochs) == ("max_epochs", c.epochs), f"run {i}: {r.message}"
        rel, dL = _tolerances(data, c, ref, eps)
        err = np.abs(r.history - ref.history)
        t = int(np.argmax(err / dL))
        assert err[t] <= dL[t], (f"run {i}, epoch {t}: loss {float(r.history[t])!r} against "
                                  f"{float(ref.history[t])!r}, bound {dL[t]:.3g}")
        worst = max(worst, err[t] / dL[t])
        for j, (W, V) in enumerate(zip(r.factors, ref.factors, strict=True)):
            gap = np.linalg.norm(W - V) / np.linalg.norm(V)
            assert gap <= rel[-1], f"run {i}, layer {j}: relative error {gap:.3g} > {rel[-1]:.3g}"
            worst = max(worst, gap / rel[-1])
    return worst


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors of a few dozen entries: a second thread only contends for a loaded CPU (the C
    kernel splits a stack of B = 32 runs over one thread whatever the setting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextmanager
def watching(plain_graphs: bool = False):
    """Yield what ran: ``kinds``, the implementation :func:`plan.fused_kernel` chose for each
    fused stack; ``blocks``, (class, live rows) of every fused block; ``epochs``, the number
    of stacks run per epoch. With `plain_graphs`, the CPU's fused stacks skip the C kernel
    and run the graphs of kernels.fused and kernels.gram op by op, not compiled."""
    seen = {"kinds": [], "blocks": [], "epochs": 0}
    choose, per_epoch = plan.fused_kernel, fit_module.run_stack

    def run_stack(*args):
        seen["epochs"] += 1
        return per_epoch(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "fused_kernel", lambda *a: seen["kinds"].append(choose(*a)) or seen["kinds"][-1])
        for cls in (fused.Native, fused.Factors, gram.Gram):
            mp.setattr(cls, "block", _spy_block(cls.block, seen["blocks"]))
        mp.setattr(fit_module, "run_stack", run_stack)
        if plain_graphs:
            mp.setattr(plan, "native_kernel", lambda path, depth=2: None)
            mp.setattr(fused, "compiled_sgd_block", lambda: fused.sgd_block)
            mp.setattr(gram, "compiled_gram_block", lambda: gram.gram_block)
        yield seen


def _spy_block(block, log):
    def spy(self, *args):
        log.append((type(self).__name__, int(self.live.sum())))
        return block(self, *args)
    return spy


def _one_fused_stack(ran, cls: str) -> None:
    assert ran["kinds"] and ran["epochs"] == 0
    assert {name for name, _ in ran["blocks"]} == {cls} and ran["blocks"][0][1] == B  # every run, in it


stacks = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16), "reduction": st.sampled_from(["sum", "mean"]), "epochs": st.integers(9, 24),
})


def _fit(data, configs, factors, compile, **watch):
    with watching(**watch) as ran:
        return fit_batched(data, configs, factors=factors, compile=compile), ran


@needs_cc
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hyper", list(HYPERS))
@EXAMPLES
@given(draw=stacks)
def test_the_c_kernel_steps_as_optim(depth, hyper, draw):
    data, configs, factors = _stack(depth=depth, hyper=HYPERS[hyper], **draw)
    results, ran = _fit(data, configs, factors, compile=True)
    assert set(ran["kinds"]) == {"c"}
    _one_fused_stack(ran, "Native")
    assert_follows(data, configs, results, reference(data, configs, factors))


@needs_cc
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hyper", ["plain", "all"])
@EXAMPLES
@given(draw=stacks)
def test_the_c_kernel_in_float32_steps_as_optim(depth, hyper, draw):
    data, configs, factors = _stack(depth=depth, hyper=HYPERS[hyper], dtype="float32", **draw)
    results, ran = _fit(data, configs, factors, compile=True)
    assert set(ran["kinds"]) == {"c"}
    _one_fused_stack(ran, "Native")
    assert_follows(data, configs, results, reference(data, configs, factors), eps=EPS32)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hyper", BRANCHES)
@settings(EXAMPLES, max_examples=1)
@given(draw=stacks)
def test_the_fused_graph_on_the_factors_steps_as_optim(depth, hyper, draw):
    data, configs, factors = _stack(depth=depth, hyper=HYPERS[hyper], **draw)
    results, ran = _fit(data, configs, factors, compile=True, plain_graphs=True)
    assert set(ran["kinds"]) == {"factors"}
    _one_fused_stack(ran, "Factors")
    assert_follows(data, configs, results, reference(data, configs, factors))


@pytest.mark.parametrize("hyper", ["plain", "decay"])
@EXAMPLES
@given(draw=stacks)
def test_the_gram_matrix_steps_as_optim(hyper, draw):
    # depth 2, no momentum, hidden layers of at least GRAM_WIDTH: trained on (K, Φ), the factors
    # formed once, at the end
    data, configs, factors = _stack(depth=2, hyper=HYPERS[hyper], hidden=(gram.GRAM_WIDTH, 20, 24), **draw)
    results, ran = _fit(data, configs, factors, compile=True, plain_graphs=True)
    assert set(ran["kinds"]) == {"gram"}
    _one_fused_stack(ran, "Gram")
    assert_follows(data, configs, results, reference(data, configs, factors))


@pytest.mark.parametrize("depth, hidden", [(1, ()), (2, (1, 3, 6)), (3, (1, 3, 6)), (2, (9, 12)), (3, (9, 12))],
                         ids=["depth1", "depth2-run-last", "depth3-run-last", "depth2-bmm", "depth3-bmm"])
@pytest.mark.parametrize("hyper", BRANCHES)
@settings(EXAMPLES, max_examples=1)
@given(draw=stacks)
def test_the_per_epoch_loop_steps_as_optim(depth, hidden, hyper, draw):
    # update.sgd_into on the statistics path's gradients; hidden layers of at most 8 keep the
    # run index last (elementwise products), wider ones go through torch.bmm
    data, configs, factors = _stack(depth=depth, hyper=HYPERS[hyper], hidden=hidden or (1,), **draw)
    layouts, last = [], StatsPath._batch_last
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StatsPath, "_batch_last", lambda self, fs: layouts.append(len(fs)) or last(self, fs))
        results, ran = _fit(data, configs, factors, compile=False)
    assert ran["kinds"] == [] and ran["blocks"] == [] and ran["epochs"] >= 1
    assert bool(layouts) == (max(hidden, default=1) <= 8)
    assert_follows(data, configs, results, reference(data, configs, factors))


@needs_cc
@pytest.mark.parametrize("change", [
    {"nesterov": False}, {"lr": 1 + 1e-9}, {"momentum": 1 + 1e-9}, {"weight_decay": 1 + 1e-8},
], ids=["nesterov-off", "lr", "momentum", "weight-decay"])
def test_the_bounds_tell_a_slightly_different_step_apart(change):
    # the C kernel's runs against a reference whose update differs by one hyper-parameter, by a
    # part in 10⁸ or 10⁹ where it is a number: the bounds are that tight
    data, configs, factors = _stack(seed=1, depth=2, hyper=HYPERS["all"], reduction="sum", epochs=12)
    results, ran = _fit(data, configs, factors, compile=True)
    assert set(ran["kinds"]) == {"c"}
    assert_follows(data, configs, results, reference(data, configs, factors))
    ((name, value),) = change.items()
    other = [c.replace(**{name: value if isinstance(value, bool) else getattr(c, name) * value}) for c in configs]
    with pytest.raises(AssertionError, match=r"run \d+, (epoch|layer)"):
        assert_follows(data, configs, results, reference(data, other, factors))



@needs_cc
def test_numpy_hyper_parameters_run_in_the_c_kernel():
    # a sweep over np.linspace momenta: NumPy's float64 flags once failed the kernel's ctypes call,
    # and the stack fell back to the per-epoch loop
    data, configs, factors = _stack(seed=2, depth=2, hyper=HYPERS["all"], reduction="mean", epochs=12)
    configs = [c.replace(momentum=np.float64(c.momentum), weight_decay=np.float64(c.weight_decay),
                         lr=np.float64(c.lr)) for c in configs]
    assert all(type(c.momentum) is float and type(c.weight_decay) is float for c in configs)
    results, ran = _fit(data, configs, factors, compile=True)
    assert set(ran["kinds"]) == {"c"}
    _one_fused_stack(ran, "Native")
    assert_follows(data, configs, results, reference(data, configs, factors))
