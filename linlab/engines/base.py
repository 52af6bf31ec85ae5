"""The interface every single-run engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..config import TrainConfig
from ..data import Dataset


class Engine(ABC):
    """One way of taking gradient steps on one model.

    The training loop (:func:`linlab.engines.fit`) owns epochs, stop conditions, logging
    and the mini-batch order; an engine owns parameters, optimizer state and arithmetic.
    ``loss()`` evaluates the current parameters on all training rows; for full batch the
    forward pass is kept and reused by the next ``step`` (the seed's forward → loss →
    backward → update, with no second forward).
    """

    name: str = ""

    def __init__(self, data: Dataset, config: TrainConfig, factors, biases=None,
                 val: Dataset | None = None):
        d, k = config.widths[0], config.widths[-1]
        if (data.n_features, data.n_targets) != (d, k):
            raise ValueError(
                f"widths={config.widths} need {d} features and {k} targets, but {data.name!r} "
                f"has {data.n_features} and {data.n_targets}; use widths "
                f"({data.n_features}, ..., {data.n_targets})."
            )
        if val is not None and (val.n_features, val.n_targets) != (d, k):
            raise ValueError(
                f"val {val.name!r} has {val.n_features} features and {val.n_targets} targets, but the "
                f"training data has {d} and {k}; split validation rows from the same table."
            )
        shapes = list(zip(config.widths[:-1], config.widths[1:]))
        if [tuple(np.shape(W)) for W in factors] != shapes:
            raise ValueError(
                f"initial factors have shapes {[np.shape(W) for W in factors]}; "
                f"widths={config.widths} need {shapes}."
            )
        needed = [(w,) for w in config.widths[1:]]
        if config.bias and biases is not None and [tuple(np.shape(b)) for b in biases] != needed:
            raise ValueError(
                f"initial biases have shapes {[np.shape(b) for b in biases]}; "
                f"widths={config.widths} need {needed}."
            )
        self.config = config

    @abstractmethod
    def loss(self) -> float:
        """Training loss at the current parameters (all rows)."""

    @abstractmethod
    def val_loss(self) -> float:
        """Validation loss at the current parameters."""

    @abstractmethod
    def step(self, lr: float, batches: list[np.ndarray] | None) -> None:
        """One epoch of updates: full batch when `batches` is None, else one per row-index array."""

    @abstractmethod
    def params(self) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Copies of the factors and biases as float64 NumPy arrays."""

    @abstractmethod
    def set_params(self, factors, biases=None) -> None:
        """Overwrite the parameters (the optimizer state is left alone)."""

    @abstractmethod
    def optimizer_state(self) -> dict:
        """The optimizer's state as nested dicts/lists of arrays and numbers."""

    @abstractmethod
    def load_optimizer_state(self, state: dict) -> None:
        """Restore what :meth:`optimizer_state` returned."""
