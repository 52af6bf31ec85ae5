"""Synthetic regression problems with a known answer."""

from __future__ import annotations

import math
import os

import numpy as np

from .dataset import Dataset

WEIGHT_DISTRIBUTIONS = ("normal", "uniform", "integer")


def synthetic(
    n: int = 1000,
    d: int = 10,
    k: int = 2,
    *,
    rank: int | None = None,
    weights: str = "normal",
    noise: float = 0.0,
    condition: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Draw X with a chosen conditioning and Y = X·W + noise for a W of chosen rank.

    Parameters
    ----------
    n, d, k : int
        Samples, features and targets.
    rank : int, optional
        Rank of the true W (default: full, ``min(d, k)``).
    weights : {"normal", "uniform", "integer"}
        Entries of W's factors: standard normal, uniform on [-1, 1], or integers in
        [0, 20) as in the seed (integer draws ignore `rank` when it is full).
    noise : float
        Standard deviation of Gaussian noise added to Y.
    condition : float
        Condition number of the feature covariance (>= 1); its eigenvalues are spread
        geometrically from 1 to `condition` along random orthogonal directions.
    seed : int
        Seed of the private generator; no global random state is used.

    Notes
    -----
    X = Z Σ^{1/2} Qᵀ with Z standard normal, so Cov(x) = Q Σ Qᵀ and cond(Cov) = `condition`.
    W = A B with A of shape (d, rank) and B of shape (rank, k).

    Examples
    --------
    >>> ds = synthetic(n=200, d=6, k=3, rank=1, seed=0)
    >>> ds.X.shape, ds.Y.shape, int(np.linalg.matrix_rank(ds.W_true))
    ((200, 6), (200, 3), 1)
    """
    for name, value in (("n", n), ("d", d), ("k", k)):
        if not _whole(value) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    n, d, k = int(n), int(d), int(k)
    full = min(d, k)
    rank = full if rank is None else rank
    if not _whole(rank) or not 0 <= rank <= full:
        raise ValueError(f"rank={rank!r} must be an integer in [0, min(d, k)] = [0, {full}].")
    rank = int(rank)
    if weights not in WEIGHT_DISTRIBUTIONS:
        raise ValueError(f"weights={weights!r} is not one of {WEIGHT_DISTRIBUTIONS}.")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise={noise} must be a finite number >= 0.")
    if not (np.isfinite(condition) and condition >= 1):
        raise ValueError(f"condition={condition} must be a finite number >= 1.")

    _check_fits(n, d, k)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.geomspace(1.0, condition, d) if d > 1 else np.ones(1)
    X = rng.standard_normal((n, d)) * np.sqrt(spectrum) @ Q.T  # (n, d)

    if weights == "integer" and rank == full:
        W = rng.integers(0, 20, size=(d, k)).astype(float)
    else:
        draw = rng.standard_normal if weights == "normal" else (lambda s: rng.uniform(-1, 1, s))
        if weights == "integer":
            draw = lambda s: rng.integers(0, 5, size=s).astype(float)  # noqa: E731
        W = draw((d, rank)) @ draw((rank, k))  # (d, k), rank <= `rank`
    Y = X @ W + noise * rng.standard_normal((n, k))
    prov = {
        "source": "synthetic", "n": n, "d": d, "k": k, "rank": rank, "weights": weights,
        "noise": noise, "condition": condition, "seed": seed,
    }
    return Dataset(X, Y, W, name=f"synthetic(n={n},d={d},k={k})", provenance=prov)


def _check_fits(n: int, d: int, k: int) -> None:
    # X, one temporary of its size and Y, in float64, must fit in this machine's memory
    # (and the d x d rotation, three times over while it is drawn)
    rotation = 24 * d * d
    needed = 8 * n * (2 * d + k) + rotation
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    if memory and needed > memory:
        fix = (f"use n <= {(memory - rotation) // (8 * (2 * d + k)):,}" if rotation < memory // 2
               else f"use d <= {math.isqrt(memory // 48):,}")
        raise ValueError(
            f"synthetic data of n={n:,}, d={d:,}, k={k:,} needs about {needed / 1024**3:,.3g} GiB, more than this "
            f"machine's {memory / 1024**3:,.3g} GiB of memory; {fix}."
        )


def _whole(value) -> bool:
    # an integer, or a float with an integral value (5.0); not a bool, a string or nan
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and int(value) == value)
