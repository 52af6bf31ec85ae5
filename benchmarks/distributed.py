"""Statistics and sweeps on a Dask LocalCluster against the single-process pass and the local sweep.

1. Statistics: ``--rows`` rows (8 features, 2 targets, float64) in ``--shards`` Parquet
   files of 4 row groups each, written to a temporary folder (deleted at the end). The
   single-process pass (:func:`linlab.data.shards.load_shards` without a client: piece by
   piece, then the same tree sum) is timed against the same call on a LocalCluster of 1 and
   of 2 worker processes (one thread each), which reads one row group per task.
2. Sweep: ``--runs`` runs of the batched engine (4 architectures x 25 lrs x seeds) on
   synthetic data, ``--epochs`` epochs each, saved to a table: the local sweep
   (:func:`linlab.sweeps.sweep`, torch with all its threads) against the same call with
   ``client=`` a LocalCluster of 2 workers.

Every timed call follows an untimed small one (one shard; a sweep of 100 runs) that pays
for imports and kernel builds; on a cluster that warm-up is in the start-up time printed
apart, paid once per cluster, not per call. Both rows of a pair
are timed in this process, one after the other. Timings are printed, never asserted.

    python benchmarks/distributed.py                       # 20 million rows, 100,000 runs
    python benchmarks/distributed.py --rows 2000000 --runs 10000   # a short version
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# this file's name shadows Dask's own `distributed` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

D, K = 8, 2
ROW_GROUPS = 4


def write_shards(folder: Path, rows: int, shards: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    W = rng.standard_normal((D, K))
    per = rows // shards
    for i in range(shards):
        X = rng.standard_normal((per, D))
        Y = X @ W + 0.1 * rng.standard_normal((per, K))
        table = pa.table({**{f"x{j}": X[:, j] for j in range(D)}, **{f"y{j}": Y[:, j] for j in range(K)}})
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=-(-per // ROW_GROUPS))


def timed(f):
    tick = time.perf_counter()
    value = f()
    return time.perf_counter() - tick, value


def started(workers: int, warm_up):
    """A LocalCluster's client, after `warm_up(client)` (imports, kernel builds) and the seconds it took."""
    from linlab.distributed import connect

    tick = time.perf_counter()
    context = connect(f"local:{workers}")
    client = context.__enter__()
    warm_up(client)
    return context, client, time.perf_counter() - tick


def bench_stats(rows: int, shards: int, folder: Path) -> None:
    from linlab.data.shards import load_shards

    seconds, _ = timed(lambda: write_shards(folder, rows, shards))
    spec = str(folder / "*.parquet")
    targets = [f"y{j}" for j in range(K)]
    print(f"\nstatistics of {rows:,} rows x ({D} + {K}) columns in {shards} Parquet shards "
          f"({shards * ROW_GROUPS} row groups; written in {seconds:.1f} s)")
    first = str(sorted(folder.glob("*.parquet"))[0])
    load_shards(first, targets=targets)  # warm-up: imports, file system cache
    single, data = timed(lambda: load_shards(spec, targets=targets))
    print(f"  single process      {single:7.2f} s   1.00x   ({rows / single / 1e6:.1f} M rows/s)")
    results = {}
    for workers in (1, 2):
        context, client, startup = started(workers, lambda c: load_shards(first, targets=targets, client=c))
        try:
            seconds, other = timed(lambda client=client: load_shards(spec, targets=targets, client=client))
        finally:
            context.__exit__(None, None, None)
        err = np.abs(other.stats.A - data.stats.A).max() / np.abs(data.stats.A).max()
        results[workers] = seconds, startup, err
    # the single pass again: a shared machine's pace drifts, so the ratios use the mean of both
    again, _ = timed(lambda: load_shards(spec, targets=targets))
    print(f"  single process again{again:7.2f} s   (the ratios below use the mean, {(single + again) / 2:.2f} s)")
    for workers, (seconds, startup, err) in results.items():
        name = f"{workers} worker{'s' if workers > 1 else ' '} (Dask)"
        print(f"  {name:<20}{seconds:7.2f} s   {(single + again) / 2 / seconds:.2f}x   (cluster start "
              f"{startup:.1f} s; XᵀX agrees to {err:.0e})")


def bench_sweep(runs: int, epochs: int, folder: Path) -> None:
    from linlab.sweeps import Grid, sweep

    seeds = max(1, runs // 100)
    grid = Grid.from_dict({
        "data": "synthetic:n=1000,d=8,k=2,seed=0", "fixed": {"engine": "batched", "epochs": epochs},
        "grid": {"widths": [[8, 2], [8, 2, 2], [8, 4, 2], [8, 8, 2]], "lr": {"log_range": [1e-5, 1e-3, 25]},
                 "seed": list(range(seeds))},
    })
    small = Grid(grid.data, grid.fixed, {**grid.axes, "seed": [0]})  # warm-up: imports, kernel builds
    print(f"\nsweep of {100 * seeds:,} runs x {epochs} epochs (batched engine), saved to a Parquet table")
    sweep(small)
    local, table = timed(lambda: sweep(grid, out=folder / "local.parquet"))
    print(f"  local                {local:7.1f} s   1.00x   ({table.num_rows / local:,.0f} runs/s)")
    context, client, startup = started(2, lambda c: sweep(small, client=c, runs_per_batch=50))
    try:
        seconds, other = timed(lambda: sweep(grid, out=folder / "cluster.parquet", client=client))
    finally:
        context.__exit__(None, None, None)
    same = other.column("final_loss").to_pylist() == table.column("final_loss").to_pylist()
    print(f"  2 workers (Dask)     {seconds:7.1f} s   {local / seconds:.2f}x   (cluster start {startup:.1f} s; "
          f"same final losses: {same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--dir", default=None, help="Where the temporary data go (default: the system's).")
    args = parser.parse_args()
    import os

    print(f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        (Path(tmp) / "shards").mkdir()
        bench_stats(args.rows, args.shards, Path(tmp) / "shards")
        bench_sweep(args.runs, args.epochs, Path(tmp))


if __name__ == "__main__":  # LocalCluster spawns worker processes that re-import this script
    main()
