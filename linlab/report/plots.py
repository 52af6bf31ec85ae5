"""The report's figures, drawn with matplotlib's Agg backend (no display, no network).

Each function takes plain numbers and returns a saved PNG's path; the study report and
``linlab report`` feed them from their own tables.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

OUTCOME_COLORS = {"converged": "#2a9d8f", "max_epochs": "#e9c46a", "stalled": "#f4a261", "diverged": "#c0392b"}
OUTCOME_LABELS = {"converged": "converged (loss ≤ tol)", "max_epochs": "still improving at the epoch limit",
                  "stalled": "stalled (rank floor or plateau)", "diverged": "diverged"}


def _pyplot():
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def loss_curves(curves, path, tol: float | None = None, title: str = "Training loss of every program") -> Path:
    """Loss against epoch on a log scale, one line per ``(label, history)``; non-finite losses are cut."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for i, (label, history) in enumerate(curves):
        h = np.asarray(history, dtype=np.float64)
        finite = np.isfinite(h) & (h > 0)
        end = int(np.argmin(finite)) if not finite.all() else len(h)
        epochs = np.arange(len(h))[:end]
        suffix = "" if end == len(h) else " (then nan)"
        ax.plot(epochs, np.maximum(h[:end], 1e-300), lw=1.6, ls="-" if i < 10 else "--", label=label + suffix)
    if tol is not None:
        ax.axhline(tol, color="0.4", ls=":", lw=1, label=f"tolerance {tol:g}")
    ax.set_yscale("log")
    starts = [float(h[0]) for _, h in curves if len(h) and np.isfinite(h[0])]
    if starts:  # a diverging run leaves through the top rather than squashing the rest
        ax.set_ylim(top=100 * max(starts))
    ax.set_xlabel("epoch (full-batch updates)")
    ax.set_ylabel("training loss (sum of squared errors)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return _save(fig, path)


def epochs_to_tol(series, path, xlabel: str, title: str, log_x: bool = True) -> Path:
    """Median epochs to tol against an architecture axis, with the seeds' min-max as a band.

    `series`: ``(label, xs, median, low, high)``, missing values as None (never reached).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for i, (label, xs, med, low, high) in enumerate(series):
        color = f"C{i}"
        ok = [j for j, m in enumerate(med) if m is not None]
        x = np.asarray(xs, dtype=float)
        style = ("o-", "s--", "^-", "D-")[i % 4]
        ax.plot(x[ok], [med[j] for j in ok], style, color=color, label=label, ms=5 if i else 7)
        band = [j for j in ok if low[j] is not None and high[j] is not None]
        ax.fill_between(x[band], [low[j] for j in band], [high[j] for j in band], color=color, alpha=0.18)
        missing = [j for j, m in enumerate(med) if m is None]
        if missing:
            ax.plot(x[missing], [1] * len(missing), "x", color=color, ms=8, mew=2)
    ax.set_xscale("log" if log_x else "linear")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("epochs to reach the tolerance (median; band: seeds' range)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.plot([], [], "x", color="0.3", mew=2, label="× at 1: never reached the tolerance")
    ax.legend(fontsize=8, framealpha=0.9)
    return _save(fig, path)


def outcome_map(columns, lrs, outcomes, path, bound=None, xlabel: str = "hidden width h",
                title: str = "How SGD runs end, by learning rate and width") -> Path:
    """A grid of the most frequent outcome per (column, lr), with a stability bound drawn over it.

    `outcomes[i][j]` is the outcome at column i and lr j (None: not run); `bound` gives an lr per
    column (e.g. 2/sharpness at the initial factors).
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    lrs = np.asarray(lrs, dtype=float)
    ly = np.log10(lrs)
    half = (np.diff(ly).min() / 2) if len(ly) > 1 else 0.5
    for i in range(len(columns)):
        for j in range(len(lrs)):
            name = outcomes[i][j]
            if name is not None:
                ax.add_patch(plt.Rectangle((i - 0.45, 10 ** (ly[j] - half * 0.9)), 0.9,
                                           10 ** (ly[j] + half * 0.9) - 10 ** (ly[j] - half * 0.9),
                                           color=OUTCOME_COLORS[name], lw=0))
    if bound is not None:
        ax.plot(range(len(columns)), bound, "k--", lw=1.8, marker="D", ms=4,
                label="stability bound 2/sharpness at the start")
    ax.set_yscale("log")
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(10 ** (ly.min() - half), 10 ** (ly.max() + half))
    long = max(len(str(c)) for c in columns) * len(columns) > 60
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=40 if long else 0,
                  ha="right" if long else "center", fontsize=8 if long else 10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    seen = sorted({o for col in outcomes for o in col if o is not None}, key=list(OUTCOME_COLORS).index)
    handles = [Patch(color=OUTCOME_COLORS[o], label=OUTCOME_LABELS[o]) for o in seen]
    if bound is not None:
        handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return _save(fig, path)


def costs(points, path, title: str = "What reaching the tolerance costs, at each width's best lr") -> Path:
    """Wall time and FLOPs to tol against parameter count: ``(label, n_params, seconds, flops)``."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, index, ylabel in ((left, 2, "wall time to tolerance (s, one run)"),
                              (right, 3, "FLOPs to tolerance (matrix products)")):
        kept = [p for p in points if p[index] is not None and p[index] > 0]
        ax.plot([p[1] for p in kept], [p[index] for p in kept], "o-", color="C0" if index == 2 else "C1")
        for p in kept:
            ax.annotate(p[0], (p[1], p[index]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def singular_values(paths, path, reference=None, title: str = "Singular values of W1·W2 during training") -> Path:
    """Each singular value of the end-to-end matrix against epoch, for each ``(label, values)``
    (values: epochs × k); `reference` are the target's singular values, drawn dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(paths), figsize=(5 * len(paths), 4.2), squeeze=False)
    for ax, (label, values) in zip(axes[0], paths):
        values = np.asarray(values, dtype=float)
        for i in range(values.shape[1]):
            ax.plot(np.arange(len(values)), values[:, i], lw=1.8, label=f"σ{i + 1}")
        for i, s in enumerate(reference if reference is not None else []):
            ax.axhline(s, color=f"C{i}", ls="--", lw=1, alpha=0.7, label=f"σ{i + 1} of the true W")
        ax.set_xlabel("epoch (the run stops at the tolerance)")
        ax.set_ylabel("singular value of W1·W2")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def finite(x) -> bool:
    return x is not None and math.isfinite(x)
