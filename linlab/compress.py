"""Condensing a trained deep linear network to the smallest hidden width that keeps its loss.

A network's function is its end-to-end matrix W = W1⋯WL (and offset), whose rank is at
most min(d, k). Truncating W to rank r in the metric of the predictions,
W_r = W V_r V_rᵀ with V the right singular vectors of X·W (Eckart-Young on the fitted
values), is the rank-r map that moves the predictions least. The smallest r whose W_r
keeps the training loss within ``tol`` of the original is found from those singular
values and then checked by evaluating the loss on the rows; W_r is re-factorised into a
balanced network of the same depth and hidden width r:

    W_r = U Σ Vᵀ,  W1 = U Σ^{1/L},  Wj = Σ^{1/L} (j = 2..L−1),  WL = Σ^{1/L} Vᵀ,

so that Wjᵀ Wj = W_{j+1} W_{j+1}ᵀ = Σ^{2/L} (Arora et al. 2018's balancedness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import loss_value
from .models import end_to_end, end_to_end_bias


@dataclass
class Compression:
    """A condensed network and the evidence for its width.

    ``losses[r - 1]`` is the evaluated training loss of the rank-r truncation;
    ``singular_values`` those of the fitted values X·W (descending), whose tail decides
    what a truncation costs.
    """

    widths: tuple[int, ...]  # the condensed architecture (d, r, ..., r, k)
    factors: list[np.ndarray]
    biases: list[np.ndarray] | None
    loss: float  # the condensed network's training loss, evaluated on the rows
    original_loss: float
    original_widths: tuple[int, ...]
    singular_values: np.ndarray
    losses: list[float]
    tol: float | None

    @property
    def width(self) -> int:
        return self.widths[1]

    def to_dict(self) -> dict:
        from .models import n_params

        return {"widths": list(self.widths), "width": self.width, "loss": self.loss,
                "original_loss": self.original_loss, "original_widths": list(self.original_widths),
                "params": n_params(self.widths, self.biases is not None),
                "original_params": n_params(self.original_widths, self.biases is not None),
                "singular_values": self.singular_values.tolist(), "losses": self.losses, "tol": self.tol}


def truncate(W: np.ndarray, X: np.ndarray, r: int) -> np.ndarray:
    """W V_r V_rᵀ: the rank-r map closest to W in the predictions X·W.

    Examples
    --------
    >>> W = np.array([[1.0, 0.0], [0.0, 0.1]])
    >>> truncate(W, np.eye(2), 1).round(6).tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    _, _, Vt = np.linalg.svd(X @ W, full_matrices=False)
    V = Vt[:r].T
    return W @ V @ V.T


def balanced_factors(W: np.ndarray, depth: int, r: int) -> list[np.ndarray]:
    """Factors of depth `depth` and hidden width `r` whose product is the rank-r matrix `W`,
    balanced (Wjᵀ Wj = W_{j+1} W_{j+1}ᵀ).

    Examples
    --------
    >>> W = np.outer([1.0, 2.0, 2.0], [3.0, 4.0])
    >>> f = balanced_factors(W, 2, 1)
    >>> [x.shape for x in f], bool(np.allclose(f[0] @ f[1], W)), bool(np.allclose(f[0].T @ f[0], f[1] @ f[1].T))
    ([(3, 1), (1, 2)], True, True)
    """
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    root = np.diag(s[:r] ** (1.0 / depth))
    return [U[:, :r] @ root] + [root.copy() for _ in range(depth - 2)] + [root @ Vt[:r]]


def _evaluate(X, Y, W, offset, loss: str, reduction: str, p: float, delta: float) -> float:
    pred = X @ W + (0.0 if offset is None else offset)
    return float(loss_value(pred - Y, loss, reduction, p, delta))


def compress(X, Y, factors, biases=None, *, tol: float | None = None, width: int | None = None,
             loss: str = "squared", reduction: str = "sum", p: float = 4.0, delta: float = 1.0) -> Compression:
    """Condense a network to the smallest hidden width whose loss stays within `tol`, or to `width`.

    Parameters
    ----------
    X, Y : ndarray of shape (n, d) and (n, k)
        The rows the loss is evaluated on (the training data).
    factors, biases
        The trained network, W1..WL (depth >= 2).
    tol : float, optional
        The condensed loss may exceed the original by at most `tol`.
    width : int, optional
        Condense to this hidden width instead (at most min(d, k)).
    loss, reduction, p, delta
        The training loss, as in :class:`~linlab.config.TrainConfig`.

    Returns
    -------
    Compression

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 4))
    >>> W1, W2 = rng.standard_normal((4, 8)), rng.standard_normal((8, 1)) @ rng.standard_normal((1, 3))
    >>> c = compress(X, X @ W1 @ W2, [W1, W2], tol=1e-9)
    >>> c.widths, c.loss < 1e-9
    ((4, 1, 3), True)
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    factors = [np.asarray(W, dtype=np.float64) for W in factors]
    depth, (d, k) = len(factors), (factors[0].shape[0], factors[-1].shape[1])
    if depth < 2:
        raise ValueError("a depth-1 model has no hidden width to condense; compress a network of depth >= 2.")
    if (tol is None) == (width is None):
        raise ValueError("give exactly one of tol (the loss increase allowed) and width (the hidden width).")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol={tol!r} must be a finite number >= 0, e.g. 1e-4.")
    most = min(d, k)
    if width is not None and not (isinstance(width, (int, np.integer)) and 1 <= width <= most):
        raise ValueError(f"width={width!r} must be an integer from 1 to min(d, k) = {most}: W1⋯WL has rank at "
                         f"most {most}, so a wider network is no smaller.")
    W = end_to_end(factors)
    offset = None if biases is None else end_to_end_bias(factors, biases)
    if not np.all(np.isfinite(W)):
        raise ValueError("the network's factors hold inf or nan (a diverged run); condense a finite one.")
    args = (loss, reduction, p, delta)
    original = _evaluate(X, Y, W, offset, *args)
    losses = [_evaluate(X, Y, truncate(W, X, r), offset, *args) for r in range(1, most + 1)]
    if width is None:  # the smallest width within tol; full rank reproduces W itself
        width = next((r for r, value in enumerate(losses, 1) if value <= original + tol), most)
    W_r = truncate(W, X, width)
    new_factors = balanced_factors(W_r, depth, width)
    new_biases = None if biases is None else [np.zeros(width)] * (depth - 1) + [offset]
    widths = (d, *[width] * (depth - 1), k)
    condensed = _evaluate(X, Y, end_to_end(new_factors), offset, *args)  # checked on the factors themselves
    sv = np.linalg.svd(X @ W, compute_uv=False)
    return Compression(widths, new_factors, new_biases, condensed, original,
                       tuple([d, *[f.shape[1] for f in factors[:-1]], k]), sv, losses, tol)
