"""Least squares and the reduced-rank optimum a bottleneck network can reach.

Every function takes the data as a :class:`~linlab.stats.Stats`, a
:class:`~linlab.data.Dataset` or a pair ``(X, Y)``. From raw rows the minimal loss is
computed from the residual itself; from statistics alone it is ‖Y‖² − ‖Ŷ‖², which loses
about ``eps·‖Y‖²`` to cancellation (clipped at zero).

Losses follow :mod:`linlab.losses`: ``reduction="sum"`` is ‖XW − Y‖²_F (the seed's),
``reduction="mean"`` divides it by the number of entries n·k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import REDUCTIONS, parse_widths
from ..data import Dataset
from ..stats import Stats


def as_stats(data) -> Stats:
    """The float64 statistics of `data` (a Stats, a Dataset or a pair ``(X, Y)``).

    Examples
    --------
    >>> import numpy as np
    >>> as_stats((np.eye(3), np.ones((3, 1)))).n
    3
    """
    if isinstance(data, Stats):
        return data
    if isinstance(getattr(data, "stats", None), Stats):  # sharded data, known by its statistics
        return data.stats
    X, Y = _rows(data)
    if X is None:
        raise ValueError(
            f"data={type(data).__name__} is not a Stats, a Dataset or a pair (X, Y); "
            "pass one of those."
        )
    return Stats.of(X, Y)


def _rows(data):
    """(X, Y) in float64 when `data` carries rows, else (None, None)."""
    if isinstance(data, Dataset):
        return data.X.astype(np.float64), data.Y.astype(np.float64)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, Y = (np.asarray(a, dtype=np.float64) for a in data)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"data=(X, Y) has shapes {X.shape} and {Y.shape}; expected (n, d) and (n, k) "
                "with the same n."
            )
        return X, Y
    return None, None


def check_reduction(reduction: str) -> None:
    """Raise a ValueError unless `reduction` is ``"sum"`` or ``"mean"``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of 'sum', 'mean'.")


def loss_scale(stats: Stats, reduction: str) -> float:
    """1 for ``"sum"``, 1/(n·k) for ``"mean"``: the factor from ‖R‖² to the loss."""
    check_reduction(reduction)
    return 1.0 if reduction == "sum" else 1.0 / (stats.n * stats.n_targets)


def centered(stats: Stats) -> Stats:
    """Statistics of the centred rows X − x̄, Y − ȳ (what an intercept leaves to fit).

    Notes
    -----
    A_c = A − n x̄x̄ᵀ,  C_c = C − n x̄ȳᵀ,  ‖Y_c‖² = ‖Y‖² − n‖ȳ‖².

    Examples
    --------
    >>> import numpy as np
    >>> X, Y = np.array([[1.0], [3.0]]), np.array([[2.0], [6.0]])
    >>> float(centered(Stats.of(X, Y)).A[0, 0])
    2.0
    """
    n = stats.n
    xbar, ybar = stats.sum_x / n, stats.sum_y / n
    return Stats(
        stats.A - n * np.outer(xbar, xbar), stats.C - n * np.outer(xbar, ybar),
        stats.yy - n * float(ybar @ ybar), n, np.zeros_like(stats.sum_x), np.zeros_like(stats.sum_y),
    )


def _pinv_solve(A: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, int]:
    """A⁺C and rank(A) for symmetric PSD A, dropping eigenvalues below d·eps·λmax."""
    mu, Q = np.linalg.eigh(A)
    keep = mu > max(A.shape[0], 1) * np.finfo(np.float64).eps * max(mu[-1], 0.0)
    W = Q[:, keep] @ ((Q[:, keep].T @ C) / mu[keep][:, None])
    return W, int(keep.sum())


@dataclass(frozen=True)
class LeastSquares:
    """The minimum-norm least-squares fit and its loss.

    ``coef`` has shape (d, k); ``intercept`` shape (k,) or None; ``loss`` is the minimal
    loss in ``reduction``; ``rank`` the rank of X (centred X with an intercept).
    """

    coef: np.ndarray
    intercept: np.ndarray | None
    loss: float
    rank: int
    reduction: str

    def predict(self, X) -> np.ndarray:
        """Fitted values X·coef (+ intercept)."""
        Yhat = np.asarray(X, dtype=np.float64) @ self.coef
        return Yhat if self.intercept is None else Yhat + self.intercept


def least_squares(data, *, intercept: bool = False, reduction: str = "sum") -> LeastSquares:
    """Minimum-norm solution of min_W ‖XW (+ 1bᵀ) − Y‖².

    Parameters
    ----------
    data : Stats, Dataset or (X, Y)
    intercept : bool
        Fit a free offset b as well (X and Y are centred, then b = ȳ − Wᵀx̄).
    reduction : {"sum", "mean"}

    Returns
    -------
    LeastSquares

    Notes
    -----
    W* = A⁺C with A = XᵀX, C = XᵀY (rows: ``np.linalg.lstsq``, the same min-norm W*);
    L* = ‖Y‖² − tr(W*ᵀC) = ‖Y − XW*‖².

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> fit = least_squares((X, X @ np.array([[2.0], [3.0]])))
    >>> np.round(fit.coef.ravel(), 6).tolist(), round(fit.loss, 9), fit.rank
    ([2.0, 3.0], 0.0, 2)
    """
    check_reduction(reduction)
    sharded = isinstance(getattr(data, "stats", None), Stats)  # known by its statistics: rows not read
    X, Y = (None, None) if sharded else _rows(data)
    stats = as_stats(data) if X is None else Stats.of(X, Y)
    fit_stats = centered(stats) if intercept else stats
    if X is not None:
        xbar, ybar = X.mean(0), Y.mean(0)
        Xc, Yc = (X - xbar, Y - ybar) if intercept else (X, Y)
        W, _, rank, _ = np.linalg.lstsq(Xc, Yc, rcond=None)
        residual = float(np.sum((Xc @ W - Yc) ** 2))
    else:
        W, rank = _pinv_solve(fit_stats.A, fit_stats.C)
        residual = max(fit_stats.yy - float(np.sum(W * fit_stats.C)), 0.0)
    b = None
    if intercept:
        b = (stats.sum_y - stats.sum_x @ W) / stats.n
    return LeastSquares(W, b, residual * loss_scale(stats, reduction), int(rank), reduction)


def fitted_values(data, *, intercept: bool = False) -> np.ndarray:
    """Ŷ = X W* (+ b*), the least-squares fitted values; needs the rows of X.

    Examples
    --------
    >>> import numpy as np
    >>> X, Y = np.array([[1.0], [2.0]]), np.array([[1.0], [3.0]])
    >>> fitted_values((X, Y)).ravel().round(6).tolist()
    [1.4, 2.8]
    """
    X, _ = _rows(data)
    if X is None:
        raise ValueError("fitted_values needs the rows of X; pass a Dataset or (X, Y), not Stats.")
    return least_squares(data, intercept=intercept).predict(X)


@dataclass(frozen=True)
class RankFloor:
    """The best a network with narrowest width ``width`` can do (Eckart-Young).

    ``coef`` (d, k) is the rank-``width`` optimum W_r (``intercept`` its offset),
    ``loss`` its loss, ``ls_loss`` the unconstrained minimum, ``fitted_sv2`` the squared
    singular values σ_i² of Ŷ (descending), ``fitted_rank`` the rank of Ŷ (the width
    needed to reach ``ls_loss``) and ``share`` = loss / ‖Y‖² (sum of squares).
    """

    width: int
    coef: np.ndarray
    intercept: np.ndarray | None
    loss: float
    ls_loss: float
    fitted_sv2: np.ndarray
    fitted_rank: int
    share: float
    reduction: str

    @property
    def gap(self) -> float:
        """loss − ls_loss: what the bottleneck costs."""
        return self.loss - self.ls_loss

    @property
    def binding(self) -> bool:
        """True when the width is below the rank of Ŷ, so the floor lies above L*."""
        return self.width < self.fitted_rank


def narrowest_width(widths) -> int:
    """min(widths): the largest rank the end-to-end product W1⋯WL can have.

    Examples
    --------
    >>> narrowest_width((10, 1, 2)), narrowest_width((10, 5, 2))
    (1, 2)
    """
    return min(parse_widths(widths))


def rank_floor(data, width, *, intercept: bool = False, reduction: str = "sum") -> RankFloor:
    """The reduced-rank optimum min_{rank W <= r} ‖XW (+ 1bᵀ) − Y‖².

    Parameters
    ----------
    data : Stats, Dataset or (X, Y)
    width : int, tuple of int or str
        r itself, or an architecture's widths such as (10, 1, 2) or "10,1,2" (r = the
        narrowest width).
    intercept : bool
        The model has a free offset (any network whose last layer has a bias).
    reduction : {"sum", "mean"}

    Returns
    -------
    RankFloor

    Notes
    -----
    With Ŷ = XW* = U Σ Vᵀ (Eckart-Young): W_r = W* V_r V_rᵀ and
    L_r = L* + Σ_{i>r} σ_i². The σ_i², V come from ŶᵀŶ = W*ᵀ A W* (k × k), so statistics
    suffice. Gradient descent on a network of narrowest width r stalls at L_r.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.eye(3)
    >>> floor = rank_floor((X, np.diag([3.0, 2.0, 1.0])), 1)
    >>> floor.loss, floor.fitted_rank, round(floor.share, 4)
    (5.0, 3, 0.3571)
    """
    r = narrowest_width(width) if isinstance(width, (tuple, list, str)) else width
    if isinstance(r, bool) or int(r) != r or r < 1:
        raise ValueError(f"width={width!r} must be a positive integer or a tuple of widths.")
    r = int(r)
    stats = as_stats(data)
    ls = least_squares(data, intercept=intercept, reduction=reduction)
    fit_stats = centered(stats) if intercept else stats
    sv2, V = np.linalg.eigh(ls.coef.T @ fit_stats.A @ ls.coef)  # ŶᵀŶ, ascending
    sv2, V = np.clip(sv2[::-1], 0.0, None), V[:, ::-1]
    fitted_rank = int(np.sum(sv2 > max(sv2.size, 1) * np.finfo(np.float64).eps * max(sv2[0], 0.0)))
    W_r = ls.coef @ V[:, :r] @ V[:, :r].T
    b_r = None if not intercept else (stats.sum_y - stats.sum_x @ W_r) / stats.n
    scale = loss_scale(stats, reduction)
    loss = ls.loss + scale * float(np.sum(sv2[r:]))
    return RankFloor(r, W_r, b_r, loss, ls.loss, sv2, fitted_rank,
                     loss / (scale * stats.yy) if stats.yy > 0 else 0.0, reduction)
