r"""Stacks of SGD runs whose epochs run whole inside compiled code: loss, gradient, stop rules
and update, ``plan.UNROLL`` epochs per call through TorchInductor, the whole training in one
call of the C kernel.

The per-epoch loop of :mod:`..epochs` returns to Python after every epoch: to read the
losses, apply the stop rules and take the optimizer step, a few dozen small operations
that cost as much as the epoch itself once the epoch is compiled. Here one compiled call
(TorchInductor, see :mod:`.compiled`) advances the stack by ``plan.UNROLL`` epochs and applies
:func:`linlab.engines.fit`'s rules in the graph, per run and per epoch, exactly as
:class:`~..stop.StopRules` does:

- ``diverged``: at epoch 0 a non-finite loss, later a loss above ``diverge_factor`` times the
  initial one (or NaN); the run goes back to its last finite state;
- ``max_epochs``: t = epochs; ``converged``: loss ≤ tol;
- ``stalled``: the best loss fell by at most ``stall_rtol`` (relative) over the last
  ``stall_window`` epochs. The best loss ``stall_window`` epochs back comes from the host's
  history, which holds it as long as ``stall_window`` ≥ ``plan.UNROLL``.

A stopped run is frozen in the graph (its parameters no longer move); the host reads the
block's losses and stop codes, records them, and writes the messages. On the CPU the C
kernel of :mod:`.native` (:class:`Native`) does exactly this arithmetic, several times
faster than TorchInductor's code for it, for all the epochs of a stack in one call: it
writes every loss into the history itself, reads the best loss a stall window back from it
(so any window will do), and returns each run's stop epoch and outcome. SGD (momentum,
Nesterov, weight decay) only; the statistics path only. The stacks train in the eigenbasis
of A = XᵀX (:meth:`~..objective_stats.StatsPath.eigenbasis`: W1 → VᵀW1 on the way in, back
on the way out), and wide depth-2 stacks without momentum on their Gram matrix
(:mod:`.gram`).
"""

from __future__ import annotations

import ctypes
import functools
import time

import numpy as np
import torch

from .... import optim
from .. import plan
from ..columns import column, pick
from ..state import Finals, stack_factors, unstack
from ..stop import StopRules
from ..update import Schedule
from . import native
from .compiled import eigen_epoch, limits
from .gram import Gram
from .rows import Rows, judge

OUTCOMES = (None, "diverged", "converged", "max_epochs", "stalled")  # the graph's stop codes


def sgd_block(Ws, prev, bufs, P, root, slam, sr, r, floor, divisor, mu, wd, lrs, alive, limit, best, pasts,
              factor, tol, rtol, epochs, t0, momentum: bool, nesterov: bool, decay: bool):
    """``len(lrs)`` epochs of stacked SGD runs with the stop rules, run index last.

    Parameters
    ----------
    Ws, prev, bufs : list of Tensor (H_{j-1}, H_j, B)
        The parameters at epoch t0, at t0 − 1 (where a run that diverges at t0 goes back),
        and the momentum buffers (empty without momentum).
    P, root, slam, sr, r
        As :func:`~.compiled.eigen_epoch` (the first layer is in the eigenbasis of A);
        `floor` (L*) and `divisor` 0-d tensors.
    mu, wd : 0-d Tensor
        Momentum and weight decay.
    lrs : Tensor (K, B)
        Learning rates of epochs t0 .. t0 + K − 1.
    alive, limit, best : Tensor (B,)
        Runs not stopped yet, the divergence limit (set at epoch 0), the best loss so far.
    pasts : Tensor (K, B) float64
        The best loss stall_window epochs before each epoch of the block (NaN before it exists).
    factor, tol, rtol : Tensor (B,) float64
        diverge_factor, tol and stall_rtol per run.
    epochs : Tensor (B,) int64
    t0 : 0-d int64 Tensor
    momentum, nesterov, decay : bool
        Which terms of the SGD update are present (each combination is a graph of its own).

    Returns
    -------
    Ws, prev, bufs, alive, limit, best, losses (K, B) float64, codes (K, B) int8
        codes index ``OUTCOMES``: 0 for an epoch at which the run went on (or had stopped).
    """
    losses, codes = [], []
    for j in range(lrs.shape[0]):
        loss, grads = eigen_epoch(Ws, P, root, slam, sr, r)
        loss = ((loss + floor) / divisor).double()
        diverged, go, limit, best, code = judge(loss, t0 + j, alive, limit, best, pasts[j], factor, tol, rtol,
                                                 epochs)
        new, new_bufs = [], []
        for i, (W, p, g) in enumerate(zip(Ws, prev, grads)):
            if decay:
                g = g + wd * W
            if momentum:
                b = torch.where(go, mu * bufs[i] + g, bufs[i])
                new_bufs.append(b)
                g = g + mu * b if nesterov else b
            new.append(torch.where(go, W - lrs[j] * g, torch.where(diverged, p, W)))
        codes.append(code)
        losses.append(loss)
        prev, Ws, bufs, alive = Ws, new, new_bufs, go
    return Ws, prev, bufs, alive, limit, best, torch.stack(losses), torch.stack(codes)


@functools.cache
def compiled_sgd_block():
    """:func:`sgd_block` compiled once per process, with symbolic sizes."""
    return torch.compile(sgd_block, dynamic=True, fullgraph=True)


class Factors(Rows):
    """Fused SGD on the factors themselves (:func:`sgd_block`)."""

    STATE = ("Ws", "prev", "bufs")

    def __init__(self, path, configs, factors, widths, dtype, device, rules=None):
        super().__init__(path, configs, dtype, device, rules)
        self.Ws = [W.permute(1, 2, 0).contiguous() for W in stack_factors(factors, widths, dtype, device)]
        self.Ws[0] = (self.V.T @ self.Ws[0].flatten(1)).view(self.Ws[0].shape)  # VᵀW1
        self.prev = [W.clone() for W in self.Ws]  # not aliases: those would need a graph of their own
        c0 = configs[0]
        self.flags = {name: bool(on) for name, on in (
            ("momentum", c0.momentum != 0), ("nesterov", c0.nesterov), ("decay", c0.weight_decay != 0))}
        self.bufs = [torch.zeros_like(W) for W in self.Ws] if self.flags["momentum"] else []

    def block(self, lrs: np.ndarray, pasts: np.ndarray, t0: int):
        s = self.scalars
        with limits():
            return self.keep(compiled_sgd_block()(
                self.Ws, self.prev, self.bufs, *self.consts, s["floor"], s["divisor"], s["mu"], s["wd"],
                *self.rules(lrs, pasts, t0), **self.flags))

    def finals(self, rows: np.ndarray, configs) -> list:
        idx = torch.as_tensor(rows, device=self.device)
        Ws = [W.index_select(2, idx) for W in self.Ws]
        Ws[0] = (self.V @ Ws[0].flatten(1)).view(Ws[0].shape)  # back from the eigenbasis: V (VᵀW1)
        widths = column(pick(configs, self.runs[rows].tolist()), "widths")
        return Finals(unstack([W.permute(2, 0, 1) for W in Ws], np.arange(len(rows)), widths))


class Native(Factors):
    """Fused SGD on the factors in the C kernel of :mod:`.native` (the CPU's fast path): the
    same state, rules and records as :class:`Factors`, updated in place."""

    def __init__(self, path, configs, factors, widths, dtype, device, fn, rules=None):
        super().__init__(path, configs, factors, widths, dtype, device, rules)
        self.fn, self.struct = fn, native.STRUCTS[dtype]
        d, k = self.consts[0].shape[:2]
        self.consts = [c.expand(d, k, 1).contiguous() for c in self.consts]  # √λ and sλ are (d, 1, 1)
        self.H = np.array([W.shape[0] for W in self.Ws] + [self.Ws[-1].shape[1]], dtype=np.int64)

    def block(self, rules: StopRules, schedule: Schedule, t0: int, K: int,
              threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Epochs t0 .. t0 + K − 1 of every row (row i is run i: this stack is never compacted),
        each run's losses written straight into ``rules.history`` (and its best loss into
        ``rules.best`` where a run can stall); returns each run's stop epoch and code
        (``OUTCOMES``; 0 for a run still going)."""
        B, T = len(self.runs), rules.history.shape[0] - 1
        stop_t, codes = np.zeros(B, dtype=np.int64), np.zeros(B, dtype=np.int8)  # written by the kernel
        scale = np.ones((1, 1)) if schedule.constant else np.array(  # unread when constant
            [[optim.lr_at(rep, t0 + j, 1.0) for rep in schedule.reps] for j in range(K)])
        which, window = (np.ascontiguousarray(a, dtype=np.int64) for a in (schedule.which, rules.window))
        base = np.ascontiguousarray(schedule.base, dtype=np.float64)
        stalls = bool((rules.window <= T).any())  # else the best loss of every epoch is never read
        Ws, prev, bufs = (native.pointers(ts) for ts in (self.Ws, self.prev, self.bufs))  # kept until it returns
        s, rows = self.scalars, self.rows
        block = self.struct(
            L=len(self.Ws), H=self.H.ctypes.data, B=B, K=K, t0=t0, W=ctypes.addressof(Ws),
            prev=ctypes.addressof(prev), buf=ctypes.addressof(bufs),
            **dict(zip(("P", "root", "slam", "sr", "r"), (c.data_ptr() for c in self.consts))),
            floor_=float(s["floor"]), divisor=float(s["divisor"]), mu=float(s["mu"]), wd=float(s["wd"]),
            base=base.ctypes.data, scale=scale.ctypes.data, which=which.ctypes.data, S=scale.shape[1],
            constant=schedule.constant, window=window.ctypes.data, stride=rules.history.shape[1],
            history=rules.history.ctypes.data, best_hist=rules.best.ctypes.data if stalls else None,
            stop_t=stop_t.ctypes.data, codes=codes.ctypes.data,
            **{name: rows[name].data_ptr() for name in ("alive", "limit", "best", "factor", "tol", "rtol",
                                                         "epochs")},
            **self.flags,
        )
        native.run(self.fn, block, B, threads)
        return stop_t, codes


def _run_native(runs: Native, rules: StopRules, schedule: Schedule, configs, threads: int | None = None):
    """A stack's whole training in one call of the C kernel (its lane blocks stop when their runs
    do); returns (finals, seconds), each run's seconds its share of the call by epochs run."""
    tick = time.perf_counter()
    stop_t, codes = runs.block(rules, schedule, 0, int(rules.epochs.max()) + 1, threads)
    rules.stop_all(stop_t, codes, OUTCOMES)
    finals = runs.finals(np.arange(len(codes)), configs)
    spent = stop_t + 1.0
    return finals, (time.perf_counter() - tick) * spent / spent.sum()


def _pasts(rules: StopRules, runs: np.ndarray, t0: int, K: int) -> np.ndarray:
    # best[t − w] for t = t0 .. t0 + K − 1, NaN while t < w; rows before t0 only (w >= K)
    if t0 + K - 1 < rules.first_window:  # no run has a window's worth of history yet
        return np.full((K, len(runs)), np.nan)
    w = rules.window[runs]
    t = t0 + np.arange(K)[:, None]
    back = t - w[None, :]
    return np.where(back >= 0, rules.best[np.clip(back, 0, None), runs[None, :]], np.nan)


def _record(rules: StopRules, runs: np.ndarray, t0: int, losses: np.ndarray, codes: np.ndarray):
    """Write a block into the histories; return (rows, epochs, outcomes, losses) of the stops."""
    T = rules.history.shape[0] - 1
    K = min(losses.shape[0], T + 1 - t0)  # no run goes past the last row
    losses, codes = losses[:K], codes[:K]
    cols = slice(None) if len(runs) == rules.history.shape[1] else runs  # all runs, in order: no gather
    rules.history[t0:t0 + K, cols] = losses
    best = rules.best[t0:t0 + K, cols] if cols is not runs else np.empty_like(losses)
    with np.errstate(invalid="ignore"):  # a diverged run's NaN, beyond its recorded length
        np.minimum.accumulate(losses, axis=0, out=best)
        if t0:
            np.minimum(best, rules.best[t0 - 1, cols], out=best)
    if cols is runs:
        rules.best[t0:t0 + K, runs] = best
    if not codes.any():
        return (np.empty(0, dtype=int),) * 4
    j, rows = np.nonzero(codes)
    return rows, t0 + j, codes[j, rows], losses[j, rows]


def run_stack_fused(path, configs, factors, lrs, widths, dtype, device):
    """:func:`~..epochs.run_stack` for an :func:`~..plan.eligible` stack, ``plan.UNROLL`` epochs per call.

    Returns the same (rules, finals, seconds), or None when compiling failed (the warning
    says why; the caller runs the stack per epoch instead).
    """
    kind = plan.fused_kernel(path, configs, widths)
    rules, schedule = StopRules(configs, lrs), Schedule(configs, lrs)
    if kind == "c":
        with native.host_threads() as threads:
            fn = plan.native_kernel(path, len(widths) - 1)
            runs = Native(path, configs, factors, widths, dtype, device, fn, rules)
            return rules, *_run_native(runs, rules, schedule, configs, threads)
    runs = (Gram if kind == "gram" else Factors)(path, configs, factors, widths, dtype, device)
    B = len(configs)
    finals, seconds = [None] * B, np.zeros(B)
    t0, K = 0, plan.UNROLL
    while runs.live.any():
        tick = time.perf_counter()
        alive = runs.runs[runs.live]
        lr = np.zeros((K, len(runs.runs)))
        for j in range(K):
            lr[j, runs.live] = schedule.at(t0 + j, alive)
        pasts = _pasts(rules, runs.runs, t0, K)
        try:
            losses, codes = runs.block(lr, pasts, t0)
        except Exception as exc:  # compiling failed: nothing has moved yet when t0 = 0
            if t0:
                raise
            path.compiled.fail(exc)
            return None
        rows, epochs, outcome_codes, values = _record(rules, runs.runs, t0, losses, codes)
        for row, t, code, value in zip(rows, epochs, outcome_codes, values):
            rules.stop(int(runs.runs[row]), int(t), OUTCOMES[code], float(value))
        if len(rows):
            for row, final in zip(rows, runs.finals(rows, configs)):
                finals[runs.runs[row]] = final
            runs.live[rows] = False
        seconds[alive] += (time.perf_counter() - tick) / len(alive)
        runs.compact()
        t0 += K
    return rules, finals, seconds
