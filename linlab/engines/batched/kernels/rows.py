"""What every fused stack shares, whatever kernel steps it: the rows it keeps (run index last),
and the stop rules of :mod:`linlab.engines.stop_rules` written as tensor operations for the
graphs (:func:`judge`)."""

from __future__ import annotations

import numpy as np
import torch

from ..columns import numeric
from .compiled import MIN_ROWS


def judge(loss, t, alive, limit, best, past, factor, tol, rtol, epochs):
    """:meth:`~..stop.StopRules.judge` in the graph, for one epoch t of every run: (diverged, go on,
    limit, best, stop code); `past` is the best loss stall_window epochs back (NaN before it exists)."""
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


class Rows:
    """What a fused stack keeps per row (run index last): the state tensors named in
    ``STATE``, the run of each row, its constants and whether it is still live."""

    STATE: tuple[str, ...] = ()

    def __init__(self, path, configs, dtype, device, rules=None):
        B = len(configs)
        self.device, self.dtype = device, dtype
        c0 = configs[0]
        if rules is None:
            factor, tol, rtol = (numeric(configs, name) for name in ("diverge_factor", "tol", "stall_rtol"))
            epochs = numeric(configs, "epochs", np.int64)
        else:  # the stack's StopRules read them already
            factor, tol, rtol, epochs = rules.factor, rules.tol, rules.rtol, rules.epochs
        f64 = lambda values: torch.tensor(np.ascontiguousarray(values), device=device)  # noqa: E731
        self.rows = {
            "alive": torch.ones(B, dtype=torch.bool, device=device),
            "limit": f64(np.zeros(B)), "best": f64(np.zeros(B)),
            "factor": f64(factor), "tol": f64(tol), "rtol": f64(rtol), "epochs": f64(epochs),
        }
        self.scalars = {name: torch.tensor(value, dtype=dtype, device=device) for name, value in
                        (("floor", path.floor), ("divisor", float(path.divisor)), ("mu", c0.momentum),
                         ("wd", c0.weight_decay))}
        self.V, self.consts = path.eigenbasis()
        self.runs = np.arange(B)  # the run of each row
        self.live = np.ones(B, dtype=bool)

    def rules(self, lrs, pasts, t0):
        """The per-row arguments every block function takes after its state and constants."""
        return (torch.as_tensor(lrs, device=self.device).to(self.dtype), self.rows["alive"], self.rows["limit"],
                self.rows["best"], torch.as_tensor(pasts, device=self.device), self.rows["factor"],
                self.rows["tol"], self.rows["rtol"], self.rows["epochs"],
                torch.tensor(t0, dtype=torch.int64, device=self.device))

    def keep(self, out):
        """Keep a block function's outputs: its state (in STATE order), then alive, limit and
        best; returns its (losses, codes) as NumPy arrays."""
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
