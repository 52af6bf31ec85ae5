r"""Stacks of SGD runs whose epochs run whole inside compiled code: loss, gradient, stop rules
and update, ``UNROLL`` epochs per call.

The per-epoch loop of :mod:`.batched_runs` returns to Python after every epoch: to read the
losses, apply the stop rules and take the optimizer step, a few dozen small operations
that cost as much as the epoch itself once the epoch is compiled. Here one compiled call
(TorchInductor, see :mod:`.compiled`) advances the stack by ``UNROLL`` epochs and applies
:func:`linlab.engines.fit`'s rules in the graph, per run and per epoch, exactly as
:class:`~.batched_runs.StopRules` does:

- ``diverged``: at epoch 0 a non-finite loss, later a loss above ``diverge_factor`` times the
  initial one (or NaN); the run goes back to its last finite state;
- ``max_epochs``: t = epochs; ``converged``: loss ≤ tol;
- ``stalled``: the best loss fell by at most ``stall_rtol`` (relative) over the last
  ``stall_window`` epochs. The best loss ``stall_window`` epochs back comes from the host's
  history, which holds it as long as ``stall_window`` ≥ ``UNROLL``.

A stopped run is frozen in the graph (its parameters no longer move); the host reads the
block's losses and stop codes, records them, and writes the messages. On the CPU the same
block runs in the C kernel of :mod:`.native` (:class:`_Native`), which does exactly this
arithmetic, several times faster than TorchInductor's code for it. SGD (momentum,
Nesterov, weight decay) only; the statistics path only. The stacks train in the eigenbasis
of A = XᵀX (:meth:`~.batched_stats.StatsPath.eigenbasis`: W1 → VᵀW1 on the way in, back
on the way out), and wide depth-2 stacks without momentum on their Gram matrix
(:mod:`.gram`).
"""

from __future__ import annotations

import ctypes
import functools
import time

import numpy as np
import torch

from . import native
from .batched_runs import Schedule, StopRules
from .batched_stack import stack_factors, unstack
from .compiled import MIN_ROWS, eigen_epoch, limits

UNROLL = 8  # epochs per compiled call: at B = 1,000, 1.2-1.5x the rate of 4 (and twice its compile time)
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
        diverged, go, limit, best, code = _judge(loss, t0 + j, alive, limit, best, pasts[j], factor, tol, rtol,
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


def _judge(loss, t, alive, limit, best, past, factor, tol, rtol, epochs):
    # StopRules.judge in the graph, for one epoch t of every run: (diverged, go on, limit,
    # best, stop code); past is the best loss stall_window epochs back (NaN before it exists)
    first = t == 0
    diverged = alive & torch.where(first, ~torch.isfinite(loss), ~(loss <= limit))
    limit = torch.where(first, factor * torch.clamp(torch.where(diverged, 0.0, loss), min=1e-300), limit)
    fine = alive & ~diverged
    best = torch.where(fine, torch.where(first, loss, torch.minimum(best, loss)), best)
    end = fine & (epochs == t)
    converged = fine & ~end & (loss <= tol)
    stalled = fine & ~end & ~converged & (past - best <= rtol * past)
    go = fine & ~end & ~converged & ~stalled
    code = (diverged * 1 + converged * 2 + end * 3 + stalled * 4).to(torch.int8)
    return diverged, go, limit, best, code


@functools.cache
def compiled_sgd_block():
    """:func:`sgd_block` compiled once per process, with symbolic sizes."""
    return torch.compile(sgd_block, dynamic=True, fullgraph=True)


def eligible(path, configs) -> bool:
    """Whether a stack can run fused: a compiling statistics path (in the C kernel of
    :mod:`.native` on the CPU, else TorchInductor where the plan allows it), SGD (any
    momentum), no lr="auto" beyond depth 1 (its lr changes with the losses), stall windows
    of at least ``UNROLL`` epochs, and at least ``MIN_ROWS`` runs."""
    compiled = getattr(path, "compiled", None)
    return (
        compiled is not None and not compiled.failed and len(configs) >= MIN_ROWS
        and configs[0].optimizer == "sgd" and min(c.stall_window for c in configs) >= UNROLL
        and not any(c.lr == "auto" and c.depth > 1 for c in configs)
        and (compiled.inductor or native_kernel(path, configs[0].depth) is not None)
    )


def native_kernel(path, depth: int = 2):
    """The C kernel (:mod:`.native`) for a path's stacks of this depth: on the CPU, where it
    builds, up to ``native.MAX_DEPTH`` layers; else None."""
    cpu = str(path.device) == "cpu" and depth <= native.MAX_DEPTH
    return native.kernel(path.dtype) if cpu else None


def gram_path(path) -> bool:
    """Whether wide depth-2 stacks of this path run on their Gram matrix (:mod:`.gram`): where
    TorchInductor compiles them, that is, with no C kernel for the device."""
    compiled = getattr(path, "compiled", None)
    return compiled is not None and compiled.inductor and native_kernel(path) is None


class _Rows:
    """What a fused stack keeps per row (run index last): the state tensors named in
    ``STATE``, the run of each row, its constants and whether it is still live."""

    STATE: tuple[str, ...] = ()

    def __init__(self, path, configs, dtype, device):
        B = len(configs)
        self.device, self.dtype = device, dtype
        c0 = configs[0]
        f64 = lambda values: torch.tensor(values, dtype=torch.float64, device=device)  # noqa: E731
        self.rows = {
            "alive": torch.ones(B, dtype=torch.bool, device=device),
            "limit": f64(np.zeros(B)), "best": f64(np.zeros(B)),
            "factor": f64([c.diverge_factor for c in configs]), "tol": f64([c.tol for c in configs]),
            "rtol": f64([c.stall_rtol for c in configs]),
            "epochs": torch.tensor([c.epochs for c in configs], dtype=torch.int64, device=device),
        }
        self.scalars = {name: torch.tensor(value, dtype=dtype, device=device) for name, value in
                        (("floor", path.floor), ("divisor", float(path.divisor)), ("mu", c0.momentum),
                         ("wd", c0.weight_decay))}
        self.V, self.consts = path.eigenbasis()
        self.runs = np.arange(B)  # the run of each row
        self.live = np.ones(B, dtype=bool)

    def _rules(self, lrs, pasts, t0):
        # the per-row arguments every block function takes after its state and constants
        return (torch.as_tensor(lrs, device=self.device).to(self.dtype), self.rows["alive"], self.rows["limit"],
                self.rows["best"], torch.as_tensor(pasts, device=self.device), self.rows["factor"],
                self.rows["tol"], self.rows["rtol"], self.rows["epochs"],
                torch.tensor(t0, dtype=torch.int64, device=self.device))

    def _keep(self, out):
        # a block function returns its state (in STATE order), then alive, limit, best, losses, codes
        n = len(self.STATE)
        for name, value in zip(self.STATE, out[:n]):
            setattr(self, name, value)
        self.rows.update(alive=out[n], limit=out[n + 1], best=out[n + 2])
        return out[n + 3].cpu().numpy(), out[n + 4].cpu().numpy()

    def compact(self) -> None:
        """Drop stopped rows once they are an eighth of the stack (never below ``MIN_ROWS`` rows:
        a smaller stack would need graphs of its own)."""
        stopped = int((~self.live).sum())
        if stopped < max(1, len(self.live) // 8) or self.live.sum() < MIN_ROWS:
            return
        keep_host = np.flatnonzero(self.live)
        keep = torch.as_tensor(keep_host, device=self.device)
        for name in self.STATE:
            setattr(self, name, [t.index_select(t.dim() - 1, keep).contiguous() for t in getattr(self, name)])
        self.rows = {name: t.index_select(0, keep) for name, t in self.rows.items()}
        self.runs, self.live = self.runs[keep_host], np.ones(len(keep_host), dtype=bool)


class _Factors(_Rows):
    """Fused SGD on the factors themselves (:func:`sgd_block`)."""

    STATE = ("Ws", "prev", "bufs")

    def __init__(self, path, configs, factors, widths, dtype, device):
        super().__init__(path, configs, dtype, device)
        self.Ws = [W.permute(1, 2, 0).contiguous() for W in stack_factors(factors, widths, dtype, device)]
        self.Ws[0] = torch.einsum("ij,ihb->jhb", self.V, self.Ws[0]).contiguous()  # VᵀW1
        self.prev = [W.clone() for W in self.Ws]  # not aliases: those would need a graph of their own
        c0 = configs[0]
        self.flags = dict(momentum=c0.momentum != 0, nesterov=bool(c0.nesterov), decay=c0.weight_decay != 0)
        self.bufs = [torch.zeros_like(W) for W in self.Ws] if self.flags["momentum"] else []

    def block(self, lrs: np.ndarray, pasts: np.ndarray, t0: int):
        s = self.scalars
        with limits():
            return self._keep(compiled_sgd_block()(
                self.Ws, self.prev, self.bufs, *self.consts, s["floor"], s["divisor"], s["mu"], s["wd"],
                *self._rules(lrs, pasts, t0), **self.flags))

    def finals(self, rows: np.ndarray, configs) -> list:
        idx = torch.as_tensor(rows, device=self.device)
        Ws = [W.index_select(2, idx) for W in self.Ws]
        Ws[0] = torch.einsum("ij,jhb->ihb", self.V, Ws[0])  # back from the eigenbasis: V (VᵀW1)
        widths = [configs[i].widths for i in self.runs[rows]]
        Ws = unstack([W.permute(2, 0, 1) for W in Ws], np.arange(len(rows)), widths)
        return [(W, None) for W in Ws]


class _Native(_Factors):
    """Fused SGD on the factors in the C kernel of :mod:`.native` (the CPU's fast path): the
    same state, rules and records as :class:`_Factors`, updated in place."""

    def __init__(self, path, configs, factors, widths, dtype, device, fn):
        super().__init__(path, configs, factors, widths, dtype, device)
        self.fn, self.struct = fn, native.STRUCTS[dtype]
        d, k = self.consts[0].shape[:2]
        self.consts = [c.expand(d, k, 1).contiguous() for c in self.consts]  # √λ and sλ are (d, 1, 1)
        self.H = np.array([W.shape[0] for W in self.Ws] + [self.Ws[-1].shape[1]], dtype=np.int64)

    def block(self, lrs: np.ndarray, pasts: np.ndarray, t0: int):
        K, B = lrs.shape
        losses, codes = np.empty((K, B)), np.empty((K, B), dtype=np.int8)  # written by the kernel
        lrs = np.ascontiguousarray(lrs, dtype=np.float64 if self.dtype == torch.float64 else np.float32)
        pasts = np.ascontiguousarray(pasts, dtype=np.float64)
        Ws, prev, bufs = (native.pointers(ts) for ts in (self.Ws, self.prev, self.bufs))  # kept until it returns
        s, rows = self.scalars, self.rows
        ptr = {name: rows[name].data_ptr() for name in ("alive", "limit", "best", "factor", "tol", "rtol",
                                                         "epochs")}
        block = self.struct(
            L=len(self.Ws), H=self.H.ctypes.data, B=B, K=K, t0=t0, W=ctypes.addressof(Ws),
            prev=ctypes.addressof(prev), buf=ctypes.addressof(bufs),
            **dict(zip(("P", "root", "slam", "sr", "r"), (c.data_ptr() for c in self.consts))),
            floor_=float(s["floor"]), divisor=float(s["divisor"]), mu=float(s["mu"]), wd=float(s["wd"]),
            lrs=lrs.ctypes.data, pasts=pasts.ctypes.data, losses=losses.ctypes.data, codes=codes.ctypes.data,
            **ptr, **self.flags,
        )
        native.run(self.fn, block, B)
        return losses, codes


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
    """:func:`~.batched_runs.run_stack` for an :func:`eligible` stack, ``UNROLL`` epochs per call.

    Returns the same (rules, finals, seconds), or None when compiling failed (the warning
    says why; the caller runs the stack per epoch instead).
    """
    from .gram import Gram, gram_suits

    fn = native_kernel(path, len(widths) - 1)
    if fn is not None:
        runs = _Native(path, configs, factors, widths, dtype, device, fn)
    else:
        kind = Gram if gram_path(path) and gram_suits(configs, widths) else _Factors
        runs = kind(path, configs, factors, widths, dtype, device)
    rules, schedule = StopRules(configs, lrs), Schedule(configs, lrs)
    B = len(configs)
    finals, seconds = [None] * B, np.zeros(B)
    t0, K = 0, UNROLL
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
