"""``linlab sweep``: every run of a TOML grid, saved as a table, then each architecture at its best lr.

The grid file's layout is in :mod:`linlab.sweeps.grid`. A progress bar follows the runs; each
finished chunk of runs is saved as it arrives (beside the table, in ``OUT.parts``), so
``--resume`` continues an interrupted sweep. ``--cluster`` runs the chunks on a Dask cluster.
``--json`` prints one JSON object and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import cluster_options

MAX_RUNS = 100_000  # runs a sweep makes without --max-runs or --yes


class _Bar:
    """``progress(done, total)`` for :func:`linlab.sweeps.sweep`: a rich progress bar on
    `console` (none when it is None), and the number of runs executed."""

    def __init__(self, console=None):
        self.console, self.progress, self.task, self.total = console, None, None, 0

    def __call__(self, done: int, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = total
        if self.console is None:
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=self.console)
            self.task = self.progress.add_task("sweep", total=total)
            self.progress.start()
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def best_table(best, title: str):
    """The rich table of :func:`linlab.sweeps.best_per_architecture`'s rows.

    Examples
    --------
    >>> import pyarrow as pa
    >>> row = {"widths": "10,2", "n_params": 20, "flops_per_epoch": 80000, "lr": 1e-4, "runs": 2,
    ...        "converged": 2, "epochs_to_tol": 57.5, "seconds_to_tol": 0.002, "final_loss": 9e-5}
    >>> best_table(pa.Table.from_pylist([row]), "best").row_count
    1
    """
    from rich import box
    from rich.table import Table

    fixed = ("depth", "n_params", "flops_per_epoch", "lr", "runs", "converged", "diverged",
             "epochs_to_tol", "seconds_to_tol", "final_loss", "lrs_tried")
    keys = [name for name in best.column_names if name not in fixed]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in (*keys, "params", "FLOPs/ep", "best lr", "tol", "epochs", "time", "loss"):
        table.add_column(name, justify="left" if name in keys else "right", no_wrap=True)
    for r in best.to_pylist():
        seconds = r["seconds_to_tol"]
        table.add_row(
            *[str(r[k]) for k in keys], str(r["n_params"]), f"{r['flops_per_epoch']:.2g}", f"{r['lr']:.2g}",
            f"{r['converged']}/{r['runs']}", _fmt(r["epochs_to_tol"], "g"),
            _fmt(None if seconds is None else seconds * 1e3, ".3g", " ms"), _fmt(r["final_loss"], ".3g"),
        )
    return table


def _fmt(x, spec: str, unit: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{unit}"


@click.command()
@click.option("--config", "config_path", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML sweep file: data, [fixed] values and [grid] axes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Results table (default results.parquet, or results.csv with --csv).")
@click.option("--csv", "as_csv", is_flag=True,
              help="Write CSV; loss histories go to a second CSV beside it (NAME.histories.csv).")
@click.option("--resume", is_flag=True, help="Continue the sweep in --out: skip runs already there.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--compile", "compile_mode", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="Compile the batched engine's epochs (needs a C/C++ compiler). auto: SGD in a C kernel "
                   "on the CPU, other optimizers too once the sweep plans 50 million run-epochs; "
                   "on: everything; off: eager torch.")
@click.option("--max-runs", type=click.IntRange(min=1), default=MAX_RUNS, show_default=True, metavar="N",
              help="Refuse a grid of more runs than this (the count is checked before anything runs).")
@click.option("--yes", is_flag=True, help="Run the grid whatever its size (no --max-runs limit).")
@cluster_options
def sweep(config_path, out, as_csv, resume, as_json, compile_mode, max_runs, yes, cluster, dashboard):
    """Run every configuration of a grid and compare architectures at their best lr.

    \b
    Examples:
      linlab sweep --config sweep.toml --out results.parquet
      linlab sweep --config sweep.toml --out results.parquet --resume
      linlab sweep --config sweep.toml --cluster local:4
      linlab sweep --config sweep.toml --cluster tls://scheduler.example.org:8786
    """
    from rich.console import Console

    from ..sweeps import Grid, best_per_architecture, histories_path
    from ..sweeps import sweep as run_sweep
    from ..sweeps.grid import count_runs
    from .options import check_output_file, data_file, use_cluster

    grid = Grid.from_toml(config_path)
    count = count_runs(grid)
    if count > max_runs and not yes:
        raise ValueError(
            f"{config_path} makes {count:,} runs, more than --max-runs {max_runs:,}; shrink its [grid] axes, "
            f"or confirm with --max-runs {count} (or --yes)."
        )
    client = use_cluster(cluster, dashboard)
    out = out or Path("results.csv" if as_csv else "results.parquet")
    check_output_file("--out", out, inputs=[("--config", config_path), ("data", data_file(grid.data))])
    csv = as_csv or out.suffix.lower() == ".csv"
    bar = _Bar(None if as_json else Console(stderr=True))
    if bar.console is not None:
        bar.console.print(f"sweep: {count:,} runs in {config_path}", markup=False, highlight=False)
    try:
        compile = {"auto": "auto", "on": True, "off": False}[compile_mode]
        table = run_sweep(grid, out=out, csv=csv, resume=resume, progress=bar, compile=compile, client=client)
    finally:
        bar.close()
    best = best_per_architecture(table)
    files = [str(out)] + ([str(histories_path(out))] if csv else [])
    if as_json:
        _print_json(table, best, files, bar.total)
        return
    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: room for the whole table
        console.width = max(console.width, 100)
    console.print(f"{table.num_rows} runs ({bar.total} run now, {table.num_rows - bar.total} from before) → "
                  f"{', '.join(files)}", markup=False)
    console.print(best_table(best, "each architecture at its best lr (tol: runs that reached it; "
                                   "epochs, time, loss: medians over seeds)"))


def _print_json(table, best, files, ran: int) -> None:
    from .output import jsonable

    outcomes = table.column("outcome").to_pylist()
    record = {
        "files": files, "runs": table.num_rows, "ran": ran, "skipped": table.num_rows - ran,
        "outcomes": {name: outcomes.count(name) for name in sorted(set(outcomes))},
        "best": best.to_pylist(),
    }
    click.echo(json.dumps(jsonable(record)))
