"""The optimum of the ℓp and huber losses for a linear model: convex, so a quasi-Newton
solver finds it (scipy's L-BFGS-B), started from the least-squares solution.

Both losses are convex in (W, b): a sum of convex functions of the residuals XW + 1bᵀ − Y,
which are linear in the parameters. Any network whose narrowest width is at least
min(d, k) reaches every W, so this is also the lowest loss such a network can reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..losses import loss_grad, loss_value
from .least_squares import _rows, least_squares


@dataclass
class ConvexOptimum:
    """min over (W, b) of the loss: ``coef`` (d, k), ``intercept`` (k,) or None, ``loss``."""

    coef: np.ndarray
    intercept: np.ndarray | None
    loss: float
    converged: bool


def convex_optimum(data, loss: str, *, reduction: str = "sum", p: float = 4.0, delta: float = 1.0,
                   intercept: bool = False, max_iter: int = 5000) -> ConvexOptimum:
    """The minimum of the ℓp (p >= 1) or huber loss of X W (+ 1bᵀ) against Y.

    Parameters
    ----------
    data : Dataset or (X, Y)
        The rows themselves (the loss is not a function of XᵀX alone).
    loss : {"lp", "huber", "squared"}
    reduction, p, delta, intercept
        As in :class:`~linlab.config.TrainConfig`.

    Returns
    -------
    ConvexOptimum

    Notes
    -----
    ℓ(W, b) = Σ φ(r_ij), r = XW + 1bᵀ − Y, with φ(r) = |r|^p or huber_δ(r); ∇_W = Xᵀφ'(r),
    ∇_b = 1ᵀφ'(r). Solved by L-BFGS-B from the least-squares W*.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0], [1.0], [1.0]]); Y = np.array([[0.0], [0.0], [3.0]])
    >>> round(convex_optimum((X, Y), "lp", p=1.0).loss, 6)  # the median: |0|+|0|+|3|
    3.0
    """
    from scipy.optimize import minimize

    X, Y = _rows(data)
    if X is None:
        raise ValueError("the ℓp and huber optima need the rows of X and Y; pass a Dataset or (X, Y).")
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    d, k = X.shape[1], Y.shape[1]
    ls = least_squares((X, Y), intercept=intercept)
    start = np.concatenate([ls.coef.ravel(), ls.intercept if intercept else []])

    def objective(theta):
        W, b = theta[:d * k].reshape(d, k), theta[d * k:]
        R = X @ W - Y + (b if intercept else 0.0)
        G = loss_grad(R, loss, reduction, p, delta)
        grad = [(X.T @ G).ravel()] + ([G.sum(axis=0)] if intercept else [])
        return float(loss_value(R, loss, reduction, p, delta)), np.concatenate(grad)

    with np.errstate(all="ignore"):
        out = minimize(objective, start, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-12})
    W, b = out.x[:d * k].reshape(d, k), out.x[d * k:] if intercept else None
    return ConvexOptimum(W, b, float(out.fun), bool(out.success))
