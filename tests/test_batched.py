"""The batched engine: every run of a stack follows the single-run loop's trajectory."""

import copy
import itertools

import numpy as np
import pytest
import torch
from conftest import same_history
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linlab import Dataset, TrainConfig, fit, init_factors, synthetic
from linlab.engines.batched import fit_batched, width_classes
from linlab.engines.batched import objective_stats as batched_stats
from linlab.engines.batched.objective_stats import gram_stats, least_squares_terms
from linlab.stats import Stats

WIDTHS = [(10, 2), (10, 1, 2), (10, 5, 2), (10, 3, 4, 2), (10, 8, 2)]


def assert_same_run(r, ref, rows=1000):
    """`r` took the course of `ref` to rounding (conftest.rounding_rtol, data of `rows` rows)."""
    assert (r.outcome, r.epochs, r.epochs_to_tol) == (ref.outcome, ref.epochs, ref.epochs_to_tol)
    assert len(r.history) == len(ref.history) == r.epochs + 1
    rtol = same_history(ref.history, r.history, rows)
    for W, V in zip(r.factors, ref.factors, strict=True):
        assert W.shape == V.shape
        assert np.max(np.abs(W - V)) <= rtol * np.max(np.abs(V))
    if ref.distance_to_true is not None:
        assert r.distance_to_true == pytest.approx(ref.distance_to_true, rel=rtol)
    assert all(np.array_equal(W, V) for W, V in zip(r.initial_factors, ref.initial_factors, strict=True))


def numpy_refs(data, configs, factors=None):
    factors = factors or [None] * len(configs)
    return [fit(data, c.replace(engine="numpy"), factors=f) for c, f in zip(configs, factors)]


def sweep(opt, lrs, epochs=200):
    """Mixed widths and depths, one lr per run, seeds per run."""
    pairs = itertools.product(WIDTHS, lrs)
    return [TrainConfig(widths=w, lr=lr, epochs=epochs, seed=s, **opt) for s, (w, lr) in enumerate(pairs)]


SGD_LRS = [1e-5, 1e-4, 1e-3]


@pytest.mark.parametrize("opt, lrs", [
    (dict(), SGD_LRS),
    (dict(momentum=0.9), SGD_LRS),
    (dict(momentum=0.5, nesterov=True, weight_decay=1e-3), SGD_LRS),
    (dict(optimizer="adam"), [0.01, 0.1, 3.0]),
    (dict(optimizer="adamw", weight_decay=0.01), [0.01, 0.1]),
    (dict(optimizer="adagrad"), [0.01, 0.1, 3.0]),
    (dict(optimizer="rmsprop"), [1e-4, 1e-3]),  # larger steps make RMSprop chaotic in every engine
], ids=["sgd", "momentum", "nesterov-wd", "adam", "adamw", "adagrad", "rmsprop"])
def test_every_run_follows_the_numpy_engine(seed_data, opt, lrs):
    configs = sweep(opt, lrs)
    for r, ref in zip(fit_batched(seed_data, configs), numpy_refs(seed_data, configs), strict=True):
        assert_same_run(r, ref)
        assert r.message == ref.message
        assert r.config == {**ref.config, "engine": "batched"}


def test_one_batch_holds_every_outcome(seed_data):
    # plain SGD on the seed: lr 1e-3 blows up, (10, 2) converges, (10, 1, 2) stalls at its rank floor
    configs = sweep({}, SGD_LRS)
    results = fit_batched(seed_data, configs)
    outcomes = {r.outcome for r in results}
    assert outcomes == {"diverged", "converged", "stalled", "max_epochs"}
    diverged = [r for r in results if r.outcome == "diverged"]
    assert all(np.isfinite(W).all() for r in diverged for W in r.factors)
    assert all(np.isfinite(r.history).all() for r in results)
    stalled = [r for r in results if r.outcome == "stalled"]
    assert [tuple(r.config["widths"]) for r in stalled] == [(10, 1, 2)]


def test_runs_differ_in_epochs_schedule_and_stop_rules(seed_data):
    configs = [
        TrainConfig(widths=(10, 5, 2), lr=1e-5, epochs=40, seed=1, schedule="step", step_size=7, gamma=0.5),
        TrainConfig(widths=(10, 5, 2), lr=2e-5, epochs=120, seed=2, schedule="cosine"),
        TrainConfig(widths=(10, 3, 2), lr=1e-5, epochs=90, seed=3, schedule="exponential", gamma=0.99),
        TrainConfig(widths=(10, 1, 2), lr=1e-5, epochs=300, seed=4, stall_window=20, stall_rtol=1e-4),
        TrainConfig(widths=(10, 2), lr=1e-4, epochs=300, seed=5, tol=10.0),
        TrainConfig(widths=(10, 6, 2), lr=2e-5, epochs=0, seed=6),
        TrainConfig(widths=(10, 6, 2), lr=5e-4, epochs=80, seed=7, diverge_factor=10.0),
    ]
    for r, ref in zip(fit_batched(seed_data, configs), numpy_refs(seed_data, configs), strict=True):
        assert_same_run(r, ref)
        assert r.message == ref.message


@pytest.fixture(scope="module")
def noisy():
    return synthetic(n=64, d=5, k=3, noise=0.1, seed=3)


@pytest.mark.parametrize("loss", [dict(loss="lp", p=4.0, lr=1e-4), dict(loss="lp", p=1.5, lr=1e-3),
                                  dict(loss="huber", delta=0.5, lr=2e-3),
                                  dict(loss="squared", reduction="mean", lr=0.05)],
                         ids=["l4", "l1.5", "huber", "mean"])
@pytest.mark.parametrize("bias", [False, True])
def test_data_path_agrees_for_any_loss(noisy, loss, bias):
    configs = [TrainConfig(widths=w, epochs=100, seed=s, bias=bias, tol=0.0, **loss)
               for s, w in enumerate([(5, 3), (5, 2, 3), (5, 4, 2, 3)])]
    factors = [init_factors(c.widths, "scaled", 0.5, seed=c.seed) for c in configs]
    results = fit_batched(noisy, configs, factors=factors, path="data")
    for r, ref in zip(results, numpy_refs(noisy, configs, factors), strict=True):
        assert_same_run(r, ref, rows=64)
        if bias:
            assert all(np.allclose(b, c, rtol=1e-8, atol=1e-12) for b, c in zip(r.biases, ref.biases))


def test_both_paths_agree_on_squared_loss(seed_data):
    configs = sweep(dict(momentum=0.5), [1e-5, 1e-4], epochs=60)
    stats = fit_batched(seed_data, configs, path="stats")
    rows = fit_batched(seed_data, configs, path="data")
    for a, b in zip(stats, rows, strict=True):
        assert_same_run(a, b)


def test_float32_runs_follow_the_float32_numpy_engine(seed_data):
    configs = [TrainConfig(widths=w, lr=1e-5, epochs=200, seed=s, dtype="float32")
               for s, w in enumerate([(10, 2), (10, 5, 2), (10, 8, 2)])]
    results = fit_batched(seed_data, configs)
    for r, ref in zip(results, numpy_refs(seed_data, configs), strict=True):
        assert (r.outcome, r.epochs) == (ref.outcome, ref.epochs)
        # float32 rounding, relative to each loss and to the initial loss's scale
        assert np.all(np.abs(r.history - ref.history) <= 1e-5 * ref.history + 1e-10 * ref.history[0])
        assert r.config["dtype"] == "float32"
    assert any(r.outcome == "converged" for r in results)


def test_a_tiny_memory_budget_gives_the_same_results(seed_data, noisy):
    configs = sweep(dict(momentum=0.9), SGD_LRS, epochs=80)
    whole = fit_batched(seed_data, configs)
    pieces = fit_batched(seed_data, configs, memory_budget=20_000)
    # equal to rounding (BLAS kernels may sum in another order for another number of rows),
    # here amplified by runs on their way to diverging
    for a, b in zip(whole, pieces, strict=True):
        assert_same_run(a, b)
    lp = [TrainConfig(widths=w, loss="huber", lr=1e-3, epochs=30, seed=1) for w in [(5, 3), (5, 4, 3), (5, 7, 3)]]
    for a, b in zip(fit_batched(noisy, lp), fit_batched(noisy, lp, memory_budget=7_000), strict=True):
        assert_same_run(a, b, rows=64)


def test_a_run_larger_than_the_memory_budget_is_refused(noisy):
    wide = [TrainConfig(widths=(5, 7, 3), loss="huber", lr=1e-3, epochs=30, seed=1)]  # about 6 KB
    with pytest.raises(ValueError, match=r"one run of widths \(5, 7, 3\) .* more than memory_budget=3,000"):
        fit_batched(noisy, wide, memory_budget=3_000)


def test_padding_is_exact(seed_data):
    # a narrow run alone and in a stack padded to width 30 end in the same place
    narrow = TrainConfig(widths=(10, 2, 3, 2), lr=1e-5, epochs=100, seed=4, optimizer="adam")
    wide = narrow.replace(widths=(10, 30, 20, 2), seed=5)
    alone = fit_batched(seed_data, [narrow])[0]
    stacked = fit_batched(seed_data, [narrow, wide])[0]
    assert_same_run(stacked, alone)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the NumPy reference overflows, as it should
def test_a_run_with_an_infinite_start_leaves_the_others_alone(seed_data):
    huge = [1e200 * W for W in init_factors((10, 5, 2), seed=9)]
    configs = [TrainConfig(widths=(10, 5, 2), lr=1e-5, epochs=50, seed=s) for s in range(3)]
    factors = [init_factors(c.widths, seed=c.seed) for c in configs]
    results = fit_batched(seed_data, configs, factors=[factors[0], huge, factors[2]])
    refs = numpy_refs(seed_data, [configs[0], configs[2]], [factors[0], factors[2]])
    assert results[1].outcome == "diverged"
    assert results[1].epochs == -1 and np.isnan(results[1].final_loss)  # no finite loss at all
    assert results[1].message.startswith("the initial loss is")
    with pytest.raises(ValueError, match="the loss at the initial factors is inf"):
        fit(seed_data, configs[1], factors=huge)  # a single run refuses to start
    refs = [refs[0], None, refs[1]]
    for i in (0, 2):
        assert_same_run(results[i], refs[i])


def test_auto_lr_is_resolved_and_lowered_as_fit_does(seed_data):
    # the last run's loss rises on the way: fit halves its lr (at least) each time
    configs = [TrainConfig(widths=w, lr="auto", epochs=400, seed=2) for w in [(10, 2), (10, 4, 2)]]
    configs.append(TrainConfig(widths=(10, 5, 2), lr="auto", init="scaled", init_scale=0.1, epochs=400))
    results = fit_batched(seed_data, configs)
    for r, ref in zip(results, numpy_refs(seed_data, configs), strict=True):
        assert r.lr == pytest.approx(ref.lr, rel=1e-9) and r.config["lr"] == "auto"
        assert_same_run(r, ref)
        assert [c["epoch"] for c in r.extra.get("lr_changes", [])] == [
            c["epoch"] for c in ref.extra.get("lr_changes", [])]
    assert results[-1].extra["lr_changes"]


def test_minibatch_runs_go_through_the_single_run_loop(noisy):
    configs = [TrainConfig(widths=(5, 4, 3), lr=2e-4, epochs=20, batch_size=16, momentum=0.5, seed=1),
               TrainConfig(widths=(5, 3), lr=2e-4, epochs=20, seed=2)]
    for r, ref in zip(fit_batched(noisy, configs), numpy_refs(noisy, configs), strict=True):
        assert_same_run(r, ref, rows=64)


@pytest.mark.parametrize("settings", [dict(), dict(bias=True, loss="huber"), dict(batch_size=16, bias=True),
                                      dict(optimizer="adam", lr=0.02)], ids=["stats", "data", "minibatch", "adam"])
def test_fit_with_engine_batched_matches_numpy(noisy, settings):
    config = TrainConfig(**{**dict(widths=(5, 4, 3), lr=2e-4, epochs=60, tol=0.0, seed=3), **settings})
    val = synthetic(n=20, d=5, k=3, noise=0.1, seed=4)
    r = fit(noisy, config.replace(engine="batched"), val=val)
    ref = fit(noisy, config, val=val)
    assert_same_run(r, ref, rows=64)
    same_history(ref.val_history, r.val_history, rows=64)


def test_fit_with_engine_batched_resumes(noisy):
    config = TrainConfig(widths=(5, 4, 3), lr=0.02, epochs=40, tol=0.0, optimizer="adam", engine="batched")
    saved = {}
    keep = lambda e: saved.setdefault(e.epoch, copy.deepcopy(e.state())) if e.epoch == 15 else None  # noqa: E731
    full = fit(noisy, config, callbacks=(keep,))
    resumed = fit(noisy, config, resume=saved[15])
    assert np.array_equal(resumed.history, full.history)
    assert saved[15]["optimizer"]["exp_avg"][0].shape == (5, 4)


def test_statistics_guard_the_loss_near_zero(seed_data):
    # at P = P_ls + 1e-9 the loss is ~1e-13 while ‖Y‖² ~ 1e6: the textbook form loses it
    X, Y = seed_data.X.astype(np.float64), seed_data.Y.astype(np.float64)
    stats = gram_stats(seed_data.X, seed_data.Y, chunk_rows=300)
    assert np.allclose(stats.A, X.T @ X, rtol=1e-13) and stats.n == 1000
    terms = least_squares_terms(stats, seed_data.X, seed_data.Y)
    P = terms.P + 1e-9
    exact = float(np.sum((X @ P - Y) ** 2))
    config = TrainConfig(widths=(10, 2), lr=1e-30, epochs=0)
    got = fit_batched(seed_data, [config], factors=[[P]])[0].history[0]
    assert got == pytest.approx(exact, rel=1e-6)
    textbook = Stats.of(X, Y).squared_loss(P)
    assert abs(textbook - exact) > 1e3 * abs(got - exact)


def test_least_squares_terms_from_the_statistics_alone(noisy, monkeypatch):
    # noisy data: L* is far above the rounding of ‖Y‖², so the rows are not needed
    X, Y = noisy.X, noisy.Y
    stats = gram_stats(X, Y)
    rows, alone = least_squares_terms(stats, X, Y), least_squares_terms(stats)
    assert rows.on_rows and not alone.on_rows
    assert alone.loss == pytest.approx(rows.loss, rel=1e-10)
    assert np.allclose(alone.P, rows.P, rtol=1e-12) and np.allclose(rows.root.T @ rows.root, stats.A)
    P = rows.P + 0.01 * np.random.default_rng(1).standard_normal(rows.P.shape)
    D = P - rows.P
    decomposed = np.sum((rows.root @ D) ** 2) + 2 * np.sum(D * rows.r) + rows.loss
    assert decomposed == pytest.approx(np.sum((X @ P - Y) ** 2), rel=1e-12)
    # large data takes that branch (a new Dataset: the constants are kept per dataset)
    monkeypatch.setattr(batched_stats, "SMALL_DATA", 0)
    fresh = Dataset(X, Y, noisy.W_true, name="noisy")
    configs = [TrainConfig(widths=w, lr=2e-3, epochs=100, seed=1) for w in [(5, 3), (5, 4, 3)]]
    for r, ref in zip(fit_batched(fresh, configs), numpy_refs(fresh, configs), strict=True):
        assert_same_run(r, ref, rows=64)
    assert not batched_stats.dataset_terms(fresh)[1].on_rows


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hidden=st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=2), min_size=1, max_size=5),
       log_lrs=st.lists(st.floats(-5.0, -3.5), min_size=5, max_size=5),
       momentum=st.sampled_from([0.0, 0.9]), seed=st.integers(0, 1000))
def test_random_sweeps_agree(noisy, hidden, log_lrs, momentum, seed):
    # lrs well inside the stable range (near its edge the dynamics are chaotic and amplify
    # rounding in every engine), plus one run that surely diverges
    lrs = [10.0**lr for lr in log_lrs[: len(hidden)]] + [1.0]
    configs = [TrainConfig(widths=(5, *h, 3), lr=lr, epochs=30, seed=seed + i, momentum=momentum,
                           init="scaled", init_scale=0.5, tol=1e-3)
               for i, (h, lr) in enumerate(zip(hidden + [hidden[0]], lrs))]
    results = fit_batched(noisy, configs)
    for r, ref in zip(results, numpy_refs(noisy, configs), strict=True):
        assert_same_run(r, ref, rows=64)
    assert results[-1].outcome == "diverged"


def test_runs_that_share_a_seed_share_the_draw_but_not_the_arrays(seed_data):
    from linlab.models import init_factors

    configs = [TrainConfig(widths=(10, 3, 2), lr=lr, epochs=3, seed=7) for lr in (1e-6, 1e-5)]
    configs.append(TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=3, seed=8))
    a, b, c = fit_batched(seed_data, configs)
    for W, V, U in zip(a.initial_factors, b.initial_factors, init_factors((10, 3, 2), seed=7)):
        assert np.array_equal(W, U) and np.array_equal(V, U) and not np.shares_memory(W, V)
    assert not np.array_equal(c.initial_factors[0], a.initial_factors[0])


def test_width_classes_bound_the_padding():
    widths = [(10, h, 2) for h in range(1, 65)] * 10
    classes = width_classes(widths, min_stack=100)
    assert sorted(i for c in classes for i in c) == list(range(640))
    for c in classes:
        hs = [widths[i][1] for i in c]
        assert len(c) >= 100 or c is classes[-1]
        assert max(hs) <= 64 and (max(hs) <= 2 * min(hs) or min(hs) <= 16)


def test_denormals_are_flushed_only_during_the_call(seed_data):
    fit_batched(seed_data, [TrainConfig(epochs=2)])
    assert (torch.tensor([1e-310], dtype=torch.float64) * 1.0).item() != 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(path="fast"), "path='fast'"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(memory_budget=0), "memory_budget=0"),
    (dict(factors=[[np.zeros((10, 2))]] * 2), "factors has 2 entries"),
    (dict(factors=[[np.zeros((10, 3))]]), r"factors\[0\] have shapes"),
])
def test_bad_arguments_say_what_to_do(seed_data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_batched(seed_data, [TrainConfig(widths=(10, 2))], **kwargs)


def test_bad_configs_say_what_to_do(seed_data):
    with pytest.raises(ValueError, match="path='stats' needs loss='squared'"):
        fit_batched(seed_data, [TrainConfig(loss="huber")], path="stats")
    with pytest.raises(ValueError, match=r"widths=\(5, 2\) need 5 features"):
        fit_batched(seed_data, [TrainConfig(widths=(5, 2))])
    with pytest.raises(ValueError, match="non-empty sequence"):
        fit_batched(seed_data, [])
    with pytest.raises(ValueError, match="not a Dataset"):
        fit_batched((seed_data.X, seed_data.Y), [TrainConfig()])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_without_a_gpu_is_a_clear_error(seed_data):
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit_batched(seed_data, [TrainConfig()], device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(seed_data):
    configs = sweep(dict(momentum=0.9), SGD_LRS, epochs=60)
    for a, b in zip(fit_batched(seed_data, configs, device="cuda"), fit_batched(seed_data, configs), strict=True):
        assert_same_run(a, b)


def test_collinear_features_still_give_the_exact_loss():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    X = np.hstack([X, X[:, :1]])  # XᵀX is singular
    data = Dataset(X, X @ rng.standard_normal((4, 2)), name="collinear")
    configs = [TrainConfig(widths=(4, 3, 2), lr=1e-3, epochs=50, seed=1),
               TrainConfig(widths=(4, 2), lr=1e-2, epochs=50)]
    for r, ref in zip(fit_batched(data, configs), numpy_refs(data, configs), strict=True):
        assert_same_run(r, ref, rows=40)


@pytest.mark.parametrize("hyper", [dict(), dict(momentum=0.9),
                                   dict(momentum=0.5, nesterov=True, weight_decay=1e-2)],
                         ids=["sgd", "momentum", "nesterov-wd"])
def test_the_stacks_sgd_step_is_linlab_optim_sgd(hyper):
    # the stacked, allocation-free step against the one definition, with per-run learning rates
    from linlab import optim
    from linlab.engines.batched.update import sgd_into

    rng = np.random.default_rng(0)
    params = [torch.from_numpy(rng.standard_normal((3, 4, 2))) for _ in range(2)]
    lrs = torch.tensor([0.1, 0.01, 0.0], dtype=torch.float64).view(-1, 1, 1)
    config = TrainConfig(**hyper)
    ref = [[p[b].numpy().copy() for p in params] for b in range(3)]
    ref_states = [optim.SGDState(None)] * 3
    state = optim.SGDState(None)
    for _ in range(4):
        grads = [torch.from_numpy(rng.standard_normal((3, 4, 2))) for _ in range(2)]
        out = [torch.empty_like(p) for p in params]
        old, before = params, [p.clone() for p in params]
        params, state = sgd_into(out, old, grads, state, lrs, config)
        for b in range(3):
            ref_states[b] = optim.sgd(ref[b], [g[b].numpy() for g in grads], ref_states[b], float(lrs[b]), **hyper)
        assert all(torch.equal(p, q) for p, q in zip(old, before))  # the last state, kept as it was
    eps = np.finfo(np.float64).eps  # one rounding of each product and sum, fused or not
    for b in range(3):
        for p, r in zip(params, ref[b]):
            np.testing.assert_allclose(p[b].numpy(), r, rtol=8 * eps, atol=8 * eps * np.abs(r).max())
