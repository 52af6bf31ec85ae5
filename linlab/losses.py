"""Losses of the residual R = predictions − Y, for NumPy arrays and torch tensors alike.

    squared:  ℓ(R) = Σ r²                     ∂ℓ/∂R = 2R
    lp:       ℓ(R) = Σ |r|^p   (p >= 1)       ∂ℓ/∂R = p |R|^{p−1} sign(R)
    huber:    ℓ(R) = Σ h_δ(r),  h_δ(r) = r²/2 if |r| < δ else δ(|r| − δ/2)
                                             ∂ℓ/∂R = clip(R, −δ, δ)

``reduction="mean"`` divides by the number of entries n·k, as ``torch.nn.MSELoss`` does.
The huber loss is torch's ``HuberLoss`` (half the squared error near zero).
"""

from __future__ import annotations

import functools

import numpy as np

from .config import REDUCTIONS


def _is_numpy(a) -> bool:
    return isinstance(a, (np.ndarray, np.generic))


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of 'sum', 'mean'.")


def loss_value(R, loss: str = "squared", reduction: str = "sum", p: float = 4.0, delta: float = 1.0):
    """ℓ(R) as a 0-d array or tensor (differentiable for torch tensors).

    Examples
    --------
    >>> import numpy as np
    >>> float(loss_value(np.array([[1.0, -2.0]])))
    5.0
    >>> float(loss_value(np.array([[1.0, -2.0]]), "huber", "mean", delta=1.0))
    1.0
    """
    if loss == "squared":
        total = (R * R).sum()
    elif loss == "lp":
        total = (abs(R) ** p).sum()
    elif loss == "huber":
        a = abs(R)
        where = np.where if _is_numpy(R) else __import__("torch").where
        total = where(a < delta, 0.5 * R * R, delta * (a - 0.5 * delta)).sum()
    else:
        raise ValueError(f"loss={loss!r} is not one of 'squared', 'lp', 'huber'.")
    _check_reduction(reduction)
    return total / R.size if reduction == "mean" and _is_numpy(R) else (
        total / R.numel() if reduction == "mean" else total
    )


def loss_grad(R, loss: str = "squared", reduction: str = "sum", p: float = 4.0, delta: float = 1.0):
    """∂ℓ/∂R, same shape as R (NumPy or torch, no autograd needed).

    Examples
    --------
    >>> import numpy as np
    >>> loss_grad(np.array([[1.0, -2.0]]))
    array([[ 2., -4.]])
    """
    if loss == "squared":
        G = 2.0 * R
    elif loss == "lp":
        G = p * abs(R) ** (p - 1) * (np.sign(R) if _is_numpy(R) else R.sign())
    elif loss == "huber":
        G = np.clip(R, -delta, delta) if _is_numpy(R) else R.clamp(-delta, delta)
    else:
        raise ValueError(f"loss={loss!r} is not one of 'squared', 'lp', 'huber'.")
    _check_reduction(reduction)
    if reduction == "mean":
        G = G / (R.size if _is_numpy(R) else R.numel())
    return G


def torch_loss_fn(loss: str = "squared", reduction: str = "sum", p: float = 4.0, delta: float = 1.0):
    """The loss as a torch module, ``fn(y_pred, y)``: ``nn.MSELoss`` and ``nn.HuberLoss``
    where torch has one (the seed's way), an ℓp module otherwise."""
    import torch.nn as nn

    if loss == "squared":
        return nn.MSELoss(reduction=reduction)
    if loss == "huber":
        return nn.HuberLoss(reduction=reduction, delta=delta)
    if loss == "lp":
        return _lp_module()(p, reduction)
    raise ValueError(f"loss={loss!r} is not one of 'squared', 'lp', 'huber'.")


@functools.cache
def _lp_module():
    import torch.nn as nn

    class LpLoss(nn.Module):
        """ℓp loss Σ|ŷ − y|^p (or its mean over entries)."""

        def __init__(self, p: float = 4.0, reduction: str = "sum"):
            super().__init__()
            self.p, self.reduction = p, reduction

        def forward(self, y_pred, y):
            return loss_value(y_pred - y, "lp", self.reduction, p=self.p)

    return LpLoss

