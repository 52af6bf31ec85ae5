r"""Any loss, with or without biases, for many stacked runs: one shared pass over the rows.

The first layer of every run reads the same rows, so it is one large product,

.. math::
    [h_1^{(1)} \mid \dots \mid h_1^{(B)}] = X\,[W_1^{(1)} \mid \dots \mid W_1^{(B)}],\qquad
    [\nabla W_1^{(1)} \mid \dots \mid \nabla W_1^{(B)}] = X^\top [G_1^{(1)} \mid \dots \mid G_1^{(B)}],

and deeper layers are batched products (``torch.bmm``). Rows are taken in chunks small
enough for the memory budget; losses and gradients add up over chunks.
"""

from __future__ import annotations

import numpy as np
import torch

from ...losses import loss_grad
from .state import backward

CACHE_BYTES = 4 * 2**20  # a layer's activations per chunk of rows, all runs together
MIN_ROWS = 32  # the fewest rows per chunk the cache bound may ask for


def per_run_loss(R, loss: str, p: float = 4.0, delta: float = 1.0):
    """Σ over rows and targets of ℓ(R) for each run: R (B, m, k) → (B,).

    The summed forms of :func:`linlab.losses.loss_value`, one per run.

    Examples
    --------
    >>> R = torch.tensor([[[1.0, -2.0]], [[0.5, 0.0]]])
    >>> per_run_loss(R, "squared").tolist(), per_run_loss(R, "huber", delta=1.0).tolist()
    ([5.0, 0.25], [2.0, 0.125])
    """
    if loss == "squared":
        E = R * R
    elif loss == "lp":
        E = R.abs() ** p
    elif loss == "huber":
        a = R.abs()
        E = torch.where(a < delta, 0.5 * R * R, delta * (a - 0.5 * delta))
    else:
        raise ValueError(f"loss={loss!r} is not one of 'squared', 'lp', 'huber'.")
    return E.sum((1, 2))


class DataPath:
    """Loss and gradients of stacked runs from the rows of a dataset.

    Parameters
    ----------
    X, Y : ndarray of shape (n, d) and (n, k)
        May be memory maps; rows are converted chunk by chunk unless they fit in a quarter
        of `memory_budget`, in which case they are converted once.
    loss, reduction, p, delta
        As in :class:`~linlab.config.TrainConfig`; ``"mean"`` divides by (rows used)·k.
    dtype, device
        Of the stacked runs.
    memory_budget : int
        Bytes for the rows in flight and the activations of all runs.

    Examples
    --------
    >>> X, Y = np.eye(3), np.ones((3, 1))
    >>> path = DataPath(X, Y, "squared", "sum", 4.0, 1.0, torch.float64, "cpu", 2**20)
    >>> loss, grads, _ = path.loss_and_grads([torch.zeros(2, 3, 1, dtype=torch.float64)])
    >>> loss.tolist(), grads[0][0].flatten().tolist()
    ([3.0, 3.0], [-2.0, -2.0, -2.0])
    """

    def __init__(self, X, Y, loss, reduction, p, delta, dtype, device, memory_budget: int):
        self.loss, self.reduction, self.p, self.delta = loss, reduction, p, delta
        self.dtype, self.device, self.budget = dtype, device, int(memory_budget)
        self.n, self.d = X.shape
        self.k = Y.shape[1]
        self.itemsize = torch.empty((), dtype=dtype).element_size()
        self.host = (X, Y)
        self.resident = None
        if self.n * (self.d + self.k) * self.itemsize <= self.budget // 4:
            self.resident = (self._tensor(X), self._tensor(Y))

    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), device=self.device).to(self.dtype)

    def _rows(self, rows: slice | np.ndarray):
        if self.resident is None:
            X, Y = self.host
            return self._tensor(X[rows]), self._tensor(Y[rows])
        if isinstance(rows, np.ndarray):  # a mini-batch
            rows = torch.as_tensor(rows, device=self.device)
        X, Y = self.resident
        return X[rows], Y[rows]

    def chunk_rows(self, B: int, widths) -> int:
        """Rows per chunk: B runs' activations fit half the memory budget, and one layer's
        activations about ``CACHE_BYTES`` (passes over cache-sized tensors run 2-3x faster)."""
        per_row = self.itemsize * (B * (3 * sum(widths[1:]) + 2 * widths[1] + 3 * widths[-1]) + self.d + self.k)
        cached = max(MIN_ROWS, CACHE_BYTES // (self.itemsize * B * max(widths[1:])))
        return int(max(1, min(self.n, (self.budget // 2) // per_row, cached)))

    def loss_and_grads(self, factors, biases=None, rows: np.ndarray | None = None, grads: bool = True):
        """Per-run loss (B,), factor gradients and bias gradients (or None).

        `rows` restricts the pass to those row indices (a mini-batch); `grads=False` skips
        the backward pass and returns ``(loss, None, None)``.
        """
        widths = [factors[0].shape[1]] + [W.shape[2] for W in factors]
        n_rows = self.n if rows is None else len(rows)
        divisor = 1 if self.reduction == "sum" else n_rows * self.k
        step = self.chunk_rows(factors[0].shape[0], widths)
        total, acc = None, None
        for start in range(0, n_rows, step):
            chunk = slice(start, start + step) if rows is None else rows[start:start + step]
            part, g = self._chunk(*self._rows(chunk), factors, biases, divisor, grads)
            total = part if total is None else total + part
            if grads:
                acc = g if acc is None else [[a + b for a, b in zip(x, y)] if x else None
                                             for x, y in zip(acc, g)]
        loss = total / divisor if divisor != 1 else total
        return (loss, *acc) if grads else (loss, None, None)

    def _chunk(self, X, Y, factors, biases, divisor, want_grads):
        m, d, B = X.shape[0], self.d, factors[0].shape[0]
        W1 = factors[0].permute(1, 0, 2).reshape(d, -1)  # (d, B H_1): all runs side by side
        h = (X @ W1).view(m, B, -1).transpose(0, 1)  # (B, m, H_1)
        hs = [None]
        for j in range(len(factors)):
            if j:
                h = torch.bmm(h, factors[j])
            if biases is not None:
                h = h + biases[j]
            hs.append(h)
        R = h - Y  # (B, m, k)
        total = per_run_loss(R, self.loss, self.p, self.delta)
        if not want_grads:
            return total, None
        G = loss_grad(R, self.loss, "sum", self.p, self.delta)
        if divisor != 1:
            G = G / divisor
        gW, gb, G1 = backward(hs, G, factors, biases is not None)
        gW[0] = (X.T @ G1.transpose(0, 1).reshape(m, -1)).view(d, B, -1).transpose(0, 1)
        return total, [gW, gb]
