"""Depth 1 (plain regression, squared loss): the Hessian spectrum, learning-rate bounds
and the exact trajectory of gradient descent, without iterating.

The loss ℓ(W) = s·‖XW − Y‖² (s = 1 for ``"sum"``, 1/(n·k) for ``"mean"``) is quadratic,
with the constant Hessian H = 2s·XᵀX ⊗ I_k: each eigenvalue λ_i of 2s·XᵀX appears once per
target column. With a bias, X is augmented with a column of ones. Gradient descent
W ← W − η∇ℓ moves the error E = W − W* along XᵀX's eigenvectors q_i independently:
q_iᵀE_t = (1 − ηλ_i)^t q_iᵀE_0, so

    ℓ(W_t) = L* + Σ_i c_i (1 − ηλ_i)^{2t},   c_i = (λ_i / 2)‖q_iᵀE_0‖².

Eigen-directions with λ_i = 0 (rank-deficient X) never move and never change the loss,
so every bound below is taken over the nonzero spectrum.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..stats import Stats
from .least_squares import as_stats, least_squares, loss_scale


def _hessian_stats(data, intercept: bool) -> Stats:
    stats = as_stats(data)
    return stats.with_intercept() if intercept else stats


def hessian_eigh(data, *, reduction: str = "sum", intercept: bool = False):
    """Eigenvalues λ (ascending) and eigenvectors Q of the block 2s·XᵀX of the Hessian.

    Returns
    -------
    lam : ndarray of shape (d,) or (d + 1,) with an intercept
    Q : ndarray of shape (len(lam), len(lam))

    Examples
    --------
    >>> import numpy as np
    >>> lam, Q = hessian_eigh((np.diag([1.0, 2.0]), np.zeros((2, 1))))
    >>> lam.tolist()
    [2.0, 8.0]
    """
    stats = _hessian_stats(data, intercept)
    mu, Q = np.linalg.eigh(stats.A)
    mu = np.clip(mu, 0.0, None)
    mu[mu <= max(mu.size, 1) * np.finfo(np.float64).eps * mu[-1]] = 0.0  # rounding, not curvature
    return 2.0 * loss_scale(stats, reduction) * mu, Q


def hessian_spectrum(data, *, reduction: str = "sum", intercept: bool = False) -> np.ndarray:
    """The distinct eigenvalues of the depth-1 Hessian (each has multiplicity k).

    Notes
    -----
    H = 2s·XᵀX ⊗ I_k, s = 1 (sum) or 1/(n·k) (mean).

    Examples
    --------
    >>> from linlab.data import seed_dataset
    >>> lam = hessian_spectrum(seed_dataset())
    >>> round(float(lam[0]), 1), round(float(lam[-1]), 1)
    (1643.8, 2396.8)
    """
    return hessian_eigh(data, reduction=reduction, intercept=intercept)[0]


@dataclass(frozen=True)
class LRBounds:
    """Learning-rate facts of a quadratic with nonzero curvatures in [lam_min, lam_max].

    ``stable_lr`` = 2/λmax (GD diverges above it), ``optimal_lr`` = 2/(λmin + λmax),
    ``rate`` = (κ − 1)/(κ + 1) the per-epoch contraction of the error at ``optimal_lr``
    (the loss contracts by rate²), ``momentum_lr`` = 4/(√λmax + √λmin)² and ``momentum``
    = ((√κ − 1)/(√κ + 1))² Polyak's heavy-ball settings, contracting by ``momentum_rate``
    = (√κ − 1)/(√κ + 1).
    """

    lam_min: float
    lam_max: float
    rank: int
    condition: float
    stable_lr: float
    optimal_lr: float
    rate: float
    momentum_lr: float
    momentum: float
    momentum_rate: float

    def to_dict(self) -> dict:
        return {key: float(v) if key != "rank" else int(v) for key, v in asdict(self).items()}


def bounds_from_spectrum(lam) -> LRBounds:
    """:class:`LRBounds` of the nonzero part of a Hessian spectrum `lam`.

    Examples
    --------
    >>> b = bounds_from_spectrum([0.0, 1.0, 9.0])
    >>> b.stable_lr, b.optimal_lr, b.rate, b.momentum_lr, b.momentum
    (0.2222222222222222, 0.2, 0.8, 0.25, 0.25)
    """
    lam = np.asarray(lam, dtype=np.float64)
    if not np.isfinite(lam).all():
        raise ValueError("the Hessian is not finite: XᵀX overflows float64, so the data's values are too "
                         "large (beyond about 1e154); rescale them, or standardize (--standardize).")
    nonzero = lam[lam > 0]
    if nonzero.size == 0:
        raise ValueError("the Hessian is zero (X is all zeros): no direction moves, so no lr is defined.")
    m, L = float(nonzero.min()), float(nonzero.max())
    kappa = L / m
    sq = math.sqrt(kappa)
    return LRBounds(
        lam_min=m, lam_max=L, rank=int(nonzero.size), condition=kappa, stable_lr=2.0 / L,
        optimal_lr=2.0 / (m + L), rate=(kappa - 1) / (kappa + 1),
        momentum_lr=4.0 / (math.sqrt(L) + math.sqrt(m)) ** 2,
        momentum=((sq - 1) / (sq + 1)) ** 2, momentum_rate=(sq - 1) / (sq + 1),
    )


def lr_bounds(data, *, reduction: str = "sum", intercept: bool = False,
              weight_decay: float = 0.0) -> LRBounds:
    """Stability bound, optimal constant lr and heavy-ball settings for depth 1.

    Parameters
    ----------
    data : Stats, Dataset or (X, Y)
    reduction : {"sum", "mean"}
    intercept : bool
        The model has a bias (X is augmented with ones).
    weight_decay : float
        Coupled L2 decay wd adds wd·I to the Hessian (every direction then moves).

    Notes
    -----
    Over the nonzero eigenvalues [m, L] of H: GD is stable iff η < 2/L; the error
    contracts by max_i |1 − ηλ_i|, minimised at η = 2/(m + L) with rate (κ−1)/(κ+1),
    κ = L/m. Heavy ball is optimal at η = 4/(√L + √m)², μ = ((√κ−1)/(√κ+1))².

    Examples
    --------
    >>> from linlab.data import seed_dataset
    >>> b = lr_bounds(seed_dataset())
    >>> f"{b.stable_lr:.3g} {b.optimal_lr:.3g}"
    '0.000834 0.000495'
    """
    lam = hessian_spectrum(data, reduction=reduction, intercept=intercept)
    if weight_decay:
        lam = lam + weight_decay
    return bounds_from_spectrum(lam)


def heavy_ball_rate(lr: float, momentum: float, lam) -> float:
    """Spectral radius of heavy-ball GD on curvatures `lam` (the per-epoch contraction).

    Notes
    -----
    Per mode, e_{t+1} = (1 + μ − ηλ) e_t − μ e_{t−1}; the radius is the largest root
    modulus of z² − (1 + μ − ηλ) z + μ (√μ when the roots are complex). With μ = 0 it is
    |1 − ηλ|. torch's SGD momentum (b ← μb + g, p ← p − ηb) is this recursion.

    Examples
    --------
    >>> round(heavy_ball_rate(0.25, 0.25, [1.0, 9.0]), 12)
    0.5
    """
    lam = np.asarray(lam, dtype=np.float64)
    lam = lam[lam > 0]
    a = 1.0 + momentum - lr * lam
    disc = a * a - 4.0 * momentum
    root = np.sqrt(np.clip(disc, 0.0, None))
    radius = np.where(disc < 0, math.sqrt(momentum), (np.abs(a) + root) / 2.0)
    return float(radius.max()) if radius.size else 0.0


def momentum_lr(lam, momentum: float) -> float:
    """The constant lr that contracts heavy-ball GD fastest for a given momentum μ.

    Notes
    -----
    If μ >= μ* = ((√κ−1)/(√κ+1))², every η in [(1−√μ)²/m, (1+√μ)²/L] contracts at √μ and
    Polyak's 4/(√L+√m)² lies in it: that is returned. For smaller μ the best η balances
    the radius at m and at L; it is found by bounded scalar minimisation.

    Examples
    --------
    >>> momentum_lr([1.0, 9.0], 0.25), round(momentum_lr([1.0, 9.0], 0.0), 6)
    (0.25, 0.2)
    """
    from scipy.optimize import minimize_scalar

    b = bounds_from_spectrum(lam)
    if momentum >= b.momentum:
        return b.momentum_lr
    ends = [b.lam_min, b.lam_max]
    res = minimize_scalar(lambda eta: heavy_ball_rate(eta, momentum, ends), method="bounded",
                          bounds=(0.0, 2.0 * (1.0 + momentum) / b.lam_max), options={"xatol": 1e-12 / b.lam_max})
    return float(res.x)


@dataclass(frozen=True)
class Modes:
    """The depth-1 loss as modes: ℓ(W_t) = floor + Σ_i weight_i (1 − ηλ_i)^{2t}."""

    lam: np.ndarray  # (m,) nonzero Hessian eigenvalues, with multiplicity over targets merged
    weight: np.ndarray  # (m,) c_i >= 0
    floor: float  # L*, the minimal loss

    def loss(self, lr: float, t) -> np.ndarray:
        """ℓ(W_t) for integer epochs `t` (array-like)."""
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            decay = (1.0 - lr * self.lam)[:, None] ** (2.0 * t.reshape(1, -1))
            total = self.floor + self.weight @ decay
        return total.reshape(t.shape)


def modes(data, W0, *, b0=None, reduction: str = "sum") -> Modes:
    """Split the loss at the start (W0, b0) into the Hessian's eigen-modes.

    Parameters
    ----------
    data : Stats, Dataset or (X, Y)
    W0 : ndarray of shape (d, k)
    b0 : ndarray of shape (k,), optional
        The starting bias; given, the model has an intercept.
    reduction : {"sum", "mean"}

    Notes
    -----
    With Ã = [X, 1]ᵀ[X, 1] (or XᵀX), Ã = Σ μ_i q_i q_iᵀ and E_0 = W̃_0 − W̃*:
    λ_i = 2sμ_i and c_i = s μ_i ‖q_iᵀE_0‖².

    Examples
    --------
    >>> import numpy as np
    >>> md = modes((np.eye(2), np.ones((2, 1))), np.zeros((2, 1)))
    >>> md.lam.tolist(), md.weight.tolist(), md.floor
    ([2.0, 2.0], [1.0, 1.0], 0.0)
    """
    intercept = b0 is not None
    stats = as_stats(data)
    lam, Q = hessian_eigh(stats, reduction=reduction, intercept=intercept)
    ls = least_squares(data, intercept=intercept, reduction=reduction)
    W0 = np.asarray(W0, dtype=np.float64)
    if W0.shape != ls.coef.shape:
        raise ValueError(f"W0 has shape {W0.shape}; expected (n_features, n_targets) = {ls.coef.shape}.")
    E0 = W0 - ls.coef
    if intercept:
        b0 = np.asarray(b0, dtype=np.float64)
        if b0.shape != ls.intercept.shape:
            raise ValueError(f"b0 has shape {b0.shape}; expected (n_targets,) = {ls.intercept.shape}.")
        E0 = np.vstack([E0, b0[None, :] - ls.intercept])
    keep = lam > 0
    proj = Q[:, keep].T @ E0  # (m, k)
    weight = 0.5 * lam[keep] * np.sum(proj * proj, axis=1)
    return Modes(lam[keep], weight, ls.loss)


def loss_forecast(data, W0, lr: float, epochs: int, *, b0=None, reduction: str = "sum") -> np.ndarray:
    """The loss of full-batch GD at every epoch 0..epochs, in closed form.

    Returns an array of shape (epochs + 1,) aligned with ``RunResult.history``.

    Notes
    -----
    ℓ(W_t) = L* + Σ_i c_i (1 − ηλ_i)^{2t} (see :func:`modes`).

    Examples
    --------
    >>> import numpy as np
    >>> loss_forecast((np.eye(2), np.ones((2, 1))), np.zeros((2, 1)), 0.25, 2).tolist()
    [2.0, 0.5, 0.125]
    """
    _check_lr(lr)
    return modes(data, W0, b0=b0, reduction=reduction).loss(lr, np.arange(int(epochs) + 1))


def _check_lr(lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a finite number > 0.")


def epochs_to_tol(data, W0, lr: float, tol: float, *, b0=None, reduction: str = "sum",
                  max_epochs: int = 10**12) -> int | None:
    """The first epoch t with ℓ(W_t) <= tol under full-batch GD, found without iterating.

    Returns None when the loss never gets there (tol below L*, or divergence first).

    Notes
    -----
    f(t) = Σ_i c_i r_i^t, r_i = (1 − ηλ_i)², is convex in t (a positive sum of
    exponentials), so {t : f(t) <= tol − L*} is an interval. Its left end is located by
    bisection on f itself (O(log t) evaluations, each O(d)); when some r_i > 1 the
    minimiser of f is bisected first. The answer is the integer epoch GD reports.

    Examples
    --------
    >>> import numpy as np
    >>> epochs_to_tol((np.eye(2), np.ones((2, 1))), np.zeros((2, 1)), 0.25, 0.1)
    3
    """
    _check_lr(lr)
    md = modes(data, W0, b0=b0, reduction=reduction)
    f = lambda t: float(md.loss(lr, [t])[0])  # noqa: E731
    if f(0) <= tol:
        return 0
    r = (1.0 - lr * md.lam) ** 2
    active = md.weight > 0
    if tol <= md.floor or not active.any():
        return None
    lo, hi = 0, int(max_epochs)  # f(lo) > tol throughout
    shrink = float(r[active].max())
    if shrink > 1.0:  # f rises eventually: search only up to its minimum
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if f(mid + 1) < f(mid) else (lo, mid)
    elif 0.0 < shrink < 1.0:  # f(t) − L* <= (f(0) − L*)·shrink^t bounds the answer
        bound = math.log((tol - md.floor) / (f(0) - md.floor)) / math.log(shrink)
        hi = min(hi, int(math.ceil(bound)) + 1)
    if f(hi) > tol:
        return None
    lo = 0
    while hi - lo > 1:  # invariant: f(lo) > tol >= f(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if f(mid) <= tol else (mid, hi)
    return hi
