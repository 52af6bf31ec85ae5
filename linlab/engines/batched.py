r"""Engine ``batched``: many runs at once, as a few large tensor operations.

Runs that share the data share its statistics (or its pass over the rows); runs of one
depth and one optimizer are stacked, zero-padded to common widths (exact: see
:mod:`.batched_stack`), and trained together under the single-run loop's stop rules
(:mod:`.batched_runs`). Two ways to a loss and gradient:

- ``"stats"`` (squared loss, no bias): from A = XᵀX, C = XᵀY and the least-squares
  constants, computed once in float64; an epoch costs nothing in n (:mod:`.batched_stats`).
- ``"data"`` (any loss, biases): one shared pass over the rows per epoch, the first layer
  of every run in one product (:mod:`.batched_data`).

Compiled, the statistics path runs SGD stacks in :mod:`.fused` (whole blocks of epochs per
call: the C kernel of :mod:`.native` on the CPU, TorchInductor elsewhere, :mod:`.gram` for
wide depth-2 SGD) and the other optimizers in :mod:`.compiled`.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import operator
import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch

from ..config import TrainConfig
from ..data import Dataset
from ..models import draw_factors, end_to_end, init_biases
from ..results import RunResult
from .batched_data import DataPath
from .batched_runs import run_stack
from .batched_stack import padded_widths
from .batched_stats import StatsPath, dataset_terms
from .compiled import check_mode, compile_plan
from .fused import eligible, gram_path, run_stack_fused
from .gram import GRAM_WIDTH, gram_dynamics
from .torch_engines import DTYPES, torch_device

PATHS = ("auto", "stats", "data")
MIN_STACK = 256  # runs: narrower width classes merge until a stack has this many
STACK_TENSOR_BYTES = 8 * 2**20  # largest tensor of a stack: beyond it, epochs run slower per run
COMPILED_TENSOR_BYTES = 4 * 2**20  # the same for compiled stacks (10% faster than 8 MiB at h = 16)
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_HYPER = ("optimizer", "momentum", "nesterov", "weight_decay", "betas", "eps", "alpha")
_GET_FIELDS = operator.attrgetter(*_FIELDS)
_GET_KEY = operator.attrgetter("batch_size", "loss", "bias", "reduction", "p", "delta", "dtype", "device", *_HYPER)


class _Key(NamedTuple):
    """What runs in one stack must share."""

    path: str  # stats, data, or minibatch (one run at a time through `fit`)
    depth: int
    bias: bool
    loss: tuple  # (loss, reduction, p, delta)
    hyper: tuple  # optimizer and its hyper-parameters
    dtype: str
    device: str


@contextmanager
def _flush_denormals():
    """``torch.set_flush_denormal(True)`` inside, ``False`` after (denormals slow CPUs 30-50x)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def choose_path(config: TrainConfig, path: str, n_samples: int) -> str:
    """Where a run's gradients come from: ``"stats"``, ``"data"`` or ``"minibatch"``.

    Examples
    --------
    >>> choose_path(TrainConfig(), "auto", 100), choose_path(TrainConfig(loss="huber"), "auto", 100)
    ('stats', 'data')
    """
    if config.batch_size is not None and config.batch_size < n_samples:
        return "minibatch"
    if path == "auto":
        return "stats" if config.loss == "squared" and not config.bias else "data"
    if path == "stats" and (config.loss != "squared" or config.bias):
        raise ValueError(
            f"path='stats' needs loss='squared' without bias, but a run has loss={config.loss!r}, "
            f"bias={config.bias}; use path='data' or path='auto'."
        )
    return path


def _check(data, configs, factors, memory_budget, device, path) -> None:
    if not isinstance(data, Dataset):
        raise ValueError(f"data={type(data).__name__} is not a Dataset; wrap arrays as Dataset(X, Y).")
    if not configs or not all(isinstance(c, TrainConfig) for c in configs):
        raise ValueError("configs must be a non-empty sequence of TrainConfig; e.g. [TrainConfig(lr=1e-5)].")
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {', '.join(map(repr, PATHS))}.")
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget={memory_budget!r} must be a positive number of bytes, e.g. 2 * 1024**3.")
    if factors is not None and len(factors) != len(configs):
        raise ValueError(f"factors has {len(factors)} entries for {len(configs)} configs; give one list per run.")
    for c in configs:
        if (c.widths[0], c.widths[-1]) != (data.n_features, data.n_targets):
            raise ValueError(
                f"widths={c.widths} need {c.widths[0]} features and {c.widths[-1]} targets, but "
                f"{data.name!r} has {data.n_features} and {data.n_targets}; use widths "
                f"({data.n_features}, ..., {data.n_targets})."
            )
    if device is not None and device != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'cuda' (or 'cuda:N').")
    for dev in {device} if device is not None else {c.device for c in configs}:
        torch_device(dev)


def _initial(configs, factors) -> list[list[np.ndarray]]:
    if factors is None:  # runs that differ only in lr or optimizer start from one draw (each from its own copy)
        drawn: dict[tuple, list[np.ndarray]] = {}
        out = []
        for c in configs:
            key = (c.widths, c.init, c.init_scale, c.seed)
            if key in drawn:
                out.append([W.copy() for W in drawn[key]])
            else:
                out.append(drawn.setdefault(key, draw_factors(*key)))
        return out
    out = []
    for i, (c, fs) in enumerate(zip(configs, factors)):
        fs = [np.array(W, dtype=np.float64) for W in fs]  # a copy: the records keep them
        shapes = list(zip(c.widths[:-1], c.widths[1:]))
        if [W.shape for W in fs] != shapes:
            raise ValueError(
                f"factors[{i}] have shapes {[W.shape for W in fs]}; widths={c.widths} need {shapes}."
            )
        out.append(fs)
    return out


def _resolve_lr(data, config, factors) -> float:
    if config.lr != "auto":
        return float(config.lr)
    from ..theory import auto_lr

    return float(auto_lr(data, config, factors, init_biases(config.widths, config.bias)))


def _key(config, path, device, n_samples) -> _Key:
    return _Key(
        choose_path(config, path, n_samples), config.depth, config.bias,
        (config.loss, config.reduction, config.p, config.delta),
        tuple(getattr(config, name) for name in _HYPER), config.dtype, device or config.device,
    )


def _groups(configs, path, device, n_samples) -> dict[_Key, list[int]]:
    """Indices of the runs of each :class:`_Key`, in order; configs that agree on every field
    the key reads share one key without building it again."""
    keys: dict[tuple, _Key] = {}
    groups: dict[_Key, list[int]] = {}
    for i, c in enumerate(configs):
        fields = (_GET_KEY(c), len(c.widths))
        key = keys.get(fields)
        if key is None:
            key = keys[fields] = _key(c, path, device, n_samples)
        groups.setdefault(key, []).append(i)
    return groups


def _per_run_bytes(key: _Key, widths, epochs: int) -> int:
    # parameters with their gradient, saved copy, optimizer state and temporaries; the
    # prefix products and their gradients (stats); two float64 histories
    itemsize = 8 if key.dtype == "float64" else 4
    params = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + (sum(widths[1:]) if key.bias else 0)
    products = 3 * widths[0] * sum(widths[1:])
    return itemsize * (10 * params + products) + 16 * (epochs + 1)


def width_classes(widths_list, min_stack: int = MIN_STACK) -> list[list[int]]:
    """Indices of runs grouped by the power of two above their widest hidden layer.

    Padding a width-1 run to width 64 wastes 63/64 of its work; classes (2^(c-1), 2^c]
    bound the waste, and consecutive classes merge until a class has `min_stack` runs
    (fewer, larger stacks amortise the cost of each tensor operation).

    Examples
    --------
    >>> width_classes([(10, 1, 2), (10, 64, 2), (10, 2, 2), (10, 40, 2)], min_stack=2)
    [[0, 2], [1, 3]]
    """
    classes: dict[int, list[int]] = {}
    for i, widths in enumerate(widths_list):
        classes.setdefault((max(widths[1:-1], default=1) - 1).bit_length(), []).append(i)
    out, current = [], []
    for c in sorted(classes):
        current += classes[c]
        if len(current) >= min_stack:
            out.append(current)
            current = []
    return out + ([current] if current else [])


def _classes(configs, source) -> list[list[int]]:
    """:func:`width_classes`, except that runs a compiled stack trains on the Gram matrix
    (:mod:`.gram`: depth 2, plain SGD, wide) share one class, as padding costs them nothing."""
    widths_list = [c.widths for c in configs]
    if not gram_path(source) or not gram_dynamics(configs[0]):
        return width_classes(widths_list)
    wide = [i for i, w in enumerate(widths_list) if w[1] >= GRAM_WIDTH]
    narrow = [i for i, w in enumerate(widths_list) if w[1] < GRAM_WIDTH]
    classes = [[narrow[m] for m in c] for c in width_classes([widths_list[i] for i in narrow])]
    return classes + ([wide] if wide else [])


def _chunks(indices, key, widths, configs, budget, data_path, compiled: bool = False) -> list[list[int]]:
    """Split a group so that each stack stays within the memory budget."""
    epochs = max(configs[i].epochs for i in indices)
    itemsize = 8 if key.dtype == "float64" else 4
    largest = itemsize * max(max(a, widths[0]) * b for a, b in zip(widths[:-1], widths[1:]))
    cap = COMPILED_TENSOR_BYTES if compiled else STACK_TENSOR_BYTES
    size = max(1, min((budget // 4) // _per_run_bytes(key, widths, epochs), cap // largest))
    if data_path is not None:  # leave at least min(n, 1024) rows per chunk of the pass
        per_row = data_path.itemsize * (3 * sum(widths[1:]) + 2 * widths[1] + 3 * widths[-1])
        size = min(size, max(1, (budget // 2) // (min(data_path.n, 1024) * per_row)))
    return [indices[i:i + size] for i in range(0, len(indices), size)]


class _Paths:
    """The gradient sources of one call, built on first use and shared by all groups."""

    def __init__(self, data: Dataset, budget: int, plan: str | None = None):
        self.data, self.budget, self.plan, self.cache = data, budget, plan, {}

    def get(self, key: _Key):
        dtype, device = DTYPES[key.dtype], torch_device(key.device)
        loss, reduction, p, delta = key.loss
        if key.path == "data":
            ident = ("data", key.loss, key.dtype, key.device)
            if ident not in self.cache:
                X, Y = self.data.X, self.data.Y
                self.cache[ident] = DataPath(X, Y, loss, reduction, p, delta, dtype, device, self.budget)
            return self.cache[ident]
        ident = ("stats", reduction, key.dtype, key.device)
        if ident not in self.cache:
            self.cache[ident] = StatsPath(*dataset_terms(self.data, device), reduction, dtype, device,
                                          compiled=self.plan is not None, inductor=self.plan == "all")
        return self.cache[ident]


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
        bit for bit). SGD stacks then run whole blocks of epochs, stop rules and updates
        included, in one compiled call (:mod:`linlab.engines.fused`): on the CPU in a C
        kernel (:mod:`linlab.engines.native`, built in about a second once per machine),
        elsewhere through TorchInductor, wide depth-2 ones on the Gram matrix
        (:mod:`linlab.engines.gram`). Other optimizers compile the loss and gradient with
        TorchInductor (:mod:`linlab.engines.compiled`; 5-60 s once per process and graph).
        On the CPU, the C kernel runs SGD 2-4.5x the eager rate at B ≥ 1,000. Both need a
        C/C++ compiler; without one the call warns and runs eagerly. ``"auto"`` uses the C
        kernel on the CPU whenever a C compiler is found, and TorchInductor for calls whose
        statistics-path runs plan at least 50 million run-epochs.

    Returns
    -------
    list of RunResult

    Notes
    -----
    Statistics path, per run: P = W1⋯WL, Δ = P − P_ls,
    ℓ = ‖RΔ‖² + 2tr(Δᵀr) + L*, ∂ℓ/∂P = 2(AΔ + r) (see :mod:`.batched_stats`), then
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
    check_mode(compile)
    with _without_cycle_collection():
        return _fit(data, configs, factors, memory_budget, device, path, compile)


@contextmanager
def _without_cycle_collection():
    """The cyclic garbage collector paused inside: a sweep builds many small containers (configs,
    records) and no reference cycles, and the collector's passes over them would cost about a
    quarter of a sweep's time at B = 10,000."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fit(data, configs, factors, memory_budget, device, path, compile) -> list[RunResult]:
    starts = _initial(configs, factors)
    lrs = [_resolve_lr(data, c, f) for c, f in zip(configs, starts)]
    groups = _groups(configs, path, device, data.n_samples)
    results: list[RunResult | None] = [None] * len(configs)
    tick = time.perf_counter()
    stats_keys = [key for key in groups if key.path == "stats"]
    planned = sum(configs[i].epochs for key in stats_keys for i in groups[key])
    cpu_only = all(key.device == "cpu" for key in stats_keys)
    paths = _Paths(data, memory_budget, compile_plan(compile, "cpu" if cpu_only else "cuda", planned))
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
    for members in _classes([configs[i] for i in indices], source):
        _stacked_class(data, configs, starts, lrs, key, [indices[m] for m in members], source, data_path,
                       dtype, device, budget, results)


def _stacked_class(data, configs, starts, lrs, key, indices, source, data_path, dtype, device, budget,
                   results) -> None:
    widths, truth = padded_widths([configs[i].widths for i in indices]), _truth(data)
    compiled = getattr(source, "compiled", None) is not None
    for chunk in _chunks(indices, key, widths, configs, budget, data_path, compiled):
        group = [configs[i] for i in chunk]
        args = (source, group, [starts[i] for i in chunk], [lrs[i] for i in chunk], widths, dtype, device)
        done = run_stack_fused(*args) if eligible(source, group) else None
        rules, finals, seconds = done if done is not None else run_stack(*args, data)
        with np.errstate(all="ignore"):  # a run that diverged at its start may overflow its distance
            for j, i in enumerate(chunk):
                results[i] = _record(data, group[j], key.device, rules, j, finals[j], seconds[j], starts[i], truth)


def _one_by_one(data, configs, starts, key, indices, results) -> None:
    from .loop import fit

    for i in indices:
        c = configs[i].replace(engine="batched", device=key.device)
        results[i] = fit(data, c, factors=starts[i])


def _config_record(config: TrainConfig, device: str, data_name: str) -> dict:
    # config.to_dict() with engine and device as run, built without dataclasses.asdict's
    # deep copies (a tenth of a millisecond a run, more than a sweep's epochs)
    record = dict(zip(_FIELDS, _GET_FIELDS(config)))
    record.update(widths=list(config.widths), betas=list(config.betas), engine="batched", device=device,
                  extra=copy.deepcopy(config.extra) if config.extra else {}, data=data_name)
    return record


def _truth(data) -> tuple[np.ndarray, float] | None:
    # W_true in float64 and the norm distances are divided by (1 when W_true = 0), or None
    if data.W_true is None:
        return None
    W_true = np.asarray(data.W_true, dtype=np.float64)
    return W_true, float(np.linalg.norm(W_true)) or 1.0


def _distance(truth, factors) -> float | None:
    # ‖W1⋯WL − W_true‖_F / ‖W_true‖_F, with the Frobenius norm as np.linalg.norm computes it
    if truth is None:
        return None
    x = (end_to_end(factors) - truth[0]).ravel()
    return float(np.sqrt(x.dot(x)) / truth[1])


def _record(data, config, device, rules, j, final, seconds, start, truth) -> RunResult:
    n = int(rules.length[j])
    factors, biases = final
    distance = _distance(truth, factors)
    return RunResult(
        config=_config_record(config, device, data.name), outcome=rules.outcome[j], message=rules.message[j],
        history=rules.history[:n, j].copy(), epochs=n - 1, lr=float(rules.lrs[j]), factors=factors,
        biases=biases, epochs_to_tol=rules.epochs_to_tol[j], seconds=float(seconds),
        distance_to_true=distance, initial_factors=list(start),  # float64 arrays of this call's own
        extra={"lr_changes": rules.lr_changes[j]} if rules.lr_changes.get(j) else {},
    )
