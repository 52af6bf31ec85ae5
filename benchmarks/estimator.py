"""GDRegressor(lr="auto") at depth 1 against scikit-learn's SGDRegressor and LinearRegression.

All three fit the same data (n rows, d correlated features, one target with noise) to
the same training loss: the least-squares MSE L* (LinearRegression's, exact) times
1 + EXCESS. Each iterative method is timed on the fit that stops at the first epoch whose
training MSE meets that target:

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

EXCESS = 1e-3  # the target: training MSE <= L* (1 + EXCESS)
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


def gd_rows(X, y, target):
    probe = GDRegressor(tol=1e-12, max_iter=100_000, compute_diagnosis=False).fit(X, y)
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


def sgd_row(X, y, target):
    """SGDRegressor.partial_fit one epoch at a time (its schedule goes on across calls),
    timing the epochs only, until the training MSE meets `target`."""
    model, seconds = SGDRegressor(penalty=None, random_state=0), 0.0
    for epoch in range(1, MAX_SGD_EPOCHS + 1):
        t0 = time.perf_counter()
        model.partial_fit(X, y)
        seconds += time.perf_counter() - t0
        if mse(model, X, y) <= target:
            return "SGDRegressor", epoch, seconds, mse(model, X, y)
    return f"SGDRegressor (not reached in {MAX_SGD_EPOCHS} epochs)", MAX_SGD_EPOCHS, seconds, mse(model, X, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=20)
    args = parser.parse_args()
    X, y = make_data(args.n, args.d)
    ls, ls_seconds = timed(LinearRegression, X, y)
    best = mse(ls, X, y)
    target = best * (1 + EXCESS)
    rows = [("LinearRegression", "", ls_seconds, best), *gd_rows(X, y, target), sgd_row(X, y, target)]
    print(f"n={args.n}, d={args.d}: target training MSE {target:.6g} = L* (1 + {EXCESS:g}), L* = {best:.6g}")
    print("| method | epochs | seconds | training MSE / L* | vs LinearRegression |\n|---|---|---|---|---|")
    for row in rows:
        name, epochs, seconds, loss = row
        print(f"| {name} | {epochs} | {seconds:.3f} | {loss / best:.6f} | {seconds / ls_seconds:.2f} |")


if __name__ == "__main__":
    main()
