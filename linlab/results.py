"""The record every engine returns, and a table of many."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OUTCOMES = ("converged", "diverged", "stalled", "max_epochs")


@dataclass
class RunResult:
    """One training run: what was asked, what happened, and where it ended.

    ``history[t]`` is the training loss after t updates (epochs), so the seed's log line
    ``Epoch [e/N]`` shows ``history[e - 1]`` and ``len(history) == epochs + 1``.

    ``config`` may be given as a function of no arguments that returns the dict: it is called
    on the first read, once (a sweep's records need not build thousands of dicts nobody reads).

    Examples
    --------
    >>> r = RunResult(lambda: {"lr": 0.1}, "max_epochs", "", np.zeros(1), 0, 0.1, [])
    >>> r.config
    {'lr': 0.1}
    """

    config: dict  # TrainConfig.to_dict(), plus the data's name
    outcome: str  # converged, diverged, stalled, max_epochs
    message: str  # one sentence on how the run ended
    history: np.ndarray  # (epochs + 1,) training loss
    epochs: int  # updates done
    lr: float  # the resolved learning rate (after "auto")
    factors: list[np.ndarray]  # final W1..WL (the last finite state)
    biases: list[np.ndarray] | None = None
    val_history: np.ndarray | None = None  # validation loss, aligned with history
    epochs_to_tol: int | None = None  # first t with history[t] <= tol
    seconds: float = 0.0  # wall time of the training loop
    distance_to_true: float | None = None  # ‖W − W_true‖_F / ‖W_true‖_F (‖W‖_F if W_true = 0), when known
    initial_factors: list[np.ndarray] | None = None  # where the run started (single runs)
    extra: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """The last finite loss (nan when even the initial loss was not finite)."""
        return float(self.history[-1]) if len(self.history) else float("nan")

    @property
    def best_loss(self) -> float:
        return float(np.min(self.history)) if len(self.history) else float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)

    @property
    def end_to_end(self) -> np.ndarray:
        """W1 @ … @ WL, shape (d, k)."""
        from .models import end_to_end

        return end_to_end(self.factors)

    def summary(self) -> dict:
        """The scalar facts of the run, JSON-serialisable."""
        return {
            "outcome": self.outcome, "message": self.message, "epochs": self.epochs,
            "epochs_to_tol": self.epochs_to_tol, "final_loss": self.final_loss,
            "best_loss": self.best_loss, "lr": self.lr, "seconds": self.seconds,
            "seconds_per_epoch": self.seconds_per_epoch,
            "distance_to_true": self.distance_to_true,
            "final_val_loss": None if self.val_history is None else float(self.val_history[-1]),
        }


def _read_config(result: RunResult) -> dict:
    config = result._config
    if callable(config):
        config = result._config = config()
    return config


def _write_config(result: RunResult, config) -> None:
    result._config = config


# after @dataclass, which keeps `config` a field (first in __init__, repr, eq, asdict, replace)
RunResult.config = property(_read_config, _write_config, doc="TrainConfig.to_dict(), plus the data's name")
