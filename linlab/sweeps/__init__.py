"""Sweeps: every run of a grid, executed in batches, into a table that survives interruption.

A sweep expands a :class:`~linlab.sweeps.grid.Grid` into runs with stable ids, executes
them batch by batch (many at once on the ``batched`` engine, one by one on the others)
and, after every batch, rewrites its table atomically, so a stopped sweep keeps what it
finished and ``resume=True`` runs only the rest. :func:`best_per_architecture` then
compares architectures fairly: each at its own best learning rate from the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from ..config import TrainConfig
from ..data import Dataset
from ..engines import fit
from ..results import RunResult
from .grid import Grid, Run, axis_values, expand, run_id
from .table import (
    SCHEMA,
    best_per_architecture,
    flops_per_epoch,
    histories_path,
    read_table,
    result_row,
    to_table,
    write_table,
)

__all__ = [
    "SCHEMA", "Grid", "Run", "axis_values", "best_per_architecture", "expand",
    "flops_per_epoch", "histories_path", "read_table", "run_batch", "run_id", "sweep", "write_table",
]

MEMORY_BUDGET = 2 * 1024**3  # bytes the batched engine may use for one batch
# runs executed, then saved, together; a compiled sweep is large, and larger stacks run faster
RUNS_PER_BATCH = {"compiled": 4096, "batched": 256, "single": 16}


def run_batch(data: Dataset, configs: Sequence[TrainConfig], *, device: str | None = None,
              memory_budget: int = MEMORY_BUDGET, compile: bool | str = "auto") -> list[RunResult]:
    """Train `configs` on `data`: ``engine="batched"`` ones together, the rest one by one.

    Returns one :class:`~linlab.results.RunResult` per config, in order.

    Examples
    --------
    >>> from linlab import seed_dataset
    >>> configs = [TrainConfig(widths=(10, 2), lr=lr, epochs=20) for lr in (1e-5, 1e-2)]
    >>> [r.outcome for r in run_batch(seed_dataset(), configs)]
    ['max_epochs', 'diverged']
    """
    results: list[RunResult | None] = [None] * len(configs)
    together = [i for i, c in enumerate(configs) if c.engine == "batched"]
    if together:
        from ..engines.batched import fit_batched
        from ..models import initial_factors, takes_seed_factors

        group = [configs[i] for i in together]
        starts = None  # each run draws its own, except the seed's own weights (models.takes_seed_factors)
        if any(takes_seed_factors(data, c) for c in group):
            starts = [initial_factors(data, c) for c in group]
        batch = fit_batched(data, group, factors=starts, device=device, memory_budget=memory_budget,
                            compile=compile)
        for i, result in zip(together, batch, strict=True):
            results[i] = result
    for i, config in enumerate(configs):
        if config.engine != "batched":
            from ..models import initial_factors

            results[i] = fit(data, config, factors=initial_factors(data, config))
    return results


def _resolve_compile(compile, runs: Sequence[Run], device: str | None) -> tuple[bool | str, str | None]:
    # decided once for the sweep: its batches are small, its total is what pays for compiling;
    # (the compile argument of each batch, the plan it gives)
    from ..engines.compiled import check_mode, compile_plan

    check_mode(compile)
    batched = [r.config for r in runs if r.config.engine == "batched"]
    on_cpu = all((device or c.device) == "cpu" for c in batched)
    plan = compile_plan(compile, "cpu" if on_cpu else "cuda", sum(c.epochs for c in batched))
    return (True if plan == "all" else compile if compile is False else "auto"), plan


def _as_grid(grid_or_path) -> Grid:
    if isinstance(grid_or_path, Grid):
        return grid_or_path
    if isinstance(grid_or_path, dict):
        return Grid.from_dict(grid_or_path)
    if isinstance(grid_or_path, (str, Path)):
        return Grid.from_toml(grid_or_path)
    raise ValueError(f"grid_or_path={grid_or_path!r} must be a Grid, a dict in the TOML layout, "
                     "or the path of a TOML sweep file.")


def _existing(out: Path | None, csv: bool, resume: bool) -> pa.Table | None:
    if out is None or not out.exists():
        return None
    if not resume:
        raise ValueError(f"out={str(out)!r} exists; pass resume=True (--resume) to continue that sweep, "
                         "or choose another output path.")
    return read_table(out, csv)


def sweep(
    grid_or_path,
    *,
    data: Dataset | None = None,
    out=None,
    csv: bool | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    runs_per_batch: int | None = None,
    device: str | None = None,
    memory_budget: int = MEMORY_BUDGET,
    compile: bool | str = "auto",
) -> pa.Table:
    """Run every configuration of a grid and return the table of results.

    Parameters
    ----------
    grid_or_path : Grid, dict or path
        The grid, a dict in the TOML layout, or a TOML file (see :mod:`linlab.sweeps.grid`).
    data : Dataset, optional
        Overrides the grid's ``data``.
    out : path, optional
        Where the table is saved, atomically after every batch.
    csv : bool, optional
        Save CSV (histories in a second file) instead of Parquet; by default CSV when
        `out` ends in ``.csv``.
    resume : bool
        Read an existing `out` and skip the runs whose ids it holds.
    progress : callable, optional
        ``progress(done, total)``, called before the first batch and after each one;
        `total` counts the runs this call executes.
    runs_per_batch : int, optional
        Overrides the grid's value; by default 256 on the batched engine (4,096 when it
        compiles, as a CPU with a C compiler does by default), 16 otherwise.
    device, memory_budget
        Passed to the batched engine.
    compile : {"auto", True, False}
        Whether the batched engine compiles its statistics-path epochs
        (:func:`~linlab.engines.batched.fit_batched`); ``"auto"`` decides once for the whole
        sweep, from the run-epochs its batched CPU runs plan, whether the optimizers other
        than SGD compile too.

    Returns
    -------
    pyarrow.Table
        One row per run, with columns `SCHEMA` (resumed rows first).

    Examples
    --------
    >>> grid = Grid(fixed={"engine": "numpy", "epochs": 200}, axes={"lr": [1e-5, 1e-4], "seed": [0, 1]})
    >>> table = sweep(grid)
    >>> table.num_rows, table.column("outcome").to_pylist()
    (4, ['max_epochs', 'max_epochs', 'converged', 'converged'])
    >>> table.column("epochs_to_tol").to_pylist()
    [None, None, 57, 58]
    """
    grid = _as_grid(grid_or_path)
    data = grid.load_data() if data is None else data
    out = None if out is None else Path(out)
    csv = out is not None and out.suffix.lower() == ".csv" if csv is None else csv
    done = _existing(out, csv, resume)
    done_ids = set() if done is None else set(done.column("run_id").to_pylist())
    runs = [r for r in expand(grid, data, "batched") if r.run_id not in done_ids]
    compile, plan = _resolve_compile(compile, runs, device)
    batched = any(r.config.engine == "batched" for r in runs)
    size = runs_per_batch or grid.runs_per_batch or RUNS_PER_BATCH[
        ("compiled" if plan else "batched") if batched else "single"
    ]
    tables = [] if done is None else [done]
    if progress is not None:
        progress(0, len(runs))
    for start in range(0, len(runs), size):
        batch = runs[start:start + size]
        results = run_batch(data, [r.config for r in batch], device=device, memory_budget=memory_budget,
                            compile=compile)
        tables.append(to_table([
            result_row(r.run_id, r.config, result, data) for r, result in zip(batch, results)
        ]))
        if out is not None:
            write_table(pa.concat_tables(tables), out, csv)
        if progress is not None:
            progress(start + len(batch), len(runs))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
