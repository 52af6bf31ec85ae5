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
import torch

from .. import optim
from .batched_stack import map_state, stack_biases, stack_factors, take_rows, to_batch_last, unstack


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
        B, T = len(configs), max(c.epochs for c in configs)
        get = lambda name: np.array([getattr(c, name) for c in configs])  # noqa: E731
        self.epochs, self.tol, self.window = get("epochs"), get("tol"), get("stall_window")
        self.rtol, self.limit = get("stall_rtol"), get("diverge_factor").astype(np.float64)
        self.ends, self.first_window = set(self.epochs.tolist()), int(self.window.min())
        # lr="auto" beyond depth 1: fit lowers the lr whenever the loss rises (theory.reestimate_lr)
        self.auto = np.array([c.lr == "auto" and c.depth > 1 and c.momentum == 0 for c in configs])
        self.lr_changes: dict[int, list] = {}
        self.history, self.best = np.zeros((T + 1, B)), np.zeros((T + 1, B))  # [t, run]
        self.length = np.zeros(B, dtype=int)  # entries of history recorded
        self.outcome = ["max_epochs"] * B
        self.message, self.epochs_to_tol = [""] * B, [None] * B

    def judge(self, t: int, runs: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record epoch `t` of `runs`; return (stopped, diverged) masks over `runs`.

        ``diverged``: the loss is not finite, or (after epoch 0) above diverge_factor times
        the initial loss; ``max_epochs``: t = epochs; ``converged``: loss <= tol; ``stalled``:
        the best loss fell by at most stall_rtol (relative) over the last stall_window epochs.
        """
        # all runs, in order (no run stopped yet): slices instead of gathers
        sel = slice(None) if len(runs) == len(self.epochs) and runs[-1] == len(runs) - 1 else runs
        if t == 0:
            diverged = ~np.isfinite(loss)
            self.limit[sel] *= np.maximum(np.where(diverged, 0.0, loss), 1e-300)
        else:
            diverged = ~(loss <= self.limit[sel])  # also true for NaN
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
            stall = ~stopped & (t >= w) & (past - self.best[t, sel] <= self.rtol[sel] * past)
            masks.append(("stalled", stall))
            stopped |= stall
        if stopped.any():
            for outcome, mask in masks:
                for i, value in zip(runs[mask], loss[mask]):
                    self.stop(int(i), t, outcome, float(value))
        return stopped, diverged

    def stop(self, i: int, t: int, outcome: str, loss: float) -> None:
        """Record that run `i` stopped at epoch `t` with `outcome` and `loss`, in the sentences
        of :func:`linlab.engines.fit` (its history up to `t` must be recorded already)."""
        c, best = self.configs[i], self.best[:, i]
        self.outcome[i], self.length[i] = outcome, t if outcome == "diverged" else t + 1
        if outcome == "diverged":
            self.message[i] = (
                f"diverged at epoch {t}: loss became {loss:.4g} with lr={self.lrs[i]:.3g}; kept the "
                f"last finite state (epoch {t - 1}, loss {self.history[t - 1, i]:.4g})."
                if t else f"the initial loss is {loss}; check the data and the initial scale."
            )
        elif outcome == "max_epochs":
            self.message[i] = f"reached the epoch limit {t} at loss {loss:.4g}."
        elif outcome == "converged":
            self.epochs_to_tol[i] = t
            self.message[i] = f"converged at epoch {t}: loss {loss:.4g} <= tol {c.tol:g}."
        else:
            self.message[i] = (
                f"stalled at epoch {t}: the best loss improved by less than "
                f"{c.stall_rtol:g} (relative) over the last {c.stall_window} epochs, at {best[t]:.6g}."
            )


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
        keys = [(c.schedule, c.step_size, c.gamma, c.epochs) for c in configs]
        distinct = list(dict.fromkeys(keys))
        self.which = np.array([distinct.index(key) for key in keys])
        self.reps = [configs[keys.index(key)] for key in distinct]
        self.constant = all(key[0] == "constant" for key in distinct)

    def at(self, t: int, runs: np.ndarray) -> np.ndarray:
        if self.constant:
            return self.base[runs]
        scale = np.array([optim.lr_at(rep, t, 1.0) for rep in self.reps])
        return self.base[runs] * scale[self.which[runs]]


class Stack:
    """The stacked parameters and optimizer state of the runs still in the tensors.

    ``alive[row]`` is the run held in stack row `row`; ``frozen[row]`` marks rows whose run
    has stopped but which have not been dropped yet.

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> configs = [TrainConfig(widths=(3, 2, 1)), TrainConfig(widths=(3, 4, 1))]
    >>> stack = Stack(configs, [[np.ones((3, 2)), np.ones((2, 1))], [np.ones((3, 4)), np.ones((4, 1))]],
    ...               (3, 4, 1), torch.float64, "cpu")
    >>> [tuple(p.shape) for p in stack.params], [W.shape for W in stack.finals(np.array([0]), configs)[0][0]]
    ([(2, 3, 4), (2, 4, 1)], [(3, 2), (2, 1)])
    """

    def __init__(self, configs, factors, widths, dtype, device, batch_last: bool = False):
        self.L, self.bias, self.device, self.dtype = len(widths) - 1, configs[0].bias, device, dtype
        self.params = stack_factors(factors, widths, dtype, device)
        if batch_last:  # the run index last in memory (see to_batch_last)
            self.params = [to_batch_last(p) for p in self.params]
        if self.bias:
            self.params += stack_biases([None] * len(configs), widths, dtype, device)
        self.state = optim.init(configs[0].optimizer, self.params)
        self.prev = [torch.empty_like(p) for p in self.params]  # the state before the last update
        self.alive, self.frozen = np.arange(len(configs)), np.zeros(len(configs), dtype=bool)

    def split(self):
        return self.params[: self.L], (self.params[self.L:] if self.bias else None)

    def freeze(self, rows: np.ndarray, diverged: np.ndarray, grads, t: int) -> None:
        """Stop `rows`: diverged ones go back to the last finite state; nothing of theirs moves again."""
        back = torch.as_tensor(rows[diverged], device=self.device)
        if t and len(back):
            for p, q in zip(self.params, self.prev):
                p[back] = q[back]
        idx = torch.as_tensor(rows, device=self.device)
        for g in grads:
            g[idx] = 0
        map_state(self.state, lambda s: s.index_fill_(0, idx, 0))
        self.frozen[rows] = True

    def compact(self, grads) -> list:
        """Drop frozen rows once they are an eighth of the stack; returns the kept gradients."""
        if self.frozen.sum() < max(1, len(self.alive) // 8):
            return grads
        keep_host = np.flatnonzero(~self.frozen)
        keep = torch.as_tensor(keep_host, device=self.device)
        self.params = [take_rows(p, keep) for p in self.params]
        self.state = map_state(self.state, lambda s: take_rows(s, keep))
        self.prev = [torch.empty_like(p) for p in self.params]
        self.alive, self.frozen = self.alive[keep_host], np.zeros(len(keep_host), dtype=bool)
        return [take_rows(g, keep) for g in grads]

    def lr_tensor(self, lr: np.ndarray) -> torch.Tensor:
        """Per-row learning rates (B,) as the (B, 1, 1) tensor `update` takes."""
        return torch.as_tensor(lr, device=self.device).to(self.dtype).view(-1, 1, 1)

    def update(self, grads, lr: torch.Tensor, config) -> None:
        """One optimizer step with per-row learning rates `lr` (B, 1, 1), keeping the current
        state in `prev`."""
        if config.optimizer == "sgd":
            new, self.state = sgd_into(self.prev, self.params, grads, self.state, lr, config)
            self.prev, self.params = self.params, new
            return
        for p, q in zip(self.params, self.prev):
            q.copy_(p)
        self.state = optim.step(config.optimizer, self.params, grads, self.state, lr, config)

    def finals(self, rows: np.ndarray, configs) -> list:
        """(factors, biases) of `rows` as float64 NumPy arrays cut to each run's widths."""
        widths = [configs[i].widths for i in self.alive[rows]]
        Ws = unstack(self.params[: self.L], rows, widths)
        bs = unstack(self.params[self.L:], rows, widths, biases=True) if self.bias else [None] * len(rows)
        return list(zip(Ws, bs))


def _reestimate(data, configs, rules, schedule, stack, t, rows, runs) -> None:
    """lr="auto" runs whose loss rose: the lr fit would go on with (theory.reestimate_lr)."""
    from ..theory import reestimate_lr

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

    >>> from linlab import TrainConfig
    >>> from linlab.engines.batched_data import DataPath
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
