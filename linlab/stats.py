"""Sufficient statistics of a least-squares problem, in one streaming pass.

For squared loss every quantity linlab needs (loss, gradient, Hessian, optimum) is a
function of A = XᵀX, C = XᵀY, ‖Y‖², n, Σx and Σy. They are accumulated in float64 chunk
by chunk and merge across shards by addition, so data larger than memory, or spread over
machines, is summarised exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stats:
    """XᵀX, XᵀY, ‖Y‖², n, Σx and Σy of a dataset, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> X, Y = np.arange(6.).reshape(3, 2), np.ones((3, 1))
    >>> s = Stats.of(X[:2], Y[:2]) + Stats.of(X[2:], Y[2:])
    >>> bool(np.allclose(s.A, X.T @ X)), s.n
    (True, 3)
    """

    A: np.ndarray  # (d, d) XᵀX
    C: np.ndarray  # (d, k) XᵀY
    yy: float  # ‖Y‖²_F
    n: int
    sum_x: np.ndarray  # (d,)
    sum_y: np.ndarray  # (k,)

    @classmethod
    def of(cls, X, Y) -> Stats:
        """Statistics of one chunk of rows."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"X and Y have shapes {X.shape} and {Y.shape}; expected (n, d) and (n, k) with the "
                "same n. Use Y.reshape(-1, 1) for a single target."
            )
        return cls(X.T @ X, X.T @ Y, float(np.sum(Y * Y)), X.shape[0], X.sum(0), Y.sum(0))

    @classmethod
    def stream(cls, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> Stats:
        """Accumulate over (X, Y) chunks, e.g. Parquet row groups or memmap slices."""
        total = None
        for X, Y in chunks:
            part = cls.of(X, Y)
            total = part if total is None else total + part
        if total is None:
            raise ValueError("no chunks were given; a dataset needs at least one row.")
        return total

    def __add__(self, other: Stats) -> Stats:
        return Stats(
            self.A + other.A, self.C + other.C, self.yy + other.yy, self.n + other.n,
            self.sum_x + other.sum_x, self.sum_y + other.sum_y,
        )

    @property
    def n_features(self) -> int:
        return self.A.shape[0]

    @property
    def n_targets(self) -> int:
        return self.C.shape[1]

    def with_intercept(self) -> Stats:
        """Statistics of [X, 1] (a column of ones appended), for models with a bias."""
        d = self.n_features
        A = np.empty((d + 1, d + 1))
        A[:d, :d], A[:d, d], A[d, :d], A[d, d] = self.A, self.sum_x, self.sum_x, self.n
        C = np.vstack([self.C, self.sum_y[None, :]])
        return Stats(A, C, self.yy, self.n, np.append(self.sum_x, self.n), self.sum_y)

    def squared_loss(self, W) -> float:
        """‖XW − Y‖² = tr(WᵀAW) − 2tr(WᵀC) + ‖Y‖², for W of shape (d, k)."""
        W = np.asarray(W, dtype=np.float64)
        return float(np.sum(W * (self.A @ W)) - 2.0 * np.sum(W * self.C) + self.yy)
