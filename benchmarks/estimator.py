"""GDRegressor(lr="auto") at depth 1 against scikit-learn's SGDRegressor and LinearRegression.

All three fit the same data (n rows, d correlated features, one target with noise) to
the same training loss: the least-squares MSE L* (LinearRegression's, exact) times
1 + excess, for each excess of ``--excess``. Each iterative method is timed on the fit
that stops at the first epoch whose training MSE meets that target:

- GDRegressor(lr="auto"): full-batch gradient descent at the optimal constant rate
  2/(λmin + λmax). A first fit with a tiny tol gives the loss curve; the timed fit runs
  exactly the epochs the curve says it needs (``max_iter``, ``tol=0``), once as it comes
  (with ``diagnosis_``) and once with ``compute_diagnosis=False``. Times are the best of 3.
- SGDRegressor(penalty=None): per-sample SGD with scikit-learn's default inverse-scaling
  schedule, one ``partial_fit`` epoch at a time until its training MSE meets the target
  (or MAX_SGD_EPOCHS); the time is the sum of those epochs (not the MSE checks).
- LinearRegression: one least-squares solve.

    python benchmarks/estimator.py                  # n = 200,000, d = 20
    python benchmarks/estimator.py --n 20000        # quicker

Timings are printed side by side, never asserted.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, SGDRegressor

from linlab import GDRegressor

MAX_SGD_EPOCHS = 50


def make_data(n: int, d: int, seed: int = 0):
    """Features with condition number ~10 (a random mixing of scaled Gaussians), y = Xw + 2 + noise."""
    rng = np.random.default_rng(seed)
    mix = np.linalg.qr(rng.standard_normal((d, d)))[0] * np.linspace(1.0, 3.0, d)
    X = rng.standard_normal((n, d)) @ mix + rng.normal(size=d)
    y = X @ rng.normal(size=d) + 2.0 + rng.standard_normal(n)
    return X, y


def mse(model, X, y) -> float:
    return float(np.mean((model.predict(X) - y) ** 2))


def timed(make, X, y, repeat: int = 3):
    """The fitted model and the best of `repeat` fit times."""
    best = float("inf")
    for _ in range(repeat):
        model = make()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # stopping at max_iter is the plan
            model.fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return model, best


def gd_rows(X, y, target, probe):
    """GDRegressor fits that stop at the first epoch of `probe`'s loss curve meeting `target`."""
    epochs = int(np.argmax(probe.loss_curve_ <= target))
    if probe.loss_curve_[epochs] > target:
        return [("GDRegressor (not reached)", probe.n_iter_, float("nan"), probe.loss_curve_[-1])]
    rows = []
    for diagnosis in (False, True):
        model, seconds = timed(lambda d=diagnosis: GDRegressor(max_iter=max(epochs, 1), tol=0.0,
                                                               compute_diagnosis=d), X, y)
        name = f'GDRegressor(lr="auto"{", compute_diagnosis=False" if not diagnosis else ""})'
        rows.append((name, epochs, seconds, mse(model, X, y)))
    return rows


def sgd_rows(X, y, targets):
    """SGDRegressor.partial_fit one epoch at a time (its schedule goes on across calls),
    timing the epochs only (not the MSE checks); one row per target, when first met."""
    model, seconds, rows = SGDRegressor(penalty=None, random_state=0), 0.0, {}
    for epoch in range(1, MAX_SGD_EPOCHS + 1):
        t0 = time.perf_counter()
        model.partial_fit(X, y)
        seconds += time.perf_counter() - t0
        loss = mse(model, X, y)
        rows.update({t: ("SGDRegressor", epoch, seconds, loss) for t in targets if t not in rows and loss <= t})
        if len(rows) == len(targets):
            break
    missed = (f"SGDRegressor (not reached in {MAX_SGD_EPOCHS} epochs)", MAX_SGD_EPOCHS, seconds, loss)
    return [rows.get(t, missed) for t in targets]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--excess", default="0.05,0.001", help="targets: L* (1 + excess), comma-separated")
    args = parser.parse_args()
    X, y = make_data(args.n, args.d)
    ls, ls_seconds = timed(LinearRegression, X, y)
    best = mse(ls, X, y)
    excesses = [float(e) for e in args.excess.split(",")]
    targets = [best * (1 + e) for e in excesses]
    probe = GDRegressor(tol=1e-12, max_iter=100_000, compute_diagnosis=False).fit(X, y)
    sgd = sgd_rows(X, y, targets)
    print(f"n={args.n}, d={args.d}, L* = {best:.6g} (LinearRegression, {ls_seconds:.3f} s)")
    print("| target MSE | method | epochs | seconds | training MSE / L* | vs LinearRegression |")
    print("|---|---|---|---|---|---|")
    for excess, target, sgd_row in zip(excesses, targets, sgd):
        rows = [("LinearRegression", "", ls_seconds, best), *gd_rows(X, y, target, probe), sgd_row]
        for name, epochs, seconds, loss in rows:
            print(f"| L* (1 + {excess:g}) | {name} | {epochs} | {seconds:.3f} | {loss / best:.6f} "
                  f"| {seconds / ls_seconds:.2f} |")


if __name__ == "__main__":
    main()
