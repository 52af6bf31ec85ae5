"""A report from any sweep table that ``linlab sweep`` wrote (``linlab report``).

Architectures are compared fairly, as :func:`linlab.sweeps.best_per_architecture` does:
each at its own best learning rate, with the spread over seeds at that lr.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from . import plots
from .document import Document

SUMMARY = ("depth", "n_params", "flops_per_epoch", "lr", "runs", "converged", "diverged", "epochs_to_tol",
           "seconds_to_tol", "final_loss", "lrs_tried")


def _key_names(best: pa.Table) -> list[str]:
    return [name for name in best.column_names if name not in SUMMARY]


def _label(row: dict, keys) -> str:
    return ", ".join(f"{k} {row[k]}" for k in keys)


def _seed_runs(rows: list[dict], keys, best_row: dict) -> list[dict]:
    return [r for r in rows if r["lr"] == best_row["lr"] and all(r[k] == best_row[k] for k in keys)]


def _epochs_plot(best_rows, rows, keys, path: Path) -> Path:
    # one series per value of the keys other than widths (e.g. optimizer), x = parameters
    others = [k for k in keys if k != "widths"]
    groups: dict[str, list[dict]] = {}
    for b in best_rows:
        groups.setdefault(_label(b, others) or "each architecture at its best lr", []).append(b)
    series = []
    for label, members in groups.items():
        members.sort(key=lambda b: b["n_params"])
        low, high = [], []
        for b in members:
            done = [r["epochs_to_tol"] for r in _seed_runs(rows, keys, b) if r["epochs_to_tol"] is not None]
            low.append(min(done) if done else None)
            high.append(max(done) if done else None)
        series.append((label, [b["n_params"] for b in members], [b["epochs_to_tol"] for b in members], low, high))
    return plots.epochs_to_tol(series, path, "parameters (log scale)",
                               "Epochs to reach the tolerance, each architecture at its best lr")


def _outcome_plots(best_rows, rows, keys, out: Path) -> list[tuple[str, Path]]:
    # one map per value of the keys other than widths (e.g. per optimizer), architectures along x
    others = [k for k in keys if k != "widths"]
    groups: dict[str, list[dict]] = {}
    for b in best_rows:
        groups.setdefault(_label(b, others), []).append(b)
    maps = []
    for i, (label, members) in enumerate(groups.items()):
        name = "outcome_map.png" if len(groups) == 1 else f"outcome_map_{i + 1}.png"
        maps.append((label, _outcome_plot(members, rows, keys, out / name, label)))
    return maps


def _outcome_plot(best_rows, rows, keys, path: Path, group: str) -> Path:
    columns = sorted(best_rows, key=lambda b: (b["n_params"], _label(b, keys)))
    lrs = sorted({r["lr"] for r in rows if all(r[k] == columns[0][k] for k in keys if k != "widths")})
    cells = []
    for b in columns:
        col = []
        for lr in lrs:
            names = [r["outcome"] for r in rows if r["lr"] == lr and all(r[k] == b[k] for k in keys)]
            col.append(max(set(names), key=names.count) if names else None)
        cells.append(col)
    return plots.outcome_map([str(b["widths"]) for b in columns], lrs, cells, path, xlabel="widths",
                             title="How the runs end, by learning rate and architecture"
                             + (f" ({group})" if group else ""))


def write_sweep_report(table: pa.Table, out, source: str = "sweep") -> dict:
    """Plots, ``report.md`` and a self-contained ``report.html`` of a sweep table, in `out`."""
    from ..atomic import atomic_write
    from ..sweeps import best_per_architecture

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if table.num_rows == 0:
        raise ValueError(f"{source} holds no runs; run `linlab sweep` first, then report on its table.")
    best = best_per_architecture(table)
    keys, best_rows = _key_names(best), best.to_pylist()
    rows = table.drop_columns(["history"]).to_pylist()
    doc = Document(f"linlab report: {source}")
    doc.p(f"{table.num_rows} runs, {len(best_rows)} architectures, {len({r['lr'] for r in rows})} learning rates. "
          "Each architecture is shown at its own best lr: the lr at which every seed reached the tolerance "
          "in the fewest epochs (median), else the lowest final loss.")
    doc.table([*keys, "params", "best lr", "reached tol", "epochs (median)", "time to tol (median)", "final loss"],
              [[*(b[k] for k in keys), b["n_params"], f"{b['lr']:.3g}", f"{b['converged']}/{b['runs']}",
                "-" if b["epochs_to_tol"] is None else f"{b['epochs_to_tol']:g}",
                "-" if b["seconds_to_tol"] is None else f"{b['seconds_to_tol'] * 1e3:.3g} ms",
                f"{b['final_loss']:.3g}"] for b in best_rows])
    files = {}
    histories = table.column("history").to_pylist()
    curves = []
    for b in best_rows:
        i = next(i for i, r in enumerate(rows) if r["lr"] == b["lr"] and all(r[k] == b[k] for k in keys))
        curves.append((_label(b, keys) + f", lr {b['lr']:.2g}", histories[i] or [float("nan")]))
    files["loss_curves"] = plots.loss_curves(curves[:12], out / "loss_curves.png", tol=rows[0]["tol"],
                                             title="Training loss at each architecture's best lr (first seed)")
    doc.img(files["loss_curves"], "Loss against epoch (log scale) of one run per architecture, at its best lr"
            + (" (the first 12 architectures)" if len(curves) > 12 else "") + ".")
    files["epochs"] = _epochs_plot(best_rows, rows, keys, out / "epochs_vs_params.png")
    doc.img(files["epochs"], "Epochs to the tolerance against parameters, at each architecture's best lr "
                             "(band: range over seeds).")
    for i, (group, png) in enumerate(_outcome_plots(best_rows, rows, keys, out)):
        files[f"outcomes_{i + 1}"] = png
        doc.img(png, "How the runs ended, by learning rate and architecture (most frequent outcome over seeds)"
                + (f": {group}." if group else "."))
    files["costs"] = plots.costs(
        [(str(b["widths"]), b["n_params"], b["seconds_to_tol"],
          None if b["epochs_to_tol"] is None else b["epochs_to_tol"] * b["flops_per_epoch"]) for b in best_rows],
        out / "costs.png", title="What reaching the tolerance costs, at each architecture's best lr")
    doc.img(files["costs"], "Wall time (median over seeds; the batched engine's share of its batch) and "
                            "matrix-product FLOPs to the tolerance against parameters.")
    files["report_md"] = atomic_write(out / "report.md", lambda f: f.write(doc.markdown().encode()))
    files["report"] = atomic_write(out / "report.html", lambda f: f.write(doc.html().encode()))
    return files
