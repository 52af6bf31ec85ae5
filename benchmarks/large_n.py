"""Full-batch gradient descent on 10 million rows: the statistics path against a plain torch loop.

The data (n x 100 features, 10 targets, float32) is generated in chunks into temporary
``.npy`` memory maps, so it never has to fit in memory as float64 (10M x 100 would be
8 GB). Then, in one process:

- batched: ``fit_batched`` trains a depth-2 network (100, 10, 10) for 1,000 full-batch GD
  epochs via the statistics: one pass over the rows for XᵀX, XᵀY, ‖Y‖² in float64, then
  epochs that cost nothing in n. The time includes that pass.
- torch: the plain full-batch loop (forward on all rows, ``MSELoss``, ``backward``,
  ``optim.SGD`` step) from the same initial factors, timed over a few epochs; its 1,000
  epochs are extrapolated from their mean.

Targets: the batched total within 2x of ONE torch epoch, and over 100x faster than the
torch loop's 1,000 epochs. Both losses are printed side by side for the epochs the torch
loop ran, as a check that the two computed the same thing.

    python benchmarks/large_n.py                 # n = 10,000,000 (about 4.4 GB on disk, ~1 min)
    python benchmarks/large_n.py --n 1000000     # smaller

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from linlab import Dataset, TrainConfig, init_factors
from linlab.engines.batched import fit_batched
from linlab.engines.batched.objective_stats import gram_stats

D, K, HIDDEN = 100, 10, 10


def write_data(folder: Path, n: int, chunk: int = 1_000_000, seed: int = 0):
    """X (n, D) and Y = X W + noise (n, K) as float32 .npy memory maps, filled chunk by chunk."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D, K)).astype(np.float32) / np.sqrt(D)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(n, D))
    Y = np.lib.format.open_memmap(folder / "Y.npy", mode="w+", dtype=np.float32, shape=(n, K))
    for start in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - start), D), dtype=np.float32)
        X[start:start + len(x)] = x
        Y[start:start + len(x)] = x @ W + 0.5 * rng.standard_normal((len(x), K), dtype=np.float32)
    X.flush()
    Y.flush()
    return X, Y, W


def torch_loop(X, Y, factors, config: TrainConfig, epochs: int) -> tuple[list[float], list[float]]:
    """The plain full-batch torch loop; returns (losses, seconds per epoch)."""
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)  # shares the memory map
    params = [torch.tensor(W, dtype=torch.float32, requires_grad=True) for W in factors]
    loss_fn = torch.nn.MSELoss(reduction=config.reduction)
    optimizer = torch.optim.SGD(params, lr=config.lr)
    losses, seconds = [], []
    for _ in range(epochs):
        tick = time.perf_counter()
        loss = loss_fn(Xt @ params[0] @ params[1], Yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        seconds.append(time.perf_counter() - tick)
    return losses, seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="rows (default 10,000,000)")
    parser.add_argument("--epochs", type=int, default=1000, help="GD epochs of the batched run")
    parser.add_argument("--torch-epochs", type=int, default=3, help="epochs of the torch loop to time")
    parser.add_argument("--dir", default=None, help="folder for the temporary .npy files")
    args = parser.parse_args(argv)
    config = TrainConfig(widths=(D, HIDDEN, K), lr=0.1, reduction="mean", init="scaled", init_scale=0.3,
                         epochs=args.epochs, tol=0.0, stall_window=args.epochs + 1, seed=0)
    factors = init_factors(config.widths, config.init, config.init_scale, config.seed)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        tick = time.perf_counter()
        X, Y, W = write_data(Path(folder), args.n)
        print(f"n = {args.n:,} rows x {D} features -> {K} targets, float32 memory maps "
              f"({(X.nbytes + Y.nbytes) / 2**30:.1f} GiB), written in {time.perf_counter() - tick:.1f} s; "
              f"{torch.get_num_threads()} threads")
        data = Dataset(X, Y, W, name=f"large(n={args.n})")

        tick = time.perf_counter()
        gram_stats(X, Y)
        stats_seconds = time.perf_counter() - tick

        tick = time.perf_counter()
        result = fit_batched(data, [config], factors=[factors])[0]
        batched = time.perf_counter() - tick

        losses, seconds = torch_loop(X, Y, factors, config, args.torch_epochs)
    epoch = float(np.mean(seconds[1:] if len(seconds) > 1 else seconds))
    print(f"\nbatched, statistics path: {args.epochs:,} epochs of (100, 10, 10) in {batched:.2f} s "
          f"(the pass for XᵀX, XᵀY alone: {stats_seconds:.2f} s); outcome {result.outcome}, "
          f"final loss {result.final_loss:.6g}")
    print(f"plain torch loop: {epoch:.2f} s per epoch (mean of {max(len(seconds) - 1, 1)} after a first one "
          f"of {seconds[0]:.2f} s); {args.epochs:,} epochs extrapolated: {epoch * args.epochs:.0f} s\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| batched total / one torch epoch | {batched / epoch:.2f} | <= 2 |")
    print(f"| torch {args.epochs:,} epochs / batched total | {epoch * args.epochs / batched:,.0f}x | > 100x |")
    print("\nloss per epoch, batched (float64 statistics) vs torch (float32 rows):")
    for t, loss in enumerate(losses):
        print(f"  epoch {t}: {result.history[t]:.7g}  {loss:.7g}")


if __name__ == "__main__":
    main()
