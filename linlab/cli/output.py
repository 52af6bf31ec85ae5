"""What ``linlab train`` shows: the seed's log lines, a progress bar, a summary table, JSON."""

from __future__ import annotations

import math
import time

import numpy as np
from rich.console import Console
from rich.table import Table

PROGRESS_AFTER_S = 1.0  # a run gets a progress bar once it has taken this long
REFRESH_S = 0.05  # the bar moves at most this often


class RunDisplay:
    """The seed's log lines, and on a terminal a progress bar once a run outlasts a second.

    Use :meth:`line` as ``fit``'s ``log`` and the instance itself as one of its callbacks.
    Off a terminal (a pipe, a file, a test) only the plain lines are written.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with RunDisplay(Console(file=out), epochs=10) as show:
    ...     show.line("Epoch [10/10], Loss: 0.5000")
    >>> out.getvalue()
    'Epoch [10/10], Loss: 0.5000\\n'
    """

    def __init__(self, console: Console, epochs: int, *, quiet: bool = False):
        self.console, self.epochs, self.quiet = console, epochs, quiet
        self.progress, self.task, self.batches = None, None, None
        self.t0 = self.shown = self.epoch_t0 = self.batch_shown = time.perf_counter()

    def __enter__(self) -> RunDisplay:
        self.t0 = self.epoch_t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def line(self, text: str) -> None:
        """Print one log line (above the bar while it is shown)."""
        if not self.quiet:
            (self.progress.console if self.progress else self.console).print(text, markup=False, highlight=False)

    def __call__(self, epoch) -> None:
        """``fit`` callback: start the bar when due, then advance it to ``epoch.epoch``."""
        now = self.epoch_t0 = time.perf_counter()
        if self.progress is None:
            if self.quiet or now - self.t0 <= PROGRESS_AFTER_S or not self.console.is_terminal:
                return
            self._start()
        if now - self.shown >= REFRESH_S or epoch.epoch >= self.epochs:  # fast runs: not every epoch
            self.progress.update(self.task, completed=epoch.epoch, loss=f"loss {_fmt(epoch.loss)}")
            self.shown = now

    def batch(self, done: int, total: int) -> None:
        """``fit``'s ``on_batch``: a second bar through the mini-batches of an epoch that
        outlasts a second."""
        now = time.perf_counter()
        if self.batches is None:
            if self.quiet or now - self.epoch_t0 <= PROGRESS_AFTER_S or not self.console.is_terminal:
                return
            if self.progress is None:
                self._start()
            self.batches = self.progress.add_task("batches", total=total, loss="")
        if now - self.batch_shown >= REFRESH_S or done == total:
            self.progress.update(self.batches, completed=done, total=total)
            self.batch_shown = now

    def _start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )
        self.task = self.progress.add_task("training", total=self.epochs, loss="loss -")
        self.progress.start()


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.6g}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fit_line(m: dict | None) -> str:
    if m is None:
        return "-"
    return (f"{_fmt(m['mean_loss'])} loss per row, RMSE {_fmt(m['rmse'])}, R² {_fmt(m['r2'])} "
            f"({_count(m['rows'], 'row')}, target units)")


def summary_table(result, data, checkpoint: str | None = None, metrics: dict | None = None) -> Table:
    """A short table of the run: data, model, outcome, losses, timing.

    With `metrics` (``{"train": ..., "validation": ...}`` from
    :func:`linlab.diagnose.fit_metrics`), the fit on each set, per row and in target units,
    replaces the bare validation loss (a sum over other rows than the training loss).

    Examples
    --------
    >>> from linlab import train, seed_dataset
    >>> data = seed_dataset()
    >>> table = summary_table(train(data, widths=(10, 2), lr=4e-4, epochs=20), data)
    >>> table.row_count
    10
    """
    from ..models import n_params

    cfg, s = result.config, result.summary()
    tol_at = s["epochs_to_tol"]
    table = Table(title="linlab train", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("data", f"{data.name}: {_count(data.n_samples, 'row')}, {_count(data.n_features, 'feature')}, "
                 f"{_count(data.n_targets, 'target')}"),
        ("model", f"widths {tuple(cfg['widths'])}, {n_params(cfg['widths'], cfg['bias'])} parameters"),
        ("training", f"{cfg['engine']} engine, {cfg['optimizer']}, lr {result.lr:.4g}, {cfg['loss']} loss"),
        ("outcome", result.outcome),
        ("epochs", str(s["epochs"]) + ("" if tol_at is None else f" (tol reached at {tol_at})")),
        ("final loss", _fmt(s["final_loss"])),
        ("best loss", _fmt(s["best_loss"])),
        *([("validation loss", _fmt(s["final_val_loss"]))] if metrics is None else [
            ("training fit", _fit_line(metrics.get("train"))),
            ("validation fit", _fit_line(metrics.get("validation")))]),
        ("‖W − W_true‖/‖W_true‖", _fmt(s["distance_to_true"])),
        ("time", f"{s['seconds']:.3g} s ({s['seconds_per_epoch'] * 1e3:.3g} ms/epoch)"),
    ]
    if checkpoint is not None:
        rows.append(("checkpoint", checkpoint))
    for key, value in rows:
        table.add_row(key, value)
    return table


def jsonable(obj):
    """Plain JSON types: NumPy scalars and arrays to numbers and lists, inf and NaN to null.

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": [np.inf, (1, 2)], "c": np.arange(2)})
    {'a': 0.5, 'b': [None, [1, 2]], 'c': [0, 1]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
