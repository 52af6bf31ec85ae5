r"""Depth-2 SGD at a cost that does not depend on the hidden width: the dynamics of the Gram matrix.

For W = W1 W2 stack U = [W1; W2ᵀ], a (d + k) × h matrix. One SGD step with the gradient
G = ∂ℓ/∂P of the product P = W1 W2 (and weight decay λ, c = 1 − ηλ) is

.. math::
    W_1' = cW_1 - \eta G W_2^\top,\quad W_2' = cW_2 - \eta W_1^\top G
    \iff U' = T U,\quad T = \begin{pmatrix} cI_d & -\eta G \\ -\eta G^\top & cI_k \end{pmatrix},

a linear map of U that depends on U only through P. So the Gram matrix
K = UUᵀ = [[W1W1ᵀ, P], [Pᵀ, W2ᵀW2]] follows K' = T K T (T is symmetric) and holds P, and the
factors themselves are U_t = Φ_t U_0 with Φ' = TΦ, Φ_0 = I. An epoch costs
O((d + k)²·k) per run whatever h: at d = 10, k = 2 about 1,600 multiply-adds, against about
80·h + 400 for the factors, so from h ≈ 17 on this is the cheaper way (measured), and
padding to a common width is free, as only U_0 has it. The factors are formed once, when a
run stops. In exact arithmetic the trajectory is the factors' own; in floating point it
agrees to rounding.
Plain SGD (with weight decay) of depth 2 only: momentum makes the map depend on the past.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..state import stack_factors
from .compiled import eigen_terms, limits, mm, mt, tm
from .rows import Rows, judge

GRAM_WIDTH = 17  # padded hidden width from which the Gram dynamics costs less than the factors'


def gram_suits(configs, widths) -> bool:
    """Whether a fused stack runs on the Gram matrix: depth 2, no momentum, hidden width at least
    ``GRAM_WIDTH``.

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> gram_suits([TrainConfig(widths=(10, 64, 2))], (10, 64, 2)), gram_suits([TrainConfig()], (10, 2))
    (True, False)
    """
    return gram_dynamics(configs[0]) and widths[1] >= GRAM_WIDTH


def gram_dynamics(config) -> bool:
    """Whether a run's SGD is a linear map of its stacked factors: depth 2, plain SGD (weight
    decay allowed), no momentum."""
    return config.depth == 2 and config.optimizer == "sgd" and config.momentum == 0


def gram_block(K, Phi, prevK, prevPhi, P, root, slam, sr, r, floor, divisor, wd, lrs, alive, limit, best, pasts,
               factor, tol, rtol, epochs, t0):
    """``len(lrs)`` epochs of depth-2 SGD on (K, Φ), with :func:`~.fused.sgd_block`'s stop rules.

    K and Φ are ((d + k), (d + k), B), run index last; prevK and prevPhi their values one
    epoch back (where a diverging run goes). Returns (K, Φ, prevK, prevΦ, alive, limit,
    best, losses, codes).

    Examples
    --------
    One step from W1 = [[1], [0]], W2 = [[1]] towards P = [[0], [0]] with A = I (G = 2P):

    >>> f = lambda *shape: torch.zeros(*shape, dtype=torch.float64)
    >>> U = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    >>> K = (U @ U.T)[:, :, None]
    >>> one = torch.ones(2, 1, 1, dtype=torch.float64)  # A = I in its eigenbasis: √λ = 1, sλ = 2
    >>> Phi = torch.eye(3, dtype=torch.float64)[:, :, None]
    >>> out = gram_block([K], [Phi], [K], [Phi], f(2, 1, 1),
    ...                  one, 2 * one, f(2, 1, 1), f(2, 1, 1), f(()), torch.ones(()), f(()),
    ...                  torch.full((1, 1), 0.25, dtype=torch.float64), torch.ones(1, dtype=torch.bool),
    ...                  f(1), f(1), torch.full((1, 1), float("nan")), torch.full((1,), 1e6, dtype=torch.float64),
    ...                  f(1), f(1), torch.full((1,), 5), torch.tensor(0))
    >>> out[0][0][:, :, 0][0, 2].item(), out[7].tolist()  # P: (1 - 0.5)·(1 - 0.5), loss 1
    (0.25, [[1.0]])
    """
    K, Phi, prevK, prevPhi = K[0], Phi[0], prevK[0], prevPhi[0]
    d = P.shape[0]
    losses, codes = [], []
    for j in range(lrs.shape[0]):
        N, Pt, M = K[:d, :d], K[:d, d:], K[d:, d:]
        loss, G = eigen_terms(Pt - P, root, slam, sr, r)
        loss = ((loss + floor) / divisor).double()
        diverged, go, limit, best, code = judge(loss, t0 + j, alive, limit, best, pasts[j], factor, tol, rtol,
                                                 epochs)
        eta = lrs[j]
        c = 1.0 - eta * wd  # exactly 1 without weight decay
        X = mt(G, Pt)  # G Pᵀ
        GM, NG, PtG = mm(G, M), mm(N, G), tm(Pt, G)
        K11 = c * c * N - c * eta * (X + X.transpose(0, 1)) + eta * eta * mt(GM, G)
        K12 = c * c * Pt - c * eta * (NG + GM) + eta * eta * mm(G, PtG)
        K22 = c * c * M - c * eta * (PtG + PtG.transpose(0, 1)) + eta * eta * tm(G, NG)
        newK = torch.cat([torch.cat([K11, K12], 1), torch.cat([K12.transpose(0, 1), K22], 1)], 0)
        newPhi = torch.cat([c * Phi[:d] - eta * mm(G, Phi[d:]), c * Phi[d:] - eta * tm(G, Phi[:d])], 0)
        newK = torch.where(go, newK, torch.where(diverged, prevK, K))
        newPhi = torch.where(go, newPhi, torch.where(diverged, prevPhi, Phi))
        codes.append(code)
        losses.append(loss)
        prevK, prevPhi, K, Phi, alive = K, Phi, newK, newPhi, go
    return [K], [Phi], [prevK], [prevPhi], alive, limit, best, torch.stack(losses), torch.stack(codes)


@functools.cache
def compiled_gram_block():
    """:func:`gram_block` compiled once per process, with symbolic sizes."""
    return torch.compile(gram_block, dynamic=True, fullgraph=True)


class Gram(Rows):
    """Fused depth-2 SGD on the Gram matrix and the map Φ (the factors are Φ U_0)."""

    STATE = ("K", "Phi", "prevK", "prevPhi", "U0")

    def __init__(self, path, configs, factors, widths, dtype, device):
        super().__init__(path, configs, dtype, device)
        W1, W2 = (W.permute(1, 2, 0) for W in stack_factors(factors, widths, dtype, device))
        W1 = torch.einsum("ij,ihb->jhb", self.V, W1)  # the eigenbasis of A: VᵀW1
        U0 = torch.cat([W1, W2.transpose(0, 1)], 0).contiguous()  # (d + k, h, B)
        K = torch.einsum("ihb,jhb->ijb", U0, U0).contiguous()  # U Uᵀ per run (as batched products)
        n, B = U0.shape[0], U0.shape[2]
        Phi = torch.eye(n, dtype=dtype, device=device)[:, :, None].expand(n, n, B).contiguous()
        self.U0, self.K, self.Phi = [U0], [K], [Phi]
        self.prevK, self.prevPhi = [K.clone()], [Phi.clone()]  # not aliases (a graph of their own)
        self.d = widths[0]

    def block(self, lrs: np.ndarray, pasts: np.ndarray, t0: int):
        s = self.scalars
        with limits():
            out = compiled_gram_block()(self.K, self.Phi, self.prevK, self.prevPhi, *self.consts, s["floor"],
                                        s["divisor"], s["wd"], *self.rules(lrs, pasts, t0))
        return self.keep(out[:4] + (self.U0,) + out[4:])

    def finals(self, rows: np.ndarray, configs) -> list:
        idx = torch.as_tensor(rows, device=self.device)
        Phi, U0 = (t[0].index_select(2, idx) for t in (self.Phi, self.U0))
        U = torch.einsum("ijb,jhb->bih", Phi, U0)  # (rows, d + k, h)
        U = torch.cat([torch.einsum("ij,bjh->bih", self.V, U[:, : self.d]), U[:, self.d:]], 1)
        U = U.double().cpu().numpy()
        out = []
        for i, u in zip(self.runs[rows], U):
            h = configs[i].widths[1]
            out.append(([u[: self.d, :h].copy(), u[self.d:, :h].T.copy()], None))
        return out
