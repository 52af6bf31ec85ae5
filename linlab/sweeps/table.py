"""Sweep tables: one row per run, saved atomically as Parquet or CSV, and the fair comparison.

A row holds the run's id and data, its full config (one column per `TrainConfig` field;
widths and betas as text such as ``"10,5,2"``, extra as JSON, lr as the resolved number)
and then:

    depth, n_params          the architecture's size
    flops_per_epoch          matrix-product FLOPs of one full-batch epoch (`flops_per_epoch`)
    outcome, message         converged, diverged, stalled or max_epochs, and why
    epochs_done              updates made; epochs_to_tol: the first t with loss <= tol
    final_loss, best_loss    the last and the smallest recorded training loss
    distance_to_true         ‖W − W_true‖_F / ‖W_true‖_F when the data knows W_true
    seconds                  the run's wall time (on the batched engine: its share of the batch's)
    seconds_per_epoch, seconds_to_tol
    history                  the loss after each update, history[t] after t updates

In Parquet the history is a ``list<double>`` column; a CSV table keeps it in a second,
long ``run_id, epoch, loss`` CSV beside it.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..atomic import atomic_write
from ..config import TrainConfig
from ..data import Dataset
from ..models import n_params
from ..results import RunResult


def _column_type(f: dataclasses.Field) -> pa.DataType:
    # tuples (widths, betas) and the extra dict are written as text: "10,5,2", JSON
    kind = type(f.default_factory() if f.default is dataclasses.MISSING else f.default)
    if f.name == "lr":
        return pa.float64()  # the resolved number, after "auto"
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), type(None): pa.int64()}.get(
        kind, pa.string()
    )


CONFIG_SCHEMA = pa.schema([(f.name, _column_type(f)) for f in dataclasses.fields(TrainConfig)])
OUTCOME_SCHEMA = pa.schema([
    ("depth", pa.int64()), ("n_params", pa.int64()), ("flops_per_epoch", pa.int64()),
    ("outcome", pa.string()), ("message", pa.string()), ("epochs_done", pa.int64()),
    ("epochs_to_tol", pa.int64()), ("final_loss", pa.float64()), ("best_loss", pa.float64()),
    ("distance_to_true", pa.float64()), ("seconds", pa.float64()),
    ("seconds_per_epoch", pa.float64()), ("seconds_to_tol", pa.float64()),
])
HISTORY_FIELD = pa.field("history", pa.list_(pa.float64()))
SCHEMA = pa.schema(
    [("run_id", pa.string()), ("data", pa.string()), *CONFIG_SCHEMA, *OUTCOME_SCHEMA, HISTORY_FIELD]
)


def flops_per_epoch(widths, n_samples: int) -> int:
    r"""Floating-point operations of the matrix products in one full-batch epoch.

    Notes
    -----
    With P = Σ_j w_{j-1} w_j (the number of weights) and n rows, a multiply-add
    counted as 2: the forward chain h_j = h_{j-1} W_j costs 2nP, the weight gradients
    h_{j-1}ᵀ G_j another 2nP, and the back-propagated G_{j-1} = G_j W_jᵀ (for j >= 2)
    2n(P − w_0 w_1):

    .. math:: \mathrm{FLOPs} = 2n\,(3P - w_0 w_1)

    Mini-batches pass the same n rows per epoch, so the count is the same. Bias
    additions and elementwise loss terms, O(n Σ_j w_j), are not counted.

    Examples
    --------
    >>> flops_per_epoch((10, 2), 1000), flops_per_epoch((10, 5, 2), 1000)
    (80000, 260000)
    """
    widths = tuple(int(w) for w in widths)
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 2 * int(n_samples) * (3 * weights - widths[0] * widths[1])


def _config_cell(name: str, value):
    if name in ("widths", "betas"):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if name == "extra":
        return json.dumps(value, sort_keys=True, default=str)
    return value


def result_row(run_id: str, config: TrainConfig, result: RunResult, data: Dataset) -> dict:
    """One table row (a dict keyed by `SCHEMA`'s names) for a finished run.

    Examples
    --------
    >>> from linlab import fit, seed_dataset
    >>> config = TrainConfig(widths=(10, 2), lr=4e-4, epochs=50, seed=1)
    >>> data = seed_dataset()
    >>> row = result_row("r1", config, fit(data, config), data)
    >>> row["widths"], row["outcome"], row["epochs_to_tol"], row["n_params"]
    ('10,2', 'converged', 10, 20)
    """
    row = {"run_id": run_id, "data": data.name}
    # the fields as they are (TrainConfig.to_dict's deep copy costs more than the run on big sweeps)
    row.update({name: _config_cell(name, getattr(config, name)) for name in CONFIG_SCHEMA.names})
    converged = result.epochs_to_tol is not None
    row.update(
        lr=float(result.lr), depth=config.depth, n_params=n_params(config.widths, config.bias),
        flops_per_epoch=flops_per_epoch(config.widths, data.n_samples), outcome=result.outcome,
        message=result.message, epochs_done=int(result.epochs), epochs_to_tol=result.epochs_to_tol,
        final_loss=result.final_loss, best_loss=result.best_loss,
        distance_to_true=result.distance_to_true, seconds=float(result.seconds),
        seconds_per_epoch=result.seconds_per_epoch,
        seconds_to_tol=float(result.seconds) if converged else None,  # the run stops at tol
        history=np.asarray(result.history, dtype=np.float64).tolist(),
    )
    return row


def to_table(rows: list[dict]) -> pa.Table:
    """Rows from :func:`result_row` as a table with the sweep `SCHEMA`."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def histories_path(path) -> Path:
    """Where a CSV table keeps its loss histories: ``results.csv`` → ``results.histories.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.histories.csv")


def _long_histories(table: pa.Table) -> pa.Table:
    lengths = [len(h or []) for h in table.column("history").to_pylist()]
    ids = np.repeat(np.asarray(table.column("run_id").to_pylist(), dtype=object), lengths)
    epochs = np.concatenate([np.arange(k) for k in lengths]) if lengths else np.zeros(0, int)
    losses = pc.list_flatten(table.column("history"))
    return pa.table({"run_id": pa.array(ids, pa.string()), "epoch": pa.array(epochs, pa.int64()),
                     "loss": losses.cast(pa.float64())})


def write_table(table: pa.Table, path, csv: bool = False) -> list[Path]:
    """Save atomically (temporary file + ``os.replace``); return the paths written.

    Parquet keeps the histories in the table; CSV writes them to :func:`histories_path`
    first, so a table on disk never names runs whose histories are missing.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not csv:
        atomic_write(path, lambda f: pq.write_table(table, f))
        return [path]
    atomic_write(histories_path(path), lambda f: pacsv.write_csv(_long_histories(table), f))
    atomic_write(path, lambda f: pacsv.write_csv(table.drop_columns(["history"]), f))
    return [histories_path(path), path]


def read_table(path, csv: bool = False) -> pa.Table:
    """Read a table written by :func:`write_table`, checking its columns."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if not csv:
            table = pq.read_table(path)
        else:
            types = {f.name: f.type for f in SCHEMA if f.name != "history"}
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
            table = table.append_column(HISTORY_FIELD, pa.array(_read_histories(path, table), HISTORY_FIELD.type))
    except (pa.ArrowException, OSError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        raise ValueError(f"{path} is not a {'CSV' if csv else 'Parquet'} sweep table ({reason}); give the "
                         "output of an earlier linlab sweep, in its format, or write to a new file.") from None
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks the sweep column(s) {missing}; it was not written by linlab "
                         "sweep (or by another version). Write to a new file instead.")
    return table.select(SCHEMA.names).cast(SCHEMA)


def _read_histories(path: Path, table: pa.Table) -> list:
    import pyarrow.csv as pacsv

    hist = histories_path(path)
    if not hist.is_file():
        raise ValueError(f"{path} has no loss histories beside it ({hist.name}); restore it or start anew.")
    long = pacsv.read_csv(hist).sort_by([("run_id", "ascending"), ("epoch", "ascending")])
    ids, losses = long.column("run_id").to_pylist(), long.column("loss").to_numpy()
    by_id, start = {}, 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            by_id[ids[start]] = losses[start:i].tolist()
            start = i
    return [by_id.get(rid) for rid in table.column("run_id").to_pylist()]


SWEPT_ELSEWHERE = ("lr", "seed", "extra", "log_every")  # not what tells architectures apart


def _lr_summary(rows: list[dict]) -> dict:
    # how one lr fared over the seeds of one architecture
    def median(key):
        values = [r[key] for r in rows if r[key] is not None]
        return float(statistics.median(values)) if values else None

    converged = sum(r["outcome"] == "converged" for r in rows)
    diverged = sum(r["outcome"] == "diverged" for r in rows)
    summary = {
        "lr": rows[0]["lr"], "runs": len(rows), "converged": converged, "diverged": diverged,
        "epochs_to_tol": median("epochs_to_tol") if converged == len(rows) else None,
        "seconds_to_tol": median("seconds_to_tol") if converged == len(rows) else None,
        "final_loss": median("final_loss"),
    }
    if converged == len(rows):
        rank = (0, summary["epochs_to_tol"], summary["seconds_to_tol"], 0.0)
    else:
        rank = (1 if diverged == 0 else 2, 0.0, 0.0, summary["final_loss"])
    return {**summary, "rank": rank}


def best_per_architecture(table: pa.Table, by: tuple[str, ...] | None = None) -> pa.Table:
    """For each architecture, the grid's best lr and the epochs and wall time to tol there.

    An architecture is a value of the `by` columns: by default ``widths`` and every other
    config column that varies in the table, except lr and seed. Its lrs are ranked:
    first those at which every run (seed) reaches tol, by the median epochs to tol (then
    median seconds); then those at which none diverged, then the rest, by the median
    final loss.

    Returns
    -------
    pyarrow.Table
        One row per architecture: the `by` columns, depth, n_params, flops_per_epoch,
        the best lr, lrs_tried, runs at that lr, how many converged and diverged, the
        median epochs_to_tol and seconds_to_tol (null unless all converged) and the median
        final_loss.

    Examples
    --------
    >>> from linlab.sweeps import Grid, sweep
    >>> grid = Grid(fixed={"epochs": 300, "engine": "numpy"},
    ...             axes={"widths": [[10, 2], [10, 5, 2]], "lr": [1e-5, 1e-4]})
    >>> best = best_per_architecture(sweep(grid))
    >>> best.column("widths").to_pylist(), best.column("lr").to_pylist()
    (['10,2', '10,5,2'], [0.0001, 1e-05])
    """
    rows = table.drop_columns(["history"]).to_pylist() if "history" in table.column_names else table.to_pylist()
    if by is None:
        config = [n for n in CONFIG_SCHEMA.names if n not in SWEPT_ELSEWHERE and n != "widths"]
        by = ("widths", *[n for n in config if len({r[n] for r in rows}) > 1])
    groups: dict[tuple, dict[float, list[dict]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), {}).setdefault(r["lr"], []).append(r)
    out = []
    for key, by_lr in groups.items():
        best = min((_lr_summary(runs) for runs in by_lr.values()), key=lambda s: s["rank"])
        del best["rank"]
        first = next(iter(by_lr.values()))[0]
        out.append({**dict(zip(by, key)), "depth": first["depth"], "n_params": first["n_params"],
                    "flops_per_epoch": first["flops_per_epoch"], **best, "lrs_tried": len(by_lr)})
    out.sort(key=lambda r: (r["depth"], r["n_params"], *[str(r[k]) for k in by]))
    return pa.Table.from_pylist(out)
