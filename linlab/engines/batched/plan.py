"""The plan of a ``fit_batched`` call, decided here and nowhere else: which path each run
takes (statistics, rows, or one at a time), which runs share a stack and in what chunks, what
compiles, and which kernel runs a fused stack.

Runs that cannot share tensors (depth, loss, bias, optimizer and its hyper-parameters,
dtype, device) go to separate groups (:class:`StackKey`); a group splits into width classes
(:func:`width_classes`: padding a narrow run to a wide stack wastes its work) and those into
chunks that fit the memory budget (:func:`chunks`).
"""

from __future__ import annotations

import operator
from typing import NamedTuple

from ...config import TrainConfig
from ...data import Dataset
from ..torch_engines import DTYPES, torch_device
from .columns import column, pick, uniform
from .kernels import compiled as inductor
from .kernels import native
from .kernels.gram import GRAM_WIDTH, gram_dynamics, gram_suits
from .objective_data import DataPath
from .objective_stats import StatsPath, dataset_terms

PATHS = ("auto", "stats", "data")
MIN_STACK = 256  # runs: narrower width classes merge until a stack has this many
STACK_TENSOR_BYTES = 8 * 2**20  # largest tensor of a stack: beyond it, epochs run slower per run
COMPILED_TENSOR_BYTES = 4 * 2**20  # the same for compiled stacks (10% faster than 8 MiB at h = 16)
UNROLL = 8  # epochs per fused call: at B = 1,000, 1.2-1.5x the rate of 4 (and twice its compile time)
# "auto" compiles a call whose stacks plan at least this many run-epochs on the CPU: compiling
# costs 5-60 s (cold), about what the eager path takes for this much work
AUTO_RUN_EPOCHS = 50_000_000
MODES = ("auto", True, False)
HYPER = ("optimizer", "momentum", "nesterov", "weight_decay", "betas", "eps", "alpha")
KEY_FIELDS = ("batch_size", "loss", "bias", "reduction", "p", "delta", "dtype", "device", *HYPER)
GET_KEY = operator.attrgetter(*KEY_FIELDS)


class StackKey(NamedTuple):
    """What runs in one stack must share."""

    path: str  # stats, data, or minibatch (one run at a time through `fit`)
    depth: int
    bias: bool
    loss: tuple  # (loss, reduction, p, delta)
    hyper: tuple  # optimizer and its hyper-parameters
    dtype: str
    device: str


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


def stack_key(config, path, device, n_samples) -> StackKey:
    return StackKey(
        choose_path(config, path, n_samples), config.depth, config.bias,
        (config.loss, config.reduction, config.p, config.delta),
        tuple(getattr(config, name) for name in HYPER), config.dtype, device or config.device,
    )


def groups(configs, path, device, n_samples) -> dict[StackKey, list[int]]:
    """Indices of the runs of each :class:`StackKey`, in order; configs that agree on every field
    the key reads share one key without building it again."""
    depths = list(map(len, column(configs, "widths")))
    if uniform(depths) and all(uniform(column(configs, name)) for name in KEY_FIELDS):  # one key for all
        return {stack_key(configs[0], path, device, n_samples): list(range(len(configs)))}
    by_fields: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(map(GET_KEY, configs), depths)):
        by_fields.setdefault(key, []).append(i)
    groups: dict[StackKey, list[int]] = {}
    for runs in by_fields.values():
        groups.setdefault(stack_key(configs[runs[0]], path, device, n_samples), []).extend(runs)
    if len(by_fields) > len(groups):  # fields that map to one key: back in the order of the runs
        for runs in groups.values():
            runs.sort()
    return groups


def per_run_bytes(key: StackKey, widths, epochs: int) -> int:
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
    of = {widths: (max(widths[1:-1], default=1) - 1).bit_length() for widths in set(widths_list)}
    if len(set(of.values())) == 1:  # one class
        return [list(range(len(widths_list)))]
    classes: dict[int, list[int]] = {}
    for i, c in enumerate(map(of.__getitem__, widths_list)):
        classes.setdefault(c, []).append(i)
    out, current = [], []
    for c in sorted(classes):
        current += classes[c]
        if len(current) >= min_stack:
            out.append(current)
            current = []
    return out + ([current] if current else [])


def classes(configs, source) -> list[list[int]]:
    """:func:`width_classes`, except that runs a compiled stack trains on the Gram matrix
    (:mod:`.kernels.gram`: depth 2, plain SGD, wide) share one class, as padding costs them nothing."""
    widths_list = column(configs, "widths")
    if not gram_path(source) or not gram_dynamics(configs[0]):
        return width_classes(widths_list)
    wide = [i for i, w in enumerate(widths_list) if w[1] >= GRAM_WIDTH]
    narrow = [i for i, w in enumerate(widths_list) if w[1] < GRAM_WIDTH]
    classes = [[narrow[m] for m in c] for c in width_classes([widths_list[i] for i in narrow])]
    return classes + ([wide] if wide else [])


def chunks(indices, key, widths, configs, budget, data_path, compiled: bool = False) -> list[list[int]]:
    """Split a group so that each stack stays within the memory budget."""
    epochs = max(column(pick(configs, indices), "epochs"))
    one = per_run_bytes(key, widths, epochs)
    if one > budget:
        raise ValueError(
            f"one run of widths {tuple(widths)} over {epochs} epochs needs about {one / 2**20:.3g} MiB, more than "
            f"memory_budget={budget:,} bytes; use narrower widths or fewer epochs, or raise memory_budget."
        )
    itemsize = 8 if key.dtype == "float64" else 4
    largest = itemsize * max(max(a, widths[0]) * b for a, b in zip(widths[:-1], widths[1:]))
    cap = COMPILED_TENSOR_BYTES if compiled else STACK_TENSOR_BYTES
    size = max(1, min((budget // 4) // one, cap // largest))
    if data_path is not None:  # leave at least min(n, 1024) rows per chunk of the pass
        per_row = data_path.itemsize * (3 * sum(widths[1:]) + 2 * widths[1] + 3 * widths[-1])
        size = min(size, max(1, (budget // 2) // (min(data_path.n, 1024) * per_row)))
    return [indices[i:i + size] for i in range(0, len(indices), size)]


class Objectives:
    """The objectives (statistics or rows) of one call, built on first use and shared by all groups."""

    def __init__(self, data: Dataset, budget: int, plan: str | None = None):
        self.data, self.budget, self.plan, self.cache = data, budget, plan, {}

    def get(self, key: StackKey):
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


def check_mode(compile) -> None:
    """Refuse a `compile` argument that is not ``"auto"``, True or False.

    Examples
    --------
    >>> check_mode("yes")
    Traceback (most recent call last):
    ...
    ValueError: compile='yes' must be 'auto', True or False.
    """
    if not any(compile is m or (isinstance(m, str) and compile == m) for m in MODES):
        raise ValueError(f"compile={compile!r} must be 'auto', True or False.")


def compile_plan(compile, device, run_epochs: int) -> str | None:
    """What the stacks of a call compile: None (nothing, eager torch), ``"kernel"`` (SGD stacks
    on the CPU run in the C kernel of :mod:`.kernels.native`) or ``"all"`` (that, and TorchInductor for
    the other stacks).

    True gives ``"all"`` and False None. ``"auto"`` gives, on the CPU with a C compiler,
    ``"all"`` for calls that plan at least ``AUTO_RUN_EPOCHS`` run-epochs (what pays for
    TorchInductor's seconds of compiling) and ``"kernel"`` below that (the kernel is built
    in about a second, once per machine); elsewhere None.

    Examples
    --------
    >>> compile_plan(False, "cpu", 10**9), compile_plan(True, "cuda", 1), compile_plan("auto", "cuda", 10**9)
    (None, 'all', None)
    """
    if compile is True:
        return "all"
    if compile is False or str(device) != "cpu":
        return None
    if run_epochs >= AUTO_RUN_EPOCHS and inductor.compiler_found():
        return "all"
    return "kernel" if native.compiler() is not None else None


def eligible(path, configs) -> bool:
    """Whether a stack can run fused: a compiling statistics path, SGD (any momentum), and no
    lr="auto" beyond depth 1 (its lr changes with the losses). On the CPU the C kernel of
    :mod:`.kernels.native` runs any such stack; TorchInductor, where the plan allows it, only
    stacks of at least ``inductor.MIN_ROWS`` runs whose stall windows span at least ``UNROLL``
    epochs (the host's history gives the best loss a window back)."""
    compiled = getattr(path, "compiled", None)
    if (compiled is None or compiled.failed or configs[0].optimizer != "sgd"
            or (configs[0].depth > 1 and "auto" in column(configs, "lr"))):  # one depth a stack
        return False
    if native_kernel(path, configs[0].depth) is not None:
        return True
    windows = min(column(configs, "stall_window"))
    return compiled.inductor and len(configs) >= inductor.MIN_ROWS and windows >= UNROLL


def native_kernel(path, depth: int = 2):
    """The C kernel (:mod:`.kernels.native`) for a path's stacks of this depth: on the CPU, where it
    builds, up to ``native.MAX_DEPTH`` layers; else None."""
    cpu = str(path.device) == "cpu" and depth <= native.MAX_DEPTH
    return native.kernel(path.dtype) if cpu else None


def gram_path(path) -> bool:
    """Whether wide depth-2 stacks of this path run on their Gram matrix (:mod:`.kernels.gram`): where
    TorchInductor compiles them, that is, with no C kernel for the device."""
    compiled = getattr(path, "compiled", None)
    return compiled is not None and compiled.inductor and native_kernel(path) is None


def fused_kernel(path, configs, widths) -> str:
    """Which implementation of the fused SGD step runs an :func:`eligible` stack: ``"c"`` (the
    C kernel, on the CPU), ``"gram"`` (TorchInductor on the Gram matrix: wide depth-2 stacks)
    or ``"factors"`` (TorchInductor on the factors)."""
    if native_kernel(path, len(widths) - 1) is not None:
        return "c"
    return "gram" if gram_path(path) and gram_suits(configs, widths) else "factors"
