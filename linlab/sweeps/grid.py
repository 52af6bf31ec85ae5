"""Sweep grids: which runs a sweep makes, read from TOML and expanded to `TrainConfig`s.

A grid names the data, fixed `TrainConfig` fields and axes. The runs are the cartesian
product of the axes, each merged over the fixed fields; identical runs are kept once, and
every run carries a stable id, a hash of its config and its data. In TOML::

    data = "seed"                       # seed, seed-torch, synthetic:n=500,d=8,k=2, or a file
    targets = "y1,y2"                   # with a file: also features, delimiter, standardize
    [fixed]                             # any TrainConfig field, one value
    epochs = 1000
    [grid]                              # any TrainConfig field, a list of values
    depth = [1, 2, 3]                   # with width: widths (d, width, ..., width, k)
    width = {range = [1, 64]}           # integers 1..64, both ends included
    lr = {log_range = [1e-6, 1e-3, 10]} # or a list, or {auto_multiples = [0.5, 1, 2]}
    optimizer = ["sgd", {name = "sgd", momentum = 0.9}, {name = "adam", betas = [0.9, 0.99]}]
    seed = [0, 1, 2]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import OPTIMIZERS, TrainConfig, check_depth
from ..data import Dataset

DATA_OPTIONS = ("features", "targets", "delimiter", "standardize")  # for data files
GRID_KEYS = ("data", *DATA_OPTIONS, "fixed", "grid", "runs_per_batch")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
SHAPE_AXES = ("depth", "width")  # together they make the widths axis
AXIS_FORMS = ("range", "log_range", "auto_multiples")
MAX_LOG_RANGE = 1_000_000  # values of one log_range (a range of integers is lazy and unbounded)
OPTIMIZER_PARAMS = ("momentum", "nesterov", "weight_decay", "betas", "eps", "alpha")
INT_AXES = ("depth", "width", "batch_size") + tuple(
    f.name for f in dataclasses.fields(TrainConfig) if type(f.default) is int
)


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its stable id and its full config."""

    run_id: str
    config: TrainConfig


def _unknown(keys, valid, where: str):
    bad = sorted(set(keys) - set(valid))
    if bad:
        raise ValueError(
            f"unknown key(s) {', '.join(map(repr, bad))} in {where}; valid keys are: "
            f"{', '.join(valid)}."
        )


def _int_range(name: str, spec) -> range:
    ok = isinstance(spec, list) and len(spec) in (2, 3) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in spec
    )
    if not ok or (len(spec) == 3 and spec[2] < 1) or spec[0] > spec[1]:
        raise ValueError(
            f"grid.{name} = {{range = {spec!r}}} must be [start, stop] or [start, stop, step] "
            "integers with start <= stop and step >= 1 (both ends included), e.g. [1, 64]."
        )
    return range(spec[0], spec[1] + 1, spec[2] if len(spec) == 3 else 1)  # lazy: any length costs nothing


def _log_range(name: str, spec) -> list:
    ok = isinstance(spec, list) and len(spec) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec
    )
    if not ok or not (0 < spec[0] <= spec[1] < math.inf) or int(spec[2]) != spec[2] or spec[2] < 1:
        raise ValueError(
            f"grid.{name} = {{log_range = {spec!r}}} must be [low, high, count] with "
            "0 < low <= high and an integer count >= 1, e.g. [1e-6, 1e-3, 10]."
        )
    if spec[2] > MAX_LOG_RANGE:
        raise ValueError(f"grid.{name} = {{log_range = {spec!r}}} asks for {spec[2]:,.0f} values; a log_range "
                         f"gives at most {MAX_LOG_RANGE:,}. Use fewer values.")
    values = [float(f"{v:.12g}") for v in np.geomspace(spec[0], spec[1], int(spec[2]))]
    if name in INT_AXES:  # round to integers, keep each once
        values = list(dict.fromkeys(int(round(v)) for v in values))
    return values


def axis_values(name: str, spec) -> Sequence:
    """The values of grid axis `name`: a list, or a table with one of `AXIS_FORMS`.

    ``{range = [a, b]}`` gives a ``range`` (never materialised, whatever its length).

    ``{auto_multiples = [...]}`` (lr only) gives ``("auto", m)`` markers that expansion
    resolves to m times ``linlab.theory.auto_lr`` of each run.

    Examples
    --------
    >>> axis_values("lr", {"log_range": [1e-6, 1e-3, 4]})
    [1e-06, 1e-05, 0.0001, 0.001]
    >>> list(axis_values("width", {"range": [1, 10, 3]}))  # a lazy range
    [1, 4, 7, 10]
    >>> axis_values("lr", {"auto_multiples": [0.5, 1]})
    [('auto', 0.5), ('auto', 1.0)]
    """
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"grid.{name} = [] is empty; give at least one value.")
        return list(spec)
    if not isinstance(spec, dict):
        raise ValueError(
            f"grid.{name} = {spec!r} is not a list; write grid.{name} = [{spec!r}], or move "
            "a single value to [fixed]."
        )
    _unknown(spec, AXIS_FORMS, f"grid.{name}")
    if len(spec) != 1:
        raise ValueError(f"grid.{name} = {spec!r} needs exactly one of {', '.join(AXIS_FORMS)}.")
    (form, value), = spec.items()
    if form == "range":
        if name not in INT_AXES:
            raise ValueError(f"grid.{name}: range is for integer axes ({', '.join(INT_AXES)}); "
                             "use log_range or a list.")
        return _int_range(name, value)
    if form == "log_range":
        return _log_range(name, value)
    if name != "lr":
        raise ValueError(f"grid.{name}: auto_multiples is for lr only; use a list or log_range.")
    ok = isinstance(value, list) and value and all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < math.inf for m in value
    )
    if not ok:
        raise ValueError(f"grid.lr = {{auto_multiples = {value!r}}} must be a non-empty list of "
                         "positive numbers, e.g. [0.5, 1, 2].")
    return [("auto", float(m)) for m in value]


def _optimizer_fragment(entry) -> dict:
    # "adam" or {name = "sgd", momentum = 0.9}: the optimizer with its hyper-parameters
    if isinstance(entry, str):
        return {"optimizer": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(
            f"grid.optimizer entry {entry!r} must be a name ({', '.join(OPTIMIZERS)}) or a "
            'table with a name, e.g. {name = "sgd", momentum = 0.9}.'
        )
    _unknown(entry, ("name",) + OPTIMIZER_PARAMS, f"grid.optimizer entry {entry!r}")
    return {"optimizer": entry["name"], **{k: v for k, v in entry.items() if k != "name"}}


@dataclass
class Grid:
    """A sweep: the data, fixed `TrainConfig` fields and the axes whose product is the runs.

    Parameters
    ----------
    data : str
        ``seed``, ``seed-torch``, ``synthetic:n=500,d=8,k=2,...`` or a data file
        (CSV, TSV, Parquet, NPY, NPZ), read as ``linlab train --data`` reads it.
    fixed : dict
        `TrainConfig` fields with one value each.
    axes : dict
        `TrainConfig` fields (and ``depth`` with ``width``) mapped to lists of values or
        to a table ``{range = [a, b]}``, ``{log_range = [low, high, count]}`` or (lr)
        ``{auto_multiples = [...]}``. ``optimizer`` entries may carry hyper-parameters.
    runs_per_batch : int, optional
        Runs executed (and saved) together; by default chosen by the engine.
    data_options : dict
        For a data file: ``features``, ``targets`` (``"x1,x2"``), ``delimiter``, ``standardize``.

    Examples
    --------
    >>> g = Grid(fixed={"epochs": 10}, axes={"depth": [1, 2, 3], "width": [1, 5, 64]})
    >>> len(expand(g, Dataset(np.eye(3), np.ones((3, 1)))))  # depth 1 needs no width
    7
    >>> Grid(axes={"learning_rate": [0.1]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown key(s) 'learning_rate' in [grid]; valid keys are: depth, width, widths, bias, ...
    """

    data: str = "seed"
    fixed: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    runs_per_batch: int | None = None
    data_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data={self.data!r} must be a data spec such as 'seed' or a file path.")
        _unknown(self.data_options, DATA_OPTIONS, "the data options")
        for where, table in (("[fixed]", self.fixed), ("[grid]", self.axes)):
            if not isinstance(table, dict):
                raise ValueError(f"{where} must be a table of keys, not {table!r}.")
        _unknown(self.fixed, CONFIG_FIELDS, "[fixed]")
        _unknown(self.axes, SHAPE_AXES + CONFIG_FIELDS, "[grid]")
        both = sorted(set(self.fixed) & set(self.axes))
        if both:
            raise ValueError(f"{', '.join(both)} appear(s) in both [fixed] and [grid]; keep one.")
        shape = [a for a in SHAPE_AXES if a in self.axes]
        if shape and len(shape) != 2:
            raise ValueError("grid.depth and grid.width go together (widths d, width, ..., k); "
                             "give both, or list widths.")
        if shape and ("widths" in self.axes or "widths" in self.fixed):
            raise ValueError("give widths either as depth x width or as widths, not both.")
        if self.runs_per_batch is not None and (
            isinstance(self.runs_per_batch, bool) or not isinstance(self.runs_per_batch, int)
            or self.runs_per_batch < 1
        ):
            raise ValueError(f"runs_per_batch={self.runs_per_batch!r} must be a positive integer.")
        self.axes = {name: axis_values(name, spec) for name, spec in self.axes.items()}

    @classmethod
    def from_dict(cls, d: dict, source: str = "the sweep config") -> Grid:
        """Build from a mapping with the TOML layout (`GRID_KEYS` at the top)."""
        _unknown(d, GRID_KEYS, source)
        return cls(d.get("data", "seed"), d.get("fixed", {}), d.get("grid", {}), d.get("runs_per_batch"),
                   {k: d[k] for k in DATA_OPTIONS if k in d})

    @classmethod
    def from_toml(cls, path) -> Grid:
        """Read a TOML sweep file; a relative data file is found next to it."""
        try:
            import tomllib
        except ModuleNotFoundError:  # python 3.10
            import tomli as tomllib
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path} is not valid TOML: {e}.") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text; save it as a UTF-8 TOML file.") from None
        data = d.get("data")
        if isinstance(data, str) and (path.parent / data).is_file() and not Path(data).is_absolute():
            d["data"] = str(path.parent / data)
        return cls.from_dict(d, source=str(path))

    def load_data(self) -> Dataset:
        """The grid's dataset, read by the loader of ``linlab train --data``."""
        from ..data.spec import load_data

        return load_data(self.data, **self.data_options)


class _Axis(Sequence):
    """The partial configs of one axis, each made when it is asked for: ``make(values[i])``."""

    def __init__(self, values: Sequence, make):
        self.values, self.make = values, make

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return self.make(self.values[i])


class _Shapes(Sequence):
    """Widths (d, w, ..., w, k) of every depth and width, by depth then width; depth 1 once."""

    def __init__(self, depths: Sequence, widths: Sequence, d: int, k: int):
        for values in (depths, widths):
            bad = next((v for v in _ends(values) if isinstance(v, bool) or not isinstance(v, int) or v < 1), None)
            if bad is not None:
                raise ValueError(f"grid.depth and grid.width must be positive integers; got {bad!r}.")
        check_depth(max(_ends(depths)), "grid.depth")
        self.depths, self.widths, self.d, self.k = _sorted_once(depths), _sorted_once(widths), d, k
        self.single = self.depths[0] == 1  # depth 1 has no width: one shape

    def __len__(self):
        return int(self.single) + (len(self.depths) - self.single) * len(self.widths)

    def __getitem__(self, i):
        if self.single and i == 0:
            return {"widths": (self.d, self.k)}
        L, w = divmod(i - self.single, len(self.widths))
        return {"widths": (self.d, *[self.widths[w]] * (self.depths[L + self.single] - 1), self.k)}


def _ends(values: Sequence) -> Sequence:
    # a range holds integers between its ends: checking them checks all
    return [values[0], values[-1]] if isinstance(values, range) else values


def _sorted_once(values: Sequence) -> Sequence:
    return values if isinstance(values, range) and values.step > 0 else sorted(set(values))


def _fragments(grid: Grid, d: int, k: int) -> list[Sequence[dict]]:
    # every axis as a lazy sequence of partial configs; the runs are products of one of each
    axes = []
    for name, values in grid.axes.items():
        if name == "width":
            continue
        if name == "depth":
            axes.append(_Shapes(values, grid.axes["width"], d, k))
        elif name == "widths":
            bad = [v for v in values if not isinstance(v, (list, tuple, str))]
            if bad:
                raise ValueError(f"grid.widths entry {bad[0]!r} is not a list of widths; write "
                                 "grid.widths = [[10, 5, 2], [10, 2]] (a list of lists).")
            axes.append([{"widths": v} for v in values])
        elif name == "optimizer":
            axes.append([_optimizer_fragment(v) for v in values])
        elif name == "lr":
            axes.append([{"lr": "auto", "extra": {"lr_auto_multiple": v[1]}} if isinstance(v, tuple)
                         else {"lr": v} for v in values])
        else:
            axes.append(_Axis(values, lambda v, name=name: {name: v}))
    return axes


def _product(axes: list[Sequence]) -> Iterator[tuple]:
    # itertools.product's order (the last axis fastest) without copying the axes first
    sizes = [len(a) for a in axes]
    for i in range(math.prod(sizes)):
        combo = []
        for axis, size in zip(reversed(axes), reversed(sizes)):
            i, j = divmod(i, size)
            combo.append(axis[j])
        yield tuple(reversed(combo))


def count_runs(grid: Grid) -> int:
    """How many runs `grid` makes, from the lengths of its axes alone (nothing is expanded).

    Runs that come out identical (two equal list entries, say) are counted each time and
    kept once by :func:`iter_runs`, so the count is exact for a grid without repeats.

    Examples
    --------
    >>> count_runs(Grid(axes={"depth": [1, 2, 3], "width": {"range": [1, 10**6]}, "seed": [0, 1]}))
    4000002
    """
    return math.prod(len(axis) for axis in _fragments(grid, 1, 1))


@dataclass(frozen=True)
class GridTotals:
    """What a grid plans, read off its axes before any run is made (repeated entries count each time)."""

    runs: int  # every run of the grid
    batched_runs: int  # those on the batched engine
    batched_epochs: int  # their epochs, summed
    batched_on_cpu: bool  # every batched run on the CPU


PLANNED = ("engine", "device", "epochs")  # the settings a sweep plans its chunks and compiling from


def grid_totals(grid: Grid, engine: str = "numpy") -> GridTotals:
    """Count `grid`'s runs, and its batched runs' epochs, from its axes alone.

    Only the axes that set ``engine``, ``device`` or ``epochs`` are walked; every other axis
    multiplies the counts by its length, so the cost does not grow with their size.

    Examples
    --------
    >>> totals = grid_totals(Grid(fixed={"epochs": 5}, axes={"seed": {"range": [1, 10**9]},
    ...                                                      "engine": ["batched", "numpy"]}))
    >>> totals.runs, totals.batched_runs, totals.batched_epochs
    (2000000000, 1000000000, 5000000000)
    """
    defaults = TrainConfig()
    base = {"engine": engine, "device": defaults.device, "epochs": defaults.epochs}
    base.update({key: grid.fixed[key] for key in PLANNED if key in grid.fixed})
    axes = _fragments(grid, 1, 1)
    planned = [a for a in axes if _sets_planned(a)]
    times = math.prod(len(a) for a in axes if not _sets_planned(a))
    runs = batched = epochs = 0
    on_cpu = True
    for combo in _product(planned):
        settings = dict(base)
        for part in combo:
            settings.update((key, part[key]) for key in PLANNED if key in part)
        runs += times
        if settings["engine"] == "batched":
            batched += times
            epochs += times * int(settings["epochs"])
            on_cpu = on_cpu and settings["device"] == "cpu"
    return GridTotals(runs, batched, epochs, on_cpu)


def _sets_planned(axis: Sequence) -> bool:
    if isinstance(axis, _Axis):  # {name: value}: only its own setting
        return len(axis) > 0 and bool(axis[0].keys() & set(PLANNED))
    if isinstance(axis, _Shapes):
        return False
    return any(part.keys() & set(PLANNED) for part in axis)


def _config(base: dict, combo: tuple[dict, ...]) -> TrainConfig:
    settings = dict(base)
    bad = next((e for e in (base, *combo) if not isinstance(e.get("extra", {}), dict)), None)
    if bad is not None:
        raise ValueError(f"extra = {bad['extra']!r} is not a table; give labels as a table, "
                         'e.g. extra = {group = "baseline"}.')
    for part in combo:
        extra = {**settings.get("extra", {}), **part.get("extra", {})}
        settings.update(part)
        if extra:
            settings["extra"] = extra
    try:
        return TrainConfig(**settings)
    except (ValueError, TypeError) as e:
        where = ", ".join(f"{k}={v!r}" for part in combo for k, v in part.items())
        raise ValueError(f"{e} (in the run with {where or 'the fixed values'})") from None


def _resolve_auto(config: TrainConfig, data: Dataset) -> TrainConfig:
    # lr = m * auto_lr: the multiple stays in config.extra, the number becomes the lr
    try:
        from ..theory import auto_lr
    except ImportError:
        raise ValueError("grid.lr = {auto_multiples = ...} needs linlab.theory.auto_lr, which is not "
                         "available; list the lrs or use log_range.") from None
    from ..models import init_biases, initial_factors

    factors = initial_factors(data, config)
    biases = init_biases(config.widths, config.bias)
    base = auto_lr(data, config, factors, biases)
    return config.replace(lr=float(f"{config.extra['lr_auto_multiple'] * base:.12g}"))


def run_id(config: TrainConfig, data: Dataset) -> str:
    """A stable 16-hex-digit id: SHA-256 of the config and the data's name and provenance.

    Examples
    --------
    >>> ds = Dataset(np.eye(2), np.ones((2, 1)))
    >>> run_id(TrainConfig(widths=(2, 1)), ds) == run_id(TrainConfig(widths=(2, 1)), ds)
    True
    >>> run_id(TrainConfig(widths=(2, 1)), ds) == run_id(TrainConfig(widths=(2, 1), seed=1), ds)
    False
    """
    identity = {
        "config": config.to_dict(),
        "data": {"name": data.name, "provenance": data.provenance,
                 "shape": [data.n_samples, data.n_features, data.n_targets]},
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(grid: Grid, data: Dataset, engine: str = "numpy") -> list[Run]:
    """The runs of `grid` on `data`: the cartesian product of its axes, each run once.

    Fixed values override the defaults (widths ``(d, k)`` of the data and `engine`); axis
    values override fixed ones. Runs whose configs are equal (e.g. depth 1 at every
    width) appear once, in the order of their first appearance. A list of
    :func:`iter_runs`; check :func:`count_runs` first for a grid that may be large.

    Examples
    --------
    >>> g = Grid(axes={"lr": [1e-5, 1e-4], "seed": {"range": [0, 2]}})
    >>> runs = expand(g, Dataset(np.eye(3), np.ones((3, 2))))
    >>> len(runs), runs[0].config.widths, runs[0].config.lr, runs[-1].config.seed
    (6, (3, 2), 1e-05, 2)
    """
    return list(iter_runs(grid, data, engine))


def _checked_config(base: dict, combo: tuple[dict, ...], data: Dataset) -> TrainConfig:
    config = _config(base, combo)
    if (config.widths[0], config.widths[-1]) != (data.n_features, data.n_targets):
        raise ValueError(
            f"widths={config.widths} run from {config.widths[0]} to {config.widths[-1]}, but {data.name!r} "
            f"has {data.n_features} features and {data.n_targets} targets; give widths "
            f"[{data.n_features}, ..., {data.n_targets}], or depth and width (both ends from the data)."
        )
    return config


CHECKED_PER_AXIS = 10_000  # check_runs tries every value of an axis this long or shorter, else its ends


def check_runs(grid: Grid, data: Dataset, engine: str = "numpy") -> None:
    """Refuse a grid with an impossible value before any of its runs is made or trained.

    Every value of each axis (of a longer axis, its first and last: a range's values lie
    between them) is tried in a real run of the grid, the first value of every other axis
    beside it, so a bad value is named at once rather than when its run comes up.

    Examples
    --------
    >>> check_runs(Grid(axes={"seed": [0, 2**64]}), Dataset(np.eye(3), np.ones((3, 2))))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: seed=18446744073709551616 must be an integer >= 0 (and <= 2**63 - 1). (in the run with ...
    """
    base = {"widths": (data.n_features, data.n_targets), "engine": engine, **grid.fixed}
    axes = _fragments(grid, data.n_features, data.n_targets)
    if any(len(axis) == 0 for axis in axes):
        return
    firsts = [axis[0] for axis in axes]
    for j, axis in enumerate(axes):
        n = len(axis)
        for i in range(n) if n <= CHECKED_PER_AXIS else (0, n - 1):
            _checked_config(base, (*firsts[:j], axis[i], *firsts[j + 1:]), data)


def iter_runs(grid: Grid, data: Dataset, engine: str = "numpy") -> Iterator[Run]:
    """The runs of :func:`expand`, one at a time: memory holds the ids seen, never the runs.

    Examples
    --------
    >>> runs = iter_runs(Grid(axes={"seed": {"range": [0, 10**12]}}), Dataset(np.eye(3), np.ones((3, 2))))
    >>> next(runs).config.seed, next(runs).config.seed
    (0, 1)
    """
    base = {"widths": (data.n_features, data.n_targets), "engine": engine, **grid.fixed}
    seen = set()  # 64-bit ids: a few dozen bytes a run
    for combo in _product(_fragments(grid, data.n_features, data.n_targets)):
        config = _checked_config(base, combo, data)
        if config.lr == "auto" and "lr_auto_multiple" in config.extra:
            config = _resolve_auto(config, data)
        rid = run_id(config, data)
        if int(rid, 16) not in seen:
            seen.add(int(rid, 16))
            yield Run(rid, config)
