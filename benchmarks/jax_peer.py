"""linlab's batched engine against a JAX peer: the program a competent researcher would write
for the same sweep, timed side by side in one process.

The sweep is ``sweep_throughput.py``'s: B runs of (10, h, 2) on the seed's 1000 x 10 data,
plain SGD with lr = 1e-7 · (0.5 + (i mod 10)/10), the same initial factors (seed i), 300
epochs, float64, fit's stop rules (here every run goes the full distance; both programs
still check every run at every epoch).

The peer (``peer_sweep``): ``jax_enable_x64``; the statistics trick (A = XᵀX, C = XᵀY,
‖Y‖² once, so an epoch costs nothing in n: ℓ = ⟨P, AP⟩ − 2⟨P, C⟩ + ‖Y‖², ∂ℓ/∂P = 2(AP − C));
one run's loss and gradient written plainly and ``jax.vmap``-ed over the runs; the epochs a
``jax.lax.scan`` that records each run's loss and masks its update once it has diverged
(non-finite, or above 1e6 times its initial loss: back to the last finite state) or
converged (loss ≤ tol); the whole sweep one ``jax.jit``. Both start from the same initial
factors, drawn before the clock starts. The two are timed in alternation, one call each per
round, over at least ``--repeats`` rounds (5) and until each has run ``--seconds`` (2) in all
(a sweep of 20 ms gets 100 rounds: its best is then not one lucky or unlucky draw of a
shared machine), and each keeps its best: the peer's calls after a first one that compiles it
(its compile time is printed apart), linlab's whole ``fit_batched`` calls, a ``RunResult`` per
run included (its history, message and outcome; its config dict is built on first read). Each
round's results are freed before the next round's clock starts.

Printed per B and h: run-epochs/s of each, linlab / JAX, and the fraction of this machine's
float64 matrix-multiply peak that linlab reaches: FLOPs per run-epoch (the products
P = W1W2, ∂ℓ/∂W1 = G W2ᵀ, ∂ℓ/∂W2 = W1ᵀG and the update: 6dhk + 2h(d + k)) times its
run-epochs/s, over the GFLOP/s of a large float64 matmul (NumPy and torch, the better one)
measured in the same run.

    pip install 'linlab[bench]'        # jax
    python benchmarks/jax_peer.py      # h = 1, 4, 16, 64; B = 1,000 and 10,000
    python benchmarks/jax_peer.py --quick
    python benchmarks/jax_peer.py --widths 1 --sizes 1000 --seconds 5

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from linlab import TrainConfig, seed_dataset
from linlab.engines.batched import fit_batched
from linlab.models import init_factors

jax.config.update("jax_enable_x64", True)

LR, EPOCHS, DIVERGE = 1e-7, 300, 1e6


def configs_for(h: int, B: int, epochs: int) -> list[TrainConfig]:
    return [TrainConfig(widths=(10, h, 2), lr=LR * (0.5 + (i % 10) / 10), epochs=epochs, seed=i, tol=0.0,
                        stall_window=epochs + 1) for i in range(B)]


def peer_sweep(A, C, yy, epochs: int):
    """The JAX program: a jitted function of (W1s, W2s, lrs, tols) -> (W1s, W2s, losses (epochs + 1, B))."""

    def loss_and_grads(W1, W2):
        P = W1 @ W2
        AP = A @ P
        loss = jnp.sum(P * AP) - 2.0 * jnp.sum(P * C) + yy
        G = 2.0 * (AP - C)
        return loss, G @ W2.T, W1.T @ G

    batched = jax.vmap(loss_and_grads)

    def epoch(carry, t):
        W1, W2, prev1, prev2, alive, limit, lrs, tols = carry
        loss, g1, g2 = batched(W1, W2)
        limit = jnp.where(t == 0, DIVERGE * jnp.maximum(loss, 1e-300), limit)
        diverged = alive & jnp.where(t == 0, ~jnp.isfinite(loss), ~(loss <= limit))
        go = alive & ~diverged & ~(loss <= tols) & (t < epochs)
        step = lrs[:, None, None]
        new1 = jnp.where(go[:, None, None], W1 - step * g1, jnp.where(diverged[:, None, None], prev1, W1))
        new2 = jnp.where(go[:, None, None], W2 - step * g2, jnp.where(diverged[:, None, None], prev2, W2))
        return (new1, new2, W1, W2, go, limit, lrs, tols), jnp.where(alive, loss, jnp.nan)

    @jax.jit
    def sweep(W1, W2, lrs, tols):
        B = W1.shape[0]
        start = (W1, W2, W1, W2, jnp.ones(B, dtype=bool), jnp.zeros(B), lrs, tols)
        (W1, W2, *_), losses = jax.lax.scan(epoch, start, jnp.arange(epochs + 1))
        return W1, W2, losses

    return sweep


def peer_call(data, configs, factors, epochs: int):
    """(a call of the compiled peer on the runs, seconds of its first, compiling call)."""
    X, Y = np.asarray(data.X, np.float64), np.asarray(data.Y, np.float64)
    sweep = peer_sweep(jnp.asarray(X.T @ X), jnp.asarray(X.T @ Y), float(np.sum(Y * Y)), epochs)
    args = (jnp.asarray(np.stack([f[0] for f in factors])), jnp.asarray(np.stack([f[1] for f in factors])),
            jnp.asarray([c.lr for c in configs]), jnp.asarray([c.tol for c in configs]))
    tick = time.perf_counter()
    jax.block_until_ready(sweep(*args))
    return (lambda: jax.block_until_ready(sweep(*args))), time.perf_counter() - tick


def side_by_side(data, configs, factors, epochs: int, repeats: int, seconds: float = 2.0, most: int = 100):
    """Best seconds of the peer and of fit_batched over at least `repeats` rounds and until each has
    run `seconds` in all (at most `most` rounds), the two alternating in each (a machine's passing
    load then weighs on both), with their final losses."""
    peer, compile_s = peer_call(data, configs, factors, epochs)
    spent = np.zeros(2)
    best = np.full(2, np.inf)
    for rounds in range(1, most + 1):
        tick = time.perf_counter()
        out = peer()
        spent[0] += (took := time.perf_counter() - tick)
        best[0] = min(best[0], took)
        tick = time.perf_counter()
        results = fit_batched(data, configs, factors=factors)
        spent[1] += (took := time.perf_counter() - tick)
        best[1] = min(best[1], took)
        ours = np.array([r.history[-1] for r in results])
        del results  # freed here, not inside the next round's clock
        if rounds >= repeats and spent.min() >= seconds:
            break
    return best[0], best[1], compile_s, np.asarray(out[2][-1]), ours


def matmul_peak(n: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of the faster of NumPy's and torch's float64 n x n matmul (best of `repeats`)."""
    a = np.random.default_rng(0).standard_normal((n, n))
    t = torch.from_numpy(a)
    best = np.inf
    for mul in (lambda: a @ a, lambda: t @ t):
        mul()
        for _ in range(repeats):
            tick = time.perf_counter()
            mul()
            best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best / 1e9


def flops_per_run_epoch(d: int, h: int, k: int) -> int:
    # P = W1 W2, G W2ᵀ, W1ᵀ G: 2dhk each; the update of dh + hk entries: 2 each
    return 6 * d * h * k + 2 * h * (d + k)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="h = 4, 16 and B = 1,000, 100 epochs")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of one call each, alternating (best kept)")
    parser.add_argument("--seconds", type=float, default=2.0, help="more rounds until each side has run this long")
    parser.add_argument("--widths", type=int, nargs="+", help="hidden widths h (default 1 4 16 64)")
    parser.add_argument("--sizes", type=int, nargs="+", help="runs per sweep B (default 1000 10000)")
    args = parser.parse_args()
    data = seed_dataset()
    widths, sizes = ((4, 16), (1000,)) if args.quick else ((1, 4, 16, 64), (1000, 10000))
    widths, sizes = args.widths or widths, args.sizes or sizes
    epochs = 100 if args.quick else EPOCHS
    fit_batched(data, configs_for(4, 64, 2))  # builds (or loads) the C kernel once
    peak = matmul_peak()
    print(f"float64 matmul peak: {peak:.1f} GFLOP/s (torch threads {torch.get_num_threads()}, "
          f"jax devices {jax.devices()})")
    print("| h | B | linlab run-epochs/s | JAX run-epochs/s | linlab / JAX | JAX compile s | linlab % of peak |"
          " max rel diff |")
    print("|---|---|---|---|---|---|---|---|")
    for h in widths:
        for B in sizes:
            configs = configs_for(h, B, epochs)
            factors = [init_factors(c.widths, c.init, c.init_scale, c.seed) for c in configs]
            timed = side_by_side(data, configs, factors, epochs, args.repeats, args.seconds)
            peer_s, ours_s, compile_s, jax_final, final = timed
            jax_rate, ours = B * epochs / peer_s, B * epochs / ours_s  # every run goes all its epochs
            share = flops_per_run_epoch(10, h, 2) * ours / (peak * 1e9)
            diff = float(np.max(np.abs(final - jax_final) / final))
            print(f"| {h} | {B:,} | {ours:,.0f} | {jax_rate:,.0f} | {ours / jax_rate:.2f}x | {compile_s:.1f} | "
                  f"{100 * share:.1f}% | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
