"""The stop rules of :mod:`linlab.engines.stop_rules`, applied to every run of a stack at once
(NumPy, float64), with each run's history and the single-run loop's sentences."""

from __future__ import annotations

import functools

import numpy as np

from ..stop_rules import (
    converged_message,
    diverged_message,
    divergence_limit,
    has_stalled,
    is_diverged,
    max_epochs_message,
    stalled_message,
)
from .columns import column, numeric


class StopRules:
    """Histories and the stop rules of `fit`, vectorised over runs (NumPy, float64).

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> rules = StopRules([TrainConfig(epochs=5, tol=1.0), TrainConfig(epochs=5)], [0.1, 0.1])
    >>> stopped, diverged = rules.judge(0, np.arange(2), np.array([0.5, 2.0]))
    >>> stopped.tolist(), rules.outcome[0], rules.message[0]
    ([True, False], 'converged', 'converged at epoch 0: loss 0.5 <= tol 1.')
    """

    def __init__(self, configs, lrs):
        self.configs, self.lrs = configs, np.asarray(lrs, dtype=np.float64)
        B = len(configs)
        self.epochs, self.window = numeric(configs, "epochs", np.int64), numeric(configs, "stall_window", np.int64)
        self.tol, self.rtol = numeric(configs, "tol"), numeric(configs, "stall_rtol")
        self.factor = numeric(configs, "diverge_factor")
        self.limit = self.factor.copy()
        T = int(self.epochs.max())
        self.ends, self.first_window = set(self.epochs.tolist()), int(self.window.min())
        # lr="auto" beyond depth 1: fit lowers the lr whenever the loss rises (theory.reestimate_lr)
        self.auto = np.zeros(B, dtype=bool)
        if "auto" in column(configs, "lr"):
            self.auto[:] = [c.lr == "auto" and c.depth > 1 and c.momentum == 0 for c in configs]
        self.lr_changes: dict[int, list] = {}
        self.history = np.empty((T + 1, B))  # [t, run]; a run's entries past its length are never set
        self.length = np.zeros(B, dtype=int)  # entries of history recorded
        self.outcome = ["max_epochs"] * B
        self.message, self.epochs_to_tol = [""] * B, [None] * B

    @functools.cached_property
    def best(self) -> np.ndarray:
        """The best loss so far [t, run], made on first use (a stack whose runs cannot stall
        may never need its (T + 1) × B entries)."""
        return np.zeros_like(self.history)

    def judge(self, t: int, runs: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record epoch `t` of `runs`; return (stopped, diverged) masks over `runs`.

        ``diverged``: the loss is not finite, or (after epoch 0) above diverge_factor times
        the initial loss; ``max_epochs``: t = epochs; ``converged``: loss <= tol; ``stalled``:
        the best loss fell by at most stall_rtol (relative) over the last stall_window epochs.
        """
        # all runs, in order (no run stopped yet): slices instead of gathers
        sel = slice(None) if len(runs) == len(self.epochs) and runs[-1] == len(runs) - 1 else runs
        if t == 0:
            diverged = is_diverged(loss)
            self.limit[sel] = divergence_limit(self.limit[sel], np.where(diverged, 0.0, loss))
        else:
            diverged = is_diverged(loss, self.limit[sel])
        ok, fine = (sel, loss) if not diverged.any() else (runs[~diverged], loss[~diverged])
        self.history[t, ok] = fine
        self.best[t, ok] = np.minimum(self.best[t - 1, ok], fine) if t else fine
        converged = loss <= self.tol[sel]
        stopped = diverged | converged
        masks = [("diverged", diverged), ("converged", ~diverged & converged)]
        if t in self.ends:
            end = ~diverged & (t == self.epochs[sel])
            masks[1] = ("converged", masks[1][1] & ~end)
            masks.append(("max_epochs", end))
            stopped |= end
        if t >= self.first_window:
            w = self.window[sel]
            past = self.best[np.where(t >= w, t - w, 0), runs]
            stall = ~stopped & (t >= w) & has_stalled(past, self.best[t, sel], self.rtol[sel])
            masks.append(("stalled", stall))
            stopped |= stall
        if stopped.any():
            for outcome, mask in masks:
                for i, value in zip(runs[mask], loss[mask]):
                    self.stop(int(i), t, outcome, float(value))
        return stopped, diverged

    def stop_all(self, stop_t: np.ndarray, codes: np.ndarray, outcomes) -> None:
        """:meth:`stop` for every run: run i stopped at epoch ``stop_t[i]`` with outcome
        ``outcomes[codes[i]]`` (the common outcomes' sentences written in one pass each)."""
        losses, ts = self.history[stop_t, np.arange(len(codes))].tolist(), stop_t.tolist()
        self.length[:] = stop_t + (codes != outcomes.index("diverged"))
        if (codes == outcomes.index("max_epochs")).all():  # every run went its whole distance
            self.message = list(map(max_epochs_message, ts, losses))
            return
        names = list(map(outcomes.__getitem__, codes.tolist()))
        for i, (t, name, loss) in enumerate(zip(ts, names, losses)):
            if name == "max_epochs":
                self.message[i] = max_epochs_message(t, loss)
            elif name == "converged":
                self.outcome[i], self.epochs_to_tol[i] = name, t
                self.message[i] = converged_message(t, loss, self.tol[i])
            else:
                self.stop(i, t, name, loss)

    def stop(self, i: int, t: int, outcome: str, loss: float) -> None:
        """Record that run `i` stopped at epoch `t` with `outcome` and `loss`, in the sentences
        of :func:`linlab.engines.fit` (its history up to `t` must be recorded already)."""
        self.outcome[i], self.length[i] = outcome, t if outcome == "diverged" else t + 1
        if outcome == "diverged":
            self.message[i] = (
                diverged_message(t, loss, self.lrs[i], self.history[t - 1, i])
                if t else f"the initial loss is {loss}; check the data and the initial scale."
            )
        elif outcome == "max_epochs":
            self.message[i] = max_epochs_message(t, loss)
        elif outcome == "converged":
            self.epochs_to_tol[i] = t
            self.message[i] = converged_message(t, loss, self.tol[i])
        else:
            c = self.configs[i]
            self.message[i] = stalled_message(t, self.best[t, i], c.stall_rtol, c.stall_window)
