r"""The update of a stack of runs: each optimizer is defined once, in :mod:`linlab.optim`.

Every optimizer but plain SGD steps the stacked tensors with :func:`linlab.optim.step` itself
(per-run learning rates broadcast over the run index). SGD, the sweeps' common case, has one
allocation-free form here, :func:`sgd_into`, tested against :func:`linlab.optim.sgd`; the
fused kernels (:mod:`.kernels`) implement the same update and are tested against the
per-epoch loop that uses this one, and all of them against :mod:`linlab.optim` and autograd
from the rows (tests/test_kernels_against_optim.py).
"""

from __future__ import annotations

import numpy as np
import torch

from ... import optim
from .columns import column


def sgd_into(out, params, grads, state: optim.SGDState, lr, config):
    r""":func:`linlab.optim.sgd`, writing the new parameters into `out` and leaving `params` as
    they were (the last state, kept without a copy).

    .. math::
        g \leftarrow g + \lambda p;\quad b \leftarrow \mu b + g \ (b_1 = g);\quad
        g \leftarrow g + \mu b \text{ (Nesterov) or } b;\quad p' = p - \eta g

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> p, out = [torch.ones(2, 1, 1)], [torch.empty(2, 1, 1)]
    >>> lr = torch.tensor([0.5, 0.0]).view(-1, 1, 1)
    >>> new, _ = sgd_into(out, p, [torch.ones(2, 1, 1)], optim.SGDState(None), lr, TrainConfig())
    >>> new[0].flatten().tolist(), p[0].flatten().tolist()
    ([0.5, 1.0], [1.0, 1.0])
    """
    mu, wd, bufs = config.momentum, config.weight_decay, state.momentum_buffers
    new_bufs = [] if mu else None
    for i, (p, g, q) in enumerate(zip(params, grads, out)):
        if wd:
            g = torch.add(g, p, alpha=wd)
        if mu:
            b = g.clone() if bufs is None else bufs[i].mul_(mu).add_(g)
            new_bufs.append(b)
            g = torch.add(g, b, alpha=mu) if config.nesterov else b
        torch.addcmul(p, lr, g, value=-1.0, out=q)
    return out, optim.SGDState(new_bufs)


class Schedule:
    """Learning rates of many runs at one epoch: lr_at(config, t, lr) = lr · lr_at(config, t, 1)
    (exactly: every schedule scales its base by a factor), one factor per distinct schedule.

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> configs = [TrainConfig(), TrainConfig(schedule="step", step_size=2, gamma=0.5)]
    >>> Schedule(configs, [0.1, 0.2]).at(3, np.arange(2)).tolist()
    [0.1, 0.1]
    """

    def __init__(self, configs, lrs):
        self.base = np.asarray(lrs, dtype=np.float64)
        if column(configs, "schedule").count("constant") == len(configs):  # one factor, 1, at every epoch
            self.which, self.reps, self.constant = np.zeros(len(configs), dtype=np.int64), [configs[0]], True
            return
        keys = [(c.schedule, c.step_size, c.gamma, c.epochs) for c in configs]
        index: dict[tuple, int] = {}
        self.which = np.array([index.setdefault(key, len(index)) for key in keys], dtype=np.int64)
        distinct = list(index)
        self.reps = [configs[keys.index(key)] for key in distinct]
        self.constant = all(key[0] == "constant" for key in distinct)

    def at(self, t: int, runs: np.ndarray) -> np.ndarray:
        if self.constant:
            return self.base[runs]
        scale = np.array([optim.lr_at(rep, t, 1.0) for rep in self.reps])
        return self.base[runs] * scale[self.which[runs]]
