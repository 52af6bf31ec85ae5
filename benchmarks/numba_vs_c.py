"""The C kernel of fused SGD stacks against the same training written with numba's ``@njit``.

Both train the same stacks: B runs of (10, h, 2) on the seed data, plain SGD with
``jax_peer.py``'s learning rates (1e-7 · (0.5 + (i mod 10)/10)) from the same initial factors,
the statistics path in the eigenbasis of XᵀX, float64. Each side runs a stack's whole training
in one call: every epoch's loss written into a (T + 1, B) history, fit's stop rules per run and
per epoch (diverged, max_epochs, converged, stalled: :mod:`linlab.engines.stop_rules`), each
run's stop epoch and code returned, a lane block of runs stopping once all its runs have.
The C side is :class:`linlab.engines.batched.kernels.fused.Native`, called as ``fit_batched``
calls it (``Native.block(rules, schedule, 0, T + 1, threads)``); the numba side is
:func:`train`, below: ``@njit(parallel=True)`` with ``prange`` over lane blocks of 64 runs
that stay in the cache, the run index the innermost (vectorised) loop, no fast-math but for
fused multiply-adds (as the kernel's ``-ffp-contract=fast``), so NaN and inf behave.

Before any timing the two are checked to agree on a mixed stack where every stop rule fires
(same stop epochs and codes, histories equal to rounding) and on each timed stack. Prints
run-epochs per second of each and C / numba, on all threads and on one (best of three,
alternating; the timed stacks run 10-300 epochs, every run to its limit).

    pip install 'linlab[bench]'        # numba
    python benchmarks/numba_vs_c.py    # h = 1, 4, 16, 64; B = 1,000 and 10,000
    python benchmarks/numba_vs_c.py --quick

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numba
import numpy as np
import torch
from numba import njit, prange

from linlab import TrainConfig, seed_dataset
from linlab.engines.batched.kernels import native
from linlab.engines.batched.kernels.fused import Native
from linlab.engines.batched.objective_stats import StatsPath, dataset_terms
from linlab.engines.batched.stop import StopRules
from linlab.engines.batched.update import Schedule
from linlab.models import init_factors

LANES = 64  # runs per lane block (numba: 2x the rate of 32, as fast as 128, in L2 up to h = 16)
LR = 1e-7
FLAGS = {"contract"}  # fused multiply-adds only: no reassociation, NaN and inf kept


@njit(fastmath=FLAGS, cache=True)
def forward(w1, w2, Q, G, P, root, slam, sr, r, floor, divisor, loss):  # pragma: no cover (compiled)
    """Q = W1 W2, D = Q − P0, ℓ = (‖√λ D‖² + 2⟨r, D⟩ + L*) / divisor, G = sλ D + s r, per lane."""
    (d, h, _), k = w1.shape, w2.shape[1]
    Q[:] = 0.0
    for i in range(d):
        for m in range(h):
            for c in range(k):
                for q in range(LANES):
                    Q[i, c, q] += w1[i, m, q] * w2[m, c, q]
    sq, lin = np.zeros(LANES), np.zeros(LANES)
    for i in range(d):
        for c in range(k):
            for q in range(LANES):
                D = Q[i, c, q] - P[i, c]
                x = root[i, c] * D
                sq[q] += x * x
                lin[q] += r[i, c] * D
                G[i, c, q] = slam[i, c] * D + sr[i, c]
    for q in range(LANES):
        loss[q] = (sq[q] + 2.0 * lin[q] + floor) / divisor


@njit(fastmath=FLAGS, cache=True)
def judge(t, loss, alive, limit, best, past, factor, tol, rtol, epochs, step, lr, codes):  # pragma: no cover
    """The stop rules at epoch t, per lane; sets step (lr where the run goes on, −1 where it
    diverged, 0 where it stopped) and codes (1 diverged, 2 converged, 3 max_epochs, 4 stalled)."""
    for q in range(LANES):
        x, was = loss[q], alive[q]
        diverged = was and (not math.isfinite(x) if t == 0 else not x <= limit[q])
        if t == 0:
            limit[q] = factor[q] * max(0.0 if diverged else x, 1e-300)
        fine = was and not diverged
        if fine and (t == 0 or x < best[q]):
            best[q] = x
        end = fine and epochs[q] == t
        converged = fine and not end and x <= tol[q]
        stalled = fine and not end and not converged and past[q] - best[q] <= rtol[q] * past[q]
        alive[q] = fine and not (end or converged or stalled)
        codes[q] = 1 if diverged else 2 if converged else 3 if end else 4 if stalled else 0
        step[q] = lr[q] if alive[q] else (-1.0 if diverged else 0.0)


@njit(fastmath=FLAGS, cache=True)
def update(w, p, g, step):  # pragma: no cover (compiled)
    """W − lr g where the run goes on, its previous W where it diverged, W where it stopped."""
    for e in range(w.shape[0]):
        for f in range(w.shape[1]):
            for q in range(LANES):
                old = w[e, f, q]
                w[e, f, q] = old - step[q] * g[e, f, q] if step[q] > 0 else (p[e, f, q] if step[q] < 0 else old)
                p[e, f, q] = old


@njit(parallel=True, fastmath=FLAGS, cache=True)
def train(W1, W2, prev1, prev2, P, root, slam, sr, r, floor, divisor, lr, factor, tol, rtol, epochs, window,
          K, history, best_hist, stop_t, codes):  # pragma: no cover (compiled)
    """K epochs of depth-2 plain SGD stacks (W1 (d, h, B), W2 (h, k, B)) with the stop rules, in
    place: losses into history (K, B), best losses into best_hist (read stall_window back)."""
    (d, h, B), k = W1.shape, W2.shape[1]
    for blk in prange((B + LANES - 1) // LANES):
        b0 = blk * LANES
        n = min(B, b0 + LANES) - b0
        w1, p1, g1 = np.zeros((d, h, LANES)), np.zeros((d, h, LANES)), np.zeros((d, h, LANES))
        w2, p2, g2 = np.zeros((h, k, LANES)), np.zeros((h, k, LANES)), np.zeros((h, k, LANES))
        Q, G = np.empty((d, k, LANES)), np.empty((d, k, LANES))
        w1[:, :, :n], p1[:, :, :n] = W1[:, :, b0:b0 + n], prev1[:, :, b0:b0 + n]
        w2[:, :, :n], p2[:, :, :n] = W2[:, :, b0:b0 + n], prev2[:, :, b0:b0 + n]
        alive = np.zeros(LANES, dtype=np.bool_)
        alive[:n] = True
        limit, best, loss, step, past = np.zeros((5, LANES))
        code = np.zeros(LANES, dtype=np.int8)
        l_lr, l_factor, l_tol, l_rtol = np.zeros((4, LANES))
        l_lr[:n], l_factor[:n], l_tol[:n], l_rtol[:n] = lr[b0:b0 + n], factor[b0:b0 + n], tol[b0:b0 + n], \
            rtol[b0:b0 + n]
        l_epochs = np.full(LANES, -1, dtype=np.int64)  # padding lanes are never alive
        l_epochs[:n] = epochs[b0:b0 + n]
        t = 0
        while t < K and alive.any():
            forward(w1, w2, Q, G, P, root, slam, sr, r, floor, divisor, loss)
            history[t, b0:b0 + n] = loss[:n]
            for q in range(n):  # the best loss stall_window epochs back; NaN before it exists
                w = window[b0 + q]
                past[q] = best_hist[t - w, b0 + q] if t >= w else np.nan
            judge(t, loss, alive, limit, best, past, l_factor, l_tol, l_rtol, l_epochs, step, l_lr, code)
            best_hist[t, b0:b0 + n] = best[:n]
            for q in range(n):
                if code[q]:
                    stop_t[b0 + q], codes[b0 + q] = t, code[q]
            g1[:] = 0.0  # ∂ℓ/∂W1 = G W2ᵀ, ∂ℓ/∂W2 = W1ᵀ G
            g2[:] = 0.0
            for i in range(d):
                for m in range(h):
                    for c in range(k):
                        for q in range(LANES):
                            g1[i, m, q] += G[i, c, q] * w2[m, c, q]
                            g2[m, c, q] += w1[i, m, q] * G[i, c, q]
            update(w2, p2, g2, step)
            update(w1, p1, g1, step)
            t += 1
        W1[:, :, b0:b0 + n], prev1[:, :, b0:b0 + n] = w1[:, :, :n], p1[:, :, :n]
        W2[:, :, b0:b0 + n], prev2[:, :, b0:b0 + n] = w2[:, :, :n], p2[:, :, :n]


def configs_for(h: int, B: int, epochs: int) -> list[TrainConfig]:
    """jax_peer.py's runs: every run goes to its epoch limit."""
    return [TrainConfig(widths=(10, h, 2), lr=LR * (0.5 + (i % 10) / 10), epochs=epochs, seed=i, tol=0.0,
                        stall_window=epochs + 1) for i in range(B)]


class Stack:
    """One stack's runs, trained from the start by either side (fresh state every call)."""

    def __init__(self, data, configs):
        self.path = StatsPath(*dataset_terms(data), "sum", torch.float64, "cpu", compiled=True, inductor=False)
        self.configs, self.widths = configs, configs[0].widths
        self.factors = [init_factors(c.widths, seed=c.seed) for c in configs]
        self.lrs = [c.lr for c in configs]
        self.rules, self.schedule = StopRules(configs, self.lrs), Schedule(configs, self.lrs)
        B, T = len(configs), self.rules.history.shape[0] - 1
        self.mine = np.zeros((T + 1, B)), np.zeros((T + 1, B)), np.zeros(B, dtype=np.int64), np.zeros(B, np.int8)

    def native(self) -> Native:
        return Native(self.path, self.configs, self.factors, self.widths, torch.float64, "cpu",
                      native.kernel(torch.float64))

    def c(self, threads: int):
        """A fresh stack and the call that trains it in the C kernel, as ``fit_batched`` does."""
        runs, K = self.native(), len(self.rules.history)
        return lambda: runs.block(self.rules, self.schedule, 0, K, threads) + (self.rules.history,)

    def numba(self, threads: int):
        """The call of :func:`train` on a fresh copy of the same initial state."""
        runs, rules = self.native(), self.rules
        Ws = [W.numpy().copy() for W in runs.Ws + runs.prev]
        consts = [c[..., 0].numpy() for c in runs.consts]  # P0, √λ, sλ, s·r, r: (d, k)
        rows = [runs.rows[name].numpy() for name in ("factor", "tol", "rtol", "epochs")]
        history, best, stop_t, codes = self.mine
        s = float(runs.scalars["floor"]), float(runs.scalars["divisor"])

        def call():
            numba.set_num_threads(threads)
            train(*Ws, *consts, *s, self.schedule.base, *rows, rules.window, len(history), history, best,
                  stop_t, codes)
            return stop_t, codes, history
        return call


def agree(stack: Stack, threads: int) -> tuple[float, np.ndarray]:
    """Both sides' stop epochs and codes, which must be equal; returns the largest relative
    difference of their histories up to each run's stop, and the codes."""
    t_c, code_c, hist_c = (a.copy() for a in stack.c(threads)())
    t_nb, code_nb, hist_nb = stack.numba(threads)()
    if not (np.array_equal(t_c, t_nb) and np.array_equal(code_c, code_nb)):
        raise AssertionError(f"stops differ: {np.flatnonzero((t_c != t_nb) | (code_c != code_nb))[:10]}")
    kept = np.arange(len(hist_c))[:, None] <= t_c[None, :]
    with np.errstate(all="ignore"):  # past a run's stop its entries are unread (inf, NaN)
        diff = np.abs(hist_c - hist_nb) / np.maximum(np.abs(hist_c), 1e-300)
    worst = float(np.max(np.where(kept & np.isfinite(hist_c), diff, 0.0)))
    if worst > 1e-6:
        raise AssertionError(f"histories differ by {worst:.1e} (relative)")
    return worst, code_c


def mixed(data) -> Stack:
    """256 runs of (10, 4, 2) where every stop rule fires: lrs up to 100,000x, some tols and stall
    windows, epoch limits 40-200."""
    configs = [TrainConfig(widths=(10, 4, 2), lr=LR * 10 ** (5 * (i % 16) / 15), seed=i, epochs=40 + 10 * (i % 17),
                           tol=30.0 if i % 3 == 0 else 0.0, stall_window=5 + i % 7,
                           stall_rtol=1e-3 if i % 2 else 1e-9) for i in range(256)]
    return Stack(data, configs)


def best_of_three(stack: Stack, threads: int) -> tuple[float, float]:
    """Seconds of each side's fastest whole training, the sides alternating."""
    best = [np.inf, np.inf]
    for _ in range(3):
        for side, make in enumerate((stack.c, stack.numba)):
            call = make(threads)
            tick = time.perf_counter()
            call()
            best[side] = min(best[side], time.perf_counter() - tick)
    return best[0], best[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="h = 4, 16 and B = 1,000 only, fewer epochs")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the host's small operations; each side is given its threads
    data, cores = seed_dataset(), numba.config.NUMBA_NUM_THREADS
    tick = time.perf_counter()
    diff, codes = agree(mixed(data), cores)
    print(f"mixed stack: same stops (diverged, converged, max_epochs, stalled: "
          f"{np.bincount(codes, minlength=5)[1:].tolist()}), histories within {diff:.1e} (relative); "
          f"{time.perf_counter() - tick:.0f} s with numba's compile or cache load; load {os.getloadavg()[0]:.1f}")
    widths, sizes = ((4, 16), (1000,)) if args.quick else ((1, 4, 16, 64), (1000, 10000))
    print(f"{'threads':>7} {'h':>3} {'B':>7} {'epochs':>6} {'C run-epochs/s':>15} {'numba run-epochs/s':>19}"
          f" {'C / numba':>10} {'max rel diff':>13}")
    for threads in (cores, 1):
        for h in widths:
            for B in sizes:
                T = int(np.clip(2e6 / (B * h) // (4 if args.quick else 1), 10, 300)) - 1
                stack = Stack(data, configs_for(h, B, T))
                diff = agree(stack, threads)[0]
                c, nb = best_of_three(stack, threads)
                work = B * (T + 1)  # every run to its limit
                print(f"{threads:>7} {h:>3} {B:>7,} {T + 1:>6} {work / c:>15,.0f} {work / nb:>19,.0f}"
                      f" {nb / c:>9.2f}x {diff:>13.1e}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
