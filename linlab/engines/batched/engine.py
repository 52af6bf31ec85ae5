"""Engine ``batched`` for one run: the stacked arithmetic with a stack of one, inside `fit`.

``fit(data, TrainConfig(engine="batched"))`` gets the shared loop's logging, callbacks,
validation, resumption and mini-batches, with the gradients of :mod:`.objective_stats`
(squared loss, full batch, no bias) or :mod:`.objective_data` (everything else).
"""

from __future__ import annotations

import numpy as np
import torch

from ... import optim
from ..base import Engine
from ..torch_engines import DTYPES, torch_device
from .objective_data import DataPath
from .objective_stats import StatsPath, dataset_terms
from .plan import choose_path
from .state import stack_biases, stack_factors, unstack

MEMORY_BUDGET = 2 * 1024**3  # bytes for rows in flight and activations


class BatchedEngine(Engine):
    """One run through the batched engine's stacked tensors (B = 1).

    Examples
    --------
    >>> from linlab import TrainConfig, seed_dataset
    >>> from linlab.engines import fit
    >>> r = fit(seed_dataset(), TrainConfig(widths=(10, 2), engine="batched", lr=4e-4, epochs=100, seed=1))
    >>> r.outcome, r.epochs_to_tol
    ('converged', 10)
    """

    name = "batched"

    def __init__(self, data, config, factors, biases=None, val=None):
        super().__init__(data, config, factors, biases, val)
        self.dtype, self.device = DTYPES[config.dtype], torch_device(config.device)
        self._data, self._rows = data, None
        self.full_batch = choose_path(config, "auto", data.n_samples) != "minibatch"
        if self.full_batch and choose_path(config, "auto", data.n_samples) == "stats":
            stats, terms = dataset_terms(data, self.device)  # sharded data: its rows are never read
            self.path = StatsPath(stats, terms, config.reduction, self.dtype, self.device)
        else:
            self.path = self.rows
        self.val = None if val is None else DataPath(val.X, val.Y, *self._row_settings())
        self.tensors = stack_factors([factors], config.widths, self.dtype, self.device)
        if config.bias:
            self.tensors += stack_biases([biases], config.widths, self.dtype, self.device)
        self.state = optim.init(config.optimizer, self.tensors)
        self._cache = None  # gradients at the current parameters

    def _row_settings(self) -> tuple:
        c = self.config
        return c.loss, c.reduction, c.p, c.delta, self.dtype, self.device, MEMORY_BUDGET

    @property
    def rows(self) -> DataPath:
        """The pass over the training rows, made on first use (mini-batches, or the rows path)."""
        if self._rows is None:
            self._rows = DataPath(self._data.X, self._data.Y, *self._row_settings())
        return self._rows

    def _split(self):
        L = self.config.depth
        return self.tensors[:L], (self.tensors[L:] if self.config.bias else None)

    def loss(self) -> float:
        if not self.full_batch:
            return float(self.rows.loss_and_grads(*self._split(), grads=False)[0][0])
        loss, gW, gb = self.path.loss_and_grads(*self._split())
        self._cache = gW + (gb or [])
        return float(loss[0])

    def val_loss(self) -> float:
        return float(self.val.loss_and_grads(*self._split(), grads=False)[0][0])

    def _update(self, grads, lr: float) -> None:
        c = self.config
        self.state = optim.step(c.optimizer, self.tensors, grads, self.state, lr, c)

    def step(self, lr, batches=None):
        if batches is None:
            if self._cache is None:
                self.loss()
            self._update(self._cache, lr)
        else:
            for rows in batches:
                _, gW, gb = self.rows.loss_and_grads(*self._split(), rows=np.asarray(rows))
                self._update(gW + (gb or []), lr)
        self._cache = None

    def params(self):
        L, widths, first = self.config.depth, [self.config.widths], np.zeros(1, dtype=int)
        factors = unstack(self.tensors[:L], first, widths)[0]
        biases = unstack(self.tensors[L:], first, widths, biases=True)[0] if self.config.bias else None
        return factors, biases

    def set_params(self, factors, biases=None):
        L, widths = self.config.depth, self.config.widths
        new = stack_factors([factors], widths, self.dtype, self.device)
        if self.config.bias and biases is None:
            new += self.tensors[L:]
        elif self.config.bias:
            new += stack_biases([biases], widths, self.dtype, self.device)
        with torch.no_grad():
            for p, q in zip(self.tensors, new):
                p.copy_(q)
        self._cache = None

    def optimizer_state(self) -> dict:
        # buffers in the single-run shapes, W_j (a, b) and b_j (h,), as the other engines keep them
        shapes = [tuple(t.shape[1:]) for t in self.tensors[: self.config.depth]]
        shapes += [(t.shape[2],) for t in self.tensors[self.config.depth:]]
        return {key: [t.reshape(s) for t, s in zip(v, shapes)] if isinstance(v, list) else v
                for key, v in optim.state_to_dict(self.state).items()}

    def load_optimizer_state(self, state: dict) -> None:
        stacked = {key: [torch.as_tensor(a, device=self.device).reshape(t.shape) for a, t in zip(v, self.tensors)]
                   if isinstance(v, list) else v for key, v in state.items()}
        self.state = optim.state_from_dict(type(self.state), stacked, lambda a: a.to(self.dtype))
