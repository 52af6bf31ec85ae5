"""What a training run is: one flat, validated dataclass that every record stores."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

ENGINES = ("numpy", "autograd", "module", "batched")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
LOSSES = ("squared", "lp", "huber")
REDUCTIONS = ("sum", "mean")
INITS = ("normal", "scaled", "orthogonal", "balanced", "zeros", "torch")
SCHEDULES = ("constant", "step", "exponential", "cosine")
DTYPES = ("float64", "float32")
MEMORY_BUDGET = 2 * 1024**3  # bytes one run may hold: its parameters' copies and its loss histories
INT_MAX = 2**63 - 1  # what a result table's int64 columns hold
MAX_DEPTH = 10_000  # layers of one run: a Python loop over them each step


def check_depth(depth: int, where: str = "depth") -> None:
    """Refuse a depth past `MAX_DEPTH` before anything of that length is built.

    Examples
    --------
    >>> check_depth(10**9)
    Traceback (most recent call last):
    ...
    ValueError: depth=1000000000 is more than the 10,000 layers a run may have; use fewer layers.
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}={depth} is more than the {MAX_DEPTH:,} layers a run may have; "
                         "use fewer layers.")


def parse_widths(widths) -> tuple[int, ...]:
    """Read widths from a tuple or a "10,5,2" string; each must be a positive integer.

    Examples
    --------
    >>> parse_widths("10,5,2")
    (10, 5, 2)
    """
    if isinstance(widths, str):
        parts = [p.strip() for p in widths.replace("x", ",").split(",") if p.strip()]
        try:
            widths = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"widths={widths!r} is not a list of integers; write it like '10,5,2'."
            ) from None
    widths = tuple(widths)
    whole = [isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) and int(w) == w
             for w in widths]
    if len(widths) < 2 or not all(whole) or any(w < 1 for w in widths):
        raise ValueError(
            f"widths={widths} must list at least two positive integers: "
            "(n_features, hidden..., n_targets), e.g. (10, 5, 2)."
        )
    return tuple(int(w) for w in widths)


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, options))}.")


def _positive(name, value, allow_zero=False):
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0
    )
    if not ok:
        raise ValueError(f"{name}={value!r} must be a finite number {'>= 0' if allow_zero else '> 0'}.")


def _whole(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and int(value) == value)


def _check_size(config) -> None:
    # a run holds its parameters with gradients and optimizer state (about 4 copies) and two
    # float64 loss histories of epochs + 1 entries: either past the budget can never run
    check_depth(config.depth)
    itemsize = 8 if config.dtype == "float64" else 4
    params = sum(a * b for a, b in zip(config.widths[:-1], config.widths[1:]))
    if 4 * itemsize * params > MEMORY_BUDGET:
        raise ValueError(
            f"widths={config.widths} have {params:,} parameters: with their gradients and optimizer "
            f"state about {4 * itemsize * params / 1024**3:.3g} GiB, past the {MEMORY_BUDGET / 1024**3:g} GiB "
            f"a run may use (at most {MEMORY_BUDGET // (4 * itemsize):,} parameters). Use narrower layers."
        )
    if 16 * (config.epochs + 1) > MEMORY_BUDGET:
        raise ValueError(
            f"epochs={config.epochs:,} would keep loss histories of {16 * (config.epochs + 1) / 1024**3:.3g} GiB "
            f"(two float64 per epoch), past the {MEMORY_BUDGET / 1024**3:g} GiB a run may use; give at most "
            f"{MEMORY_BUDGET // 16 - 1:,} epochs (tol stops a run once it has converged)."
        )


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults follow the seed's step 2.

    Examples
    --------
    >>> TrainConfig(widths=(10, 5, 2), lr=1e-5).depth
    2
    >>> TrainConfig(widths=(10, 2), lr=-1)
    Traceback (most recent call last):
    ...
    ValueError: lr=-1 must be a finite number > 0, or "auto".
    """

    widths: tuple[int, ...] = (10, 2)  # (n_features, hidden..., n_targets)
    bias: bool = False  # a bias in every layer
    init: str = "normal"  # normal (the seed's randn), scaled, orthogonal, balanced, zeros, torch
    init_scale: float = 1.0  # std (normal/scaled), gain (orthogonal), end-to-end std (balanced)
    seed: int = 0  # seeds the initial factors and the mini-batch order
    engine: str = "numpy"  # numpy, autograd, module (batched runs many at once)
    optimizer: str = "sgd"
    lr: float | str = 1e-5  # a number or "auto"
    momentum: float = 0.0  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8  # adam, adamw, rmsprop (adagrad uses 1e-10 as torch does)
    alpha: float = 0.99  # rmsprop smoothing
    schedule: str = "constant"  # constant, step, exponential, cosine (stepped once an epoch)
    step_size: int = 100  # step schedule
    gamma: float = 0.1  # step, exponential schedules
    loss: str = "squared"  # squared, lp, huber
    reduction: str = "sum"  # sum (the seed) or mean
    p: float = 4.0  # exponent of the lp loss
    delta: float = 1.0  # huber threshold
    epochs: int = 750
    batch_size: int | None = None  # None: full batch
    shuffle: bool = True  # reshuffle mini-batches every epoch
    tol: float = 1e-4  # converged when loss <= tol ("0.0000" in the seed's log)
    stall_window: int = 100  # epochs without relative progress before "stalled"
    stall_rtol: float = 1e-6  # the relative progress that counts
    diverge_factor: float = 1e6  # diverged when loss > diverge_factor * initial loss
    dtype: str = "float64"
    device: str = "cpu"
    log_every: int = 10
    extra: dict = field(default_factory=dict)  # free-form labels, stored with the record

    def __post_init__(self):
        self.widths = parse_widths(self.widths)
        _choice("engine", self.engine, ENGINES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("loss", self.loss, LOSSES)
        _choice("reduction", self.reduction, REDUCTIONS)
        _choice("init", self.init, INITS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("dtype", self.dtype, DTYPES)
        for name in ("bias", "nesterov", "shuffle"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False.")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra={self.extra!r} must be a dict of labels, e.g. {{'group': 'baseline'}}.")
        if self.lr != "auto":
            if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
                math.isfinite(self.lr) and self.lr > 0
            ):
                raise ValueError(f'lr={self.lr!r} must be a finite number > 0, or "auto".')
        for name in ("init_scale", "tol", "diverge_factor", "eps", "delta"):
            _positive(name, getattr(self, name), allow_zero=name in ("init_scale", "tol"))
        for name in ("momentum", "weight_decay"):
            _positive(name, getattr(self, name), allow_zero=True)
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum={self.momentum} must lie in [0, 1).")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; set momentum, e.g. 0.9.")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas={self.betas} must be two numbers in [0, 1).")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha={self.alpha} must lie in [0, 1).")
        if self.loss == "lp" and not (isinstance(self.p, (int, float)) and self.p >= 1):
            raise ValueError(f"p={self.p} must be >= 1 for the lp loss (p=2 is squared error).")
        for name in ("epochs", "seed", "stall_window", "log_every", "step_size"):
            value, low = getattr(self, name), 0 if name in ("epochs", "seed") else 1
            if not _whole(value) or not low <= value <= INT_MAX:
                raise ValueError(f"{name}={value!r} must be an integer >= {low} (and <= 2**63 - 1).")
            setattr(self, name, int(value))
        if self.batch_size is not None and (not _whole(self.batch_size) or not 1 <= self.batch_size <= INT_MAX):
            raise ValueError(f"batch_size={self.batch_size} must be a positive integer, or None for full batch.")
        _positive("stall_rtol", self.stall_rtol, allow_zero=True)
        _positive("gamma", self.gamma)
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device={self.device!r} must be 'cpu' or 'cuda' (or 'cuda:N').")
        if self.engine == "numpy" and self.device != "cpu":
            raise ValueError("engine='numpy' runs on the CPU only; use engine='module' or 'autograd' for CUDA.")
        for name in FLOAT_FIELDS:  # NumPy's float64 passes as a float; compiled kernels take Python's own
            value = getattr(self, name)
            if type(value) is not float and isinstance(value, float):
                setattr(self, name, float(value))
        _check_size(self)

    @property
    def depth(self) -> int:
        """Number of factors (layers)."""
        return len(self.widths) - 1

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"], d["betas"] = list(self.widths), list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys are: {', '.join(sorted(known))}."
            )
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.type.startswith("float"))
