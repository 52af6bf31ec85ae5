"""``fit_batched``: many runs on one dataset at once, stack by stack as :mod:`.plan` decides."""

from __future__ import annotations

import gc
import itertools
import operator
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from ...config import TrainConfig
from ...data import Dataset
from ...models import draw_factors, init_biases
from ...results import RunResult
from ...seeding import seeded
from ..torch_engines import DTYPES, torch_device
from . import plan
from .columns import column, pick, uniform
from .epochs import run_stack
from .kernels.fused import run_stack_fused
from .records import records, truth
from .state import RunRows, padded_widths


@contextmanager
def _flush_denormals():
    """``torch.set_flush_denormal(True)`` inside, ``False`` after (denormals slow CPUs 30-50x)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _check(data, configs, factors, memory_budget, device, path) -> None:
    if not isinstance(data, Dataset):
        raise ValueError(f"data={type(data).__name__} is not a Dataset; wrap arrays as Dataset(X, Y).")
    if not configs or not all(map(isinstance, configs, itertools.repeat(TrainConfig))):
        raise ValueError("configs must be a non-empty sequence of TrainConfig; e.g. [TrainConfig(lr=1e-5)].")
    if path not in plan.PATHS:
        raise ValueError(f"path={path!r} is not one of {', '.join(map(repr, plan.PATHS))}.")
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget={memory_budget!r} must be a positive number of bytes, e.g. 2 * 1024**3.")
    if factors is not None and len(factors) != len(configs):
        raise ValueError(f"factors has {len(factors)} entries for {len(configs)} configs; give one list per run.")
    for widths in set(column(configs, "widths")):
        if (widths[0], widths[-1]) != (data.n_features, data.n_targets):
            raise ValueError(
                f"widths={widths} need {widths[0]} features and {widths[-1]} targets, but "
                f"{data.name!r} has {data.n_features} and {data.n_targets}; use widths "
                f"({data.n_features}, ..., {data.n_targets})."
            )
    if device is not None and device != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'cuda' (or 'cuda:N').")
    for dev in {device} if device is not None else set(column(configs, "device")):
        torch_device(dev)


def _initial(configs, factors) -> list[list[np.ndarray]]:
    if factors is None:  # runs that differ only in lr or optimizer start from one draw (each from its own copy)
        keys = list(zip(*(column(configs, name) for name in ("widths", "init", "init_scale", "seed"))))
        distinct = list(dict.fromkeys(keys))
        rngs = seeded(key[3] for key in distinct)  # one Generator, moved to each seed's state in turn
        drawn = {key: draw_factors(*key, rng=rng) for key, rng in zip(distinct, rngs)}
        out, given = [], set()
        for key in keys:
            out.append([W.copy() for W in drawn[key]] if key in given else drawn[key])
            given.add(key)
        return out
    widths_of = column(configs, "widths")
    by_widths: dict[tuple, list[int]] = {}
    if uniform(widths_of):
        by_widths[widths_of[0]] = list(range(len(configs)))
    else:
        for i, widths in enumerate(widths_of):
            by_widths.setdefault(widths, []).append(i)
    out: list = [None] * len(configs)
    for widths, runs in by_widths.items():  # one copy per layer of all the runs of an architecture
        shapes, given = list(zip(widths[:-1], widths[1:])), pick(factors, runs)
        fits = set(map(len, given)) == {len(shapes)}
        layers = [_layer(given, j, shape) for j, shape in enumerate(shapes)] if fits else [None]
        if any(layer is None for layer in layers):
            _misfit(factors, runs, shapes, widths)
        if len(runs) == len(configs):  # one architecture: its layers travel with the runs' views
            return RunRows(layers)
        for i, fs in zip(runs, RunRows(layers)):
            out[i] = fs
    return out


def _layer(given, j: int, shape) -> np.ndarray | None:
    # layer j of the runs' factors as one float64 array (runs, *shape); None where one has another shape
    try:
        layer = np.array(list(map(operator.itemgetter(j), given)), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return layer if layer.shape == (len(given), *shape) else None


def _misfit(factors, runs, shapes, widths):
    for i in runs:
        found = [np.shape(W) for W in factors[i]]
        if found != shapes:
            raise ValueError(f"factors[{i}] have shapes {found}; widths={widths} need {shapes}.")
    raise ValueError(f"factors for widths={widths} must be arrays of real numbers of shapes {shapes}.")


def _resolve_lr(data, config, factors) -> float:
    if config.lr != "auto":
        return float(config.lr)
    from ...theory import auto_lr

    return float(auto_lr(data, config, factors, init_biases(config.widths, config.bias)))


def fit_batched(
    data: Dataset,
    configs: Sequence[TrainConfig],
    *,
    factors: Sequence[list[np.ndarray]] | None = None,
    memory_budget: int = 2 * 1024**3,
    device: str | None = None,
    path: str = "auto",
    compile: bool | str = "auto",
) -> list[RunResult]:
    """Train many runs on one dataset at once; one :class:`RunResult` per config, in order.

    Every run follows :func:`linlab.engines.fit`'s trajectory from the same initial
    factors (to rounding) and stops by the same rules at the same epoch.

    Parameters
    ----------
    data : Dataset
    configs : sequence of TrainConfig
        May differ in widths (same d and k), depth, lr, schedule, init, seed, epochs, stop
        rules, optimizer, loss, dtype and device; runs are grouped by what cannot share a
        stack. ``config.engine`` is ignored (the record says ``"batched"``).
    factors : sequence of lists of ndarray, optional
        Initial factors per run; by default ``init_factors(c.widths, c.init, c.init_scale, c.seed)``.
    memory_budget : int
        Bytes the stacks, activations and histories may take at once; larger sweeps run in
        chunks of runs, larger data in chunks of rows.
    device : str, optional
        ``"cpu"`` or ``"cuda"``, overriding each config's device.
    path : {"auto", "stats", "data"}
        ``"auto"``: the statistics for squared loss without bias, the rows otherwise.
        Mini-batch runs (``batch_size < n``) train one at a time through ``fit``.
    compile : {"auto", True, False}
        Compile the statistics path's epochs (runs agree with the eager path to rounding, not
        bit for bit). SGD stacks then run their epochs, stop rules and updates included,
        inside compiled code (:mod:`.kernels.fused`): on the CPU the whole training of a
        stack in one call of a C kernel (:mod:`.kernels.native`, built in about a second
        once per machine), elsewhere through TorchInductor in blocks of epochs, wide
        depth-2 ones on the Gram matrix (:mod:`.kernels.gram`). Other optimizers compile the
        loss and gradient with TorchInductor (:mod:`.kernels.compiled`; 5-60 s once per
        process and graph). Both need a
        C/C++ compiler; without one the call warns and runs eagerly. ``"auto"`` uses the C
        kernel on the CPU whenever a C compiler is found, and TorchInductor for calls whose
        statistics-path runs plan at least 50 million run-epochs.

    Returns
    -------
    list of RunResult

    Notes
    -----
    Statistics path, per run: P = W1⋯WL, Δ = P − P_ls,
    ℓ = ‖RΔ‖² + 2tr(Δᵀr) + L*, ∂ℓ/∂P = 2(AΔ + r) (see :mod:`.objective_stats`), then
    ∂ℓ/∂W_j = (W1⋯W_{j-1})ᵀ (∂ℓ/∂P) (W_{j+1}⋯WL)ᵀ.

    Examples
    --------
    >>> from linlab.data import seed_dataset
    >>> runs = [TrainConfig(widths=(10, h, 2), lr=lr, epochs=300, seed=1)
    ...         for h in (1, 5) for lr in (1e-5, 1e-3)]
    >>> [r.outcome for r in fit_batched(seed_dataset(), runs)]
    ['stalled', 'diverged', 'converged', 'diverged']
    """
    configs = list(configs)
    _check(data, configs, factors, memory_budget, device, path)
    plan.check_mode(compile)
    with _without_cycle_collection():
        return _fit(data, configs, factors, memory_budget, device, path, compile)


@contextmanager
def _without_cycle_collection():
    """The cyclic garbage collector paused inside: a sweep builds many small containers (configs,
    records) and no reference cycles, and the collector's passes over them would cost about a
    quarter of a sweep's time at B = 10,000. The records outlive the call, so they go straight
    to the oldest generation (``gc.freeze`` then ``gc.unfreeze``, where nothing else is frozen)
    rather than through a pass of the youngest when the collector resumes, another tenth."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _fit(data, configs, factors, memory_budget, device, path, compile) -> list[RunResult]:
    starts = _initial(configs, factors)
    lrs = column(configs, "lr")
    lrs = ([float(c.lr) if c.lr != "auto" else _resolve_lr(data, c, f) for c, f in zip(configs, starts)]
           if "auto" in lrs else list(map(float, lrs)))
    groups = plan.groups(configs, path, device, data.n_samples)
    results: list[RunResult | None] = [None] * len(configs)
    tick = time.perf_counter()
    stats_keys = [key for key in groups if key.path == "stats"]
    planned = sum(sum(column(pick(configs, groups[key]), "epochs")) for key in stats_keys)
    cpu_only = all(key.device == "cpu" for key in stats_keys)
    compiling = plan.compile_plan(compile, "cpu" if cpu_only else "cuda", planned)
    paths = plan.Objectives(data, memory_budget, compiling)
    with _flush_denormals():
        for key, indices in groups.items():
            if key.path != "minibatch":
                _stacked(data, configs, starts, lrs, key, indices, paths, memory_budget, results)
    for key, indices in groups.items():  # fit flushes denormals itself
        if key.path == "minibatch":
            _one_by_one(data, configs, starts, key, indices, results)
    shared = (time.perf_counter() - tick - sum(r.seconds for r in results)) / len(results)
    for r in results:  # the statistics and set-up, shared evenly
        r.seconds += max(shared, 0.0)
    return results


def _stacked(data, configs, starts, lrs, key, indices, paths, budget, results) -> None:
    source = paths.get(key)
    dtype, device = DTYPES[key.dtype], torch_device(key.device)
    data_path = source if key.path == "data" else None
    for members in plan.classes(pick(configs, indices), source):
        _stacked_class(data, configs, starts, lrs, key, pick(indices, members), source, data_path,
                       dtype, device, budget, results)


def _stacked_class(data, configs, starts, lrs, key, indices, source, data_path, dtype, device, budget,
                   results) -> None:
    widths, known = padded_widths(column(pick(configs, indices), "widths")), truth(data)
    compiled = getattr(source, "compiled", None) is not None
    for chunk in plan.chunks(indices, key, widths, configs, budget, data_path, compiled):
        group = pick(configs, chunk)
        begin = starts.take(chunk) if isinstance(starts, RunRows) else pick(starts, chunk)
        args = (source, group, begin, pick(lrs, chunk), widths, dtype, device)
        done = run_stack_fused(*args) if plan.eligible(source, group) else None
        rules, finals, seconds = done if done is not None else run_stack(*args, data)
        done = records(data, group, key.device, rules, finals, seconds, begin, known)
        for i, result in zip(chunk, done):
            results[i] = result


def _one_by_one(data, configs, starts, key, indices, results) -> None:
    from ..loop import fit

    for i in indices:
        c = configs[i].replace(engine="batched", device=key.device)
        results[i] = fit(data, c, factors=starts[i])
