"""Sweeps: every run of a grid, executed in batches, into a table that survives interruption.

A sweep expands a :class:`~linlab.sweeps.grid.Grid` into runs with stable ids and executes
them in chunks (many at once on the ``batched`` engine, one by one on the others), here or
as tasks on a Dask cluster (:mod:`linlab.distributed`). Each finished chunk is saved as it
arrives (:mod:`linlab.sweeps.store`), so a stopped sweep keeps what it finished and
``resume=True`` runs only the rest. :func:`best_per_architecture` then
compares architectures fairly: each at its own best learning rate from the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import pyarrow as pa

from ..config import TrainConfig
from ..data import Dataset
from ..engines import fit
from ..results import RunResult
from .chunks import executor
from .grid import Grid, GridTotals, Run, axis_values, check_runs, expand, grid_totals, iter_runs, run_id
from .store import FileStore, MemoryStore, parts_folder
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
    "flops_per_epoch", "histories_path", "parts_folder", "read_table", "result_row", "run_batch", "run_id",
    "sweep", "to_table", "write_table",
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


def _resolve_compile(compile, totals: GridTotals, device: str | None) -> tuple[bool | str, str | None]:
    # decided once for the sweep: its batches are small, its total is what pays for compiling;
    # (the compile argument of each batch, the plan it gives)
    from ..engines.batched.plan import check_mode, compile_plan

    check_mode(compile)
    on_cpu = device == "cpu" if device else totals.batched_on_cpu
    plan = compile_plan(compile, "cpu" if on_cpu else "cuda", totals.batched_epochs)
    return (True if plan == "all" else compile if compile is False else "auto"), plan


def _chunks(runs: Iterator[tuple[int, Run]], size: int, firsts: list[int]) -> Iterator[list[Run]]:
    # `size` runs at a time, made as they are asked for; firsts[i]: chunk i's first grid position
    while chunk := list(islice(runs, size)):
        firsts.append(chunk[0][0])
        yield [run for _, run in chunk]


def _as_grid(grid_or_path) -> Grid:
    if isinstance(grid_or_path, Grid):
        return grid_or_path
    if isinstance(grid_or_path, dict):
        return Grid.from_dict(grid_or_path)
    if isinstance(grid_or_path, (str, Path)):
        return Grid.from_toml(grid_or_path)
    raise ValueError(f"grid_or_path={grid_or_path!r} must be a Grid, a dict in the TOML layout, "
                     "or the path of a TOML sweep file.")


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
    client=None,
) -> pa.Table:
    """Run every configuration of a grid and return the table of results.

    Parameters
    ----------
    grid_or_path : Grid, dict or path
        The grid, a dict in the TOML layout, or a TOML file (see :mod:`linlab.sweeps.grid`).
    data : Dataset, optional
        Overrides the grid's ``data``.
    out : path, optional
        Where the table is saved: each finished chunk at once in the folder
        ``OUT.parts`` (:func:`parts_folder`), the whole table atomically at the end. One
        sweep at a time may write `out`; a second raises FileExistsError.
    csv : bool, optional
        Save CSV (histories in a second file) instead of Parquet; by default CSV when
        `out` ends in ``.csv``.
    resume : bool
        Read an existing `out` and its saved chunks and skip the runs whose ids they hold.
    progress : callable, optional
        ``progress(done, total)``, called before the first batch and after each one;
        `total` counts the runs this call plans (a grid's repeated entries, run once, are
        counted each time until the last call).
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
    client : distributed.Client, optional
        Run the chunks as tasks on this Dask cluster (:func:`linlab.distributed.connect`),
        each with retries, instead of here; the table is the same.

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
    with (MemoryStore() if out is None else FileStore(out, csv)) as store:
        done = store.existing(resume)
        done_ids = set() if done is None else set(done.column("run_id").to_pylist())
        check_runs(grid, data, "batched")  # an impossible value is refused before any run
        totals = grid_totals(grid, "batched")
        compile, plan = _resolve_compile(compile, totals, device)
        size = runs_per_batch or grid.runs_per_batch or RUNS_PER_BATCH[
            ("compiled" if plan else "batched") if totals.batched_runs else "single"
        ]
        # runs are made as chunks are asked for: memory holds a chunk, never the grid
        runs = ((i, r) for i, r in enumerate(iter_runs(grid, data, "batched")) if r.run_id not in done_ids)
        firsts: list[int] = []
        options = {"device": device, "memory_budget": memory_budget, "compile": compile}
        planned = max(totals.runs - len(done_ids), 0)
        finished = 0
        if progress is not None:
            progress(0, planned)
        for i, table in executor(client)(data, _chunks(runs, size, firsts), options):
            store.append(firsts[i], table)
            finished += table.num_rows
            if progress is not None:
                progress(finished, max(planned, finished))
        if progress is not None and finished != planned:  # repeated grid entries ran once
            progress(finished, finished)
        return store.finish()
