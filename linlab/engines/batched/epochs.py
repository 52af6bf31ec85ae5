"""The epoch loop of one stack of runs: the single-run loop's stop rules, applied per run.

Each epoch evaluates every live run (loss and gradient in one go), records the loss, and
applies :func:`linlab.engines.fit`'s rules in the same order and with the same epoch
numbers: ``diverged`` (non-finite, or above ``diverge_factor`` times the initial loss:
the run goes back to its last finite state), ``max_epochs``, ``converged``, ``stalled``.
A run that stops is frozen before the update (zero learning rate, zero gradient, zero
optimizer state), so a diverging run never feeds a NaN into the stack, and frozen runs
are dropped from the tensors once they make up an eighth of them.
"""

from __future__ import annotations

import time

import numpy as np

from .state import Stack
from .stop import StopRules
from .update import Schedule


def _reestimate(data, configs, rules, schedule, stack, t, rows, runs) -> None:
    """lr="auto" runs whose loss rose: the lr fit would go on with (theory.reestimate_lr)."""
    from ...theory import reestimate_lr

    rose = rules.auto[runs] & (rules.history[t, runs] > rules.history[t - 1, runs])
    for row, i in zip(rows[rose], runs[rose]):
        changes = rules.lr_changes.setdefault(int(i), [])
        lr = reestimate_lr(data, configs[i], lambda row=row: stack.finals(np.array([row]), configs)[0],
                           float(rules.lrs[i]), rules.history[: t + 1, i].tolist(), changes)
        rules.lrs[i] = schedule.base[i] = lr


def run_stack(path, configs, factors, lrs, widths, dtype, device, data=None):
    """Train runs of one depth and one optimizer together.

    Parameters
    ----------
    path : StatsPath or DataPath
        Gives ``loss_and_grads(factors, biases)`` for the whole stack.
    configs, factors, lrs
        Per run: the config, the initial NumPy factors, the resolved learning rate.
    widths : tuple of int
        The padded widths of the stack.
    data : Dataset, optional
        Needed by runs with ``lr="auto"`` beyond depth 1, whose lr is lowered when the
        loss rises, as :func:`linlab.engines.fit` does.

    Returns
    -------
    rules : StopRules
        Histories, outcomes and messages.
    finals : list of (factors, biases)
        Each run's final NumPy parameters (the last finite state for diverged runs).
    seconds : ndarray
        Each run's share of the wall time: an epoch's time is split among its live runs.

    Examples
    --------
    On ‖W − 1‖² (X = I, Y = 1) gradient descent halves the error at lr 0.25 and triples it at 2:

    >>> import torch
    >>> from linlab import TrainConfig
    >>> from linlab.engines.batched.objective_data import DataPath
    >>> path = DataPath(np.eye(3), np.ones((3, 1)), "squared", "sum", 4.0, 1.0, torch.float64, "cpu", 2**20)
    >>> configs = [TrainConfig(widths=(3, 1), lr=lr, epochs=50) for lr in (0.25, 2.0)]
    >>> start = [[np.zeros((3, 1))]] * 2
    >>> rules, finals, _ = run_stack(path, configs, start, [0.25, 2.0], (3, 1), torch.float64, "cpu")
    >>> rules.outcome, rules.length.tolist()
    (['converged', 'diverged'], [9, 7])
    """
    stack = Stack(configs, factors, widths, dtype, device, getattr(path, "batch_last", lambda w: False)(widths))
    rules, schedule = StopRules(configs, lrs), Schedule(configs, lrs)
    finals, seconds = [None] * len(configs), np.zeros(len(configs))
    steady = None  # (rows, lr tensor) while the rows and their learning rates do not change
    every = np.arange(len(configs))  # all rows, while none is frozen
    for t in range(int(rules.epochs.max()) + 1):
        tick = time.perf_counter()
        loss, gW, gb = path.loss_and_grads(*stack.split())
        grads = gW + (gb or [])
        loss = loss.detach().double().cpu().numpy()
        if stack.frozen.any():
            live = np.flatnonzero(~stack.frozen)
            runs, loss = stack.alive[live], loss[live]
        else:
            if len(every) != len(stack.alive):
                every = np.arange(len(stack.alive))
            live, runs = every, stack.alive
        stopped, diverged = rules.judge(t, runs, loss)
        if stopped.any():
            stack.freeze(live[stopped], diverged[stopped], grads, t)
            for i, final in zip(runs[stopped], stack.finals(live[stopped], configs)):
                finals[i] = final
        if stack.frozen.all():
            seconds[runs] += (time.perf_counter() - tick) / len(runs)
            break
        if t and rules.auto.any():
            _reestimate(data, configs, rules, schedule, stack, t, live[~stopped], runs[~stopped])
        grads = stack.compact(grads)
        if steady is not None and steady[0] is stack.alive and not stack.frozen.any():
            lr = steady[1]
        else:
            lr = np.zeros(len(stack.alive))
            lr[~stack.frozen] = schedule.at(t, stack.alive[~stack.frozen])
            lr = stack.lr_tensor(lr)
            fixed = schedule.constant and not rules.auto.any() and not stack.frozen.any()
            steady = (stack.alive, lr) if fixed else None
        stack.update(grads, lr, configs[0])
        seconds[runs] += (time.perf_counter() - tick) / len(runs)
    return rules, finals, seconds
