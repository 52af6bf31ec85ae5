"""The C kernel of fused SGD stacks against the same step written with numba's ``@njit``.

Both run the same stacks: B runs of (10, h, 2) on the seed data, plain SGD from the same
initial factors, the statistics path in the eigenbasis of XᵀX, the stop rules per run and per
epoch, blocks of 8 epochs per call, float64, one thread each. The C side is
:class:`linlab.engines.batched.kernels.fused.Native` (what ``fit_batched`` runs on the CPU);
the numba side is :func:`sgd_block`, below: the same arithmetic with the run index as the
innermost (vectorised) loop, over blocks of runs that stay in the cache. Their losses are
checked to agree to rounding before any timing. Prints run-epochs per second of each and
their ratio, measured side by side (best of three, alternating).

    pip install numba
    python benchmarks/numba_vs_c.py            # h = 1, 4, 16, 64; B = 1,000 and 10,000
    python benchmarks/numba_vs_c.py --quick

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from numba import njit

from linlab import TrainConfig, seed_dataset
from linlab.engines.batched.kernels import native
from linlab.engines.batched.kernels.fused import Native
from linlab.engines.batched.objective_stats import StatsPath, dataset_terms
from linlab.models import init_factors

K = 8  # epochs per call, as fit_batched's fused stacks
LANES = 64  # runs per block of the numba loop (its scratch stays in L1/L2)


@njit(cache=True)
def sgd_block(W1, W2, prev1, prev2, P, root, slam, sr, r, floor, divisor, lrs, alive, limit, best, pasts,
              factor, tol, rtol, epochs, t0, losses, codes):  # pragma: no cover (compiled)
    """``lrs.shape[0]`` epochs of depth-2 plain SGD runs (W1 (d, h, B), W2 (h, k, B)) with the
    stop rules: the arithmetic of ``fused.sgd_block`` and ``sgd_kernel.c``."""
    d, h, B = W1.shape
    k = W2.shape[1]
    Q = np.empty((d, k, LANES))
    G = np.empty((d, k, LANES))
    g1 = np.empty((d, h, LANES))
    g2 = np.empty((h, k, LANES))
    loss = np.empty(LANES)
    for b0 in range(0, B, LANES):
        n = min(B, b0 + LANES) - b0
        for j in range(lrs.shape[0]):
            t = t0 + j
            Q[:, :, :n] = 0.0
            for i in range(d):  # Q = W1 W2
                for m in range(h):
                    for c in range(k):
                        for q in range(n):
                            Q[i, c, q] += W1[i, m, b0 + q] * W2[m, c, b0 + q]
            loss[:n] = 0.0
            for i in range(d):  # ℓ = ‖√λ Δ‖² + 2⟨r, Δ⟩, G = sλΔ + s·r
                for c in range(k):
                    for q in range(n):
                        D = Q[i, c, q] - P[i, c]
                        z = root[i, c] * D
                        loss[q] += z * z + 2.0 * r[i, c] * D
                        G[i, c, q] = slam[i, c] * D + sr[i, c]
            g1[:, :, :n] = 0.0
            g2[:, :, :n] = 0.0
            for i in range(d):  # ∂ℓ/∂W1 = G W2ᵀ, ∂ℓ/∂W2 = W1ᵀ G
                for m in range(h):
                    for c in range(k):
                        for q in range(n):
                            g1[i, m, q] += G[i, c, q] * W2[m, c, b0 + q]
                            g2[m, c, q] += W1[i, m, b0 + q] * G[i, c, q]
            for q in range(n):  # the stop rules (linlab.engines.stop_rules)
                b = b0 + q
                value = (loss[q] + floor) / divisor
                was = alive[b]
                diverged = was and ((not np.isfinite(value)) if t == 0 else not (value <= limit[b]))
                if t == 0:
                    limit[b] = factor[b] * max(0.0 if diverged else value, 1e-300)
                fine = was and not diverged
                if fine:
                    best[b] = value if t == 0 else min(best[b], value)
                end = fine and epochs[b] == t
                converged = fine and not end and value <= tol[b]
                past = pasts[j, b]
                stalled = fine and not end and not converged and (past - best[b] <= rtol[b] * past)
                go = fine and not end and not converged and not stalled
                codes[j, b] = 1 if diverged else 2 if converged else 3 if end else 4 if stalled else 0
                losses[j, b] = value
                alive[b] = go
                loss[q] = lrs[j, b] if go else (-1.0 if diverged else 0.0)  # reuse: the step to take
            for i in range(d):
                for m in range(h):
                    for q in range(n):
                        b, old = b0 + q, W1[i, m, b0 + q]
                        W1[i, m, b] = old - loss[q] * g1[i, m, q] if loss[q] > 0 else (
                            prev1[i, m, b] if loss[q] < 0 else old)
                        prev1[i, m, b] = old
            for m in range(h):
                for c in range(k):
                    for q in range(n):
                        b, old = b0 + q, W2[m, c, b0 + q]
                        W2[m, c, b] = old - loss[q] * g2[m, c, q] if loss[q] > 0 else (
                            prev2[m, c, b] if loss[q] < 0 else old)
                        prev2[m, c, b] = old


def stacks(data, h: int, B: int):
    """The C kernel's stack of B runs (10, h, 2), and numba's arguments on copies of its state."""
    path = StatsPath(*dataset_terms(data), "sum", torch.float64, "cpu", compiled=True, inductor=False)
    configs = [TrainConfig(widths=(10, h, 2), lr=1e-7, epochs=10**6, seed=i, tol=0.0) for i in range(B)]
    factors = [init_factors(c.widths, seed=c.seed % 97) for c in configs]
    c_stack = Native(path, configs, factors, (10, h, 2), torch.float64, "cpu", native.kernel(torch.float64))
    consts = [c[..., 0].numpy().copy() for c in c_stack.consts]  # P, √λ, sλ, s·r, r: (d, k)
    rows = {name: t.numpy().copy() for name, t in c_stack.rows.items()}
    state = [W.numpy().copy() for W in c_stack.Ws] + [W.numpy().copy() for W in c_stack.prev]
    scalars = float(c_stack.scalars["floor"]), float(c_stack.scalars["divisor"])
    return c_stack, (state, consts, scalars, rows)


def run_numba(args, lrs, pasts, t0):
    (W1, W2, p1, p2), consts, (floor, divisor), rows = args
    losses, codes = np.empty(lrs.shape), np.empty(lrs.shape, dtype=np.int8)
    sgd_block(W1, W2, p1, p2, *consts, floor, divisor, lrs, rows["alive"], rows["limit"], rows["best"], pasts,
              rows["factor"], rows["tol"], rows["rtol"], rows["epochs"], t0, losses, codes)
    return losses, codes


def timed(fn, calls: int) -> float:
    tick = time.perf_counter()
    for t0 in range(0, calls * K, K):
        fn(t0)
    return time.perf_counter() - tick


def compare(data, h: int, B: int, calls: int) -> tuple[float, float, float]:
    c_stack, args = stacks(data, h, B)
    lrs, pasts = np.full((K, B), 1e-7), np.full((K, B), np.nan)
    a, _ = c_stack.block(lrs, pasts, 0)
    b, _ = run_numba(args, lrs, pasts, 0)
    agree = float(np.max(np.abs(a - b) / np.abs(a)))  # 8 epochs from the same start
    best_c = best_nb = np.inf
    for _ in range(3):
        best_c = min(best_c, timed(lambda t0: c_stack.block(lrs, pasts, K + t0), calls))
        best_nb = min(best_nb, timed(lambda t0: run_numba(args, lrs, pasts, K + t0), calls))
    run_epochs = B * K * calls
    return run_epochs / best_c, run_epochs / best_nb, agree


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="h = 4, 16 and B = 1,000 only, fewer epochs")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the C kernel on one thread, as numba's loop here
    data = seed_dataset()
    widths, sizes = ((4, 16), (1000,)) if args.quick else ((1, 4, 16, 64), (1000, 10000))
    print(f"{'h':>3} {'B':>7} {'C run-epochs/s':>15} {'numba run-epochs/s':>19} {'C / numba':>10}"
          f" {'max rel diff':>13}")
    for h in widths:
        for B in sizes:
            calls = max(2, int(4e6 / (B * K * h)) // (4 if args.quick else 1))
            c, nb, agree = compare(data, h, B, calls)
            print(f"{h:>3} {B:>7,} {c:>15,.0f} {nb:>19,.0f} {c / nb:>9.2f}x {agree:>13.1e}")


if __name__ == "__main__":
    main()
