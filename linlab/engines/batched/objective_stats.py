r"""Squared loss of many stacked runs from the sufficient statistics: no pass over the rows.

With A = XᵀX, C = XᵀY and any P₀ (here the least-squares solution), write e = XP₀ − Y,
r = Xᵀe = AP₀ − C and L* = ‖e‖². For P = W1⋯WL and Δ = P − P₀, exactly:

.. math::
    \|XP - Y\|^2 = \|R\Delta\|^2 + 2\operatorname{tr}(\Delta^\top r) + L^*,\qquad
    \frac{\partial\,\|XP - Y\|^2}{\partial P} = 2(A\Delta + r),

with RᵀR = A. At P₀ = P_ls, r vanishes up to rounding, so the loss is a sum of
nonnegative terms: it keeps its relative accuracy down to zero, where the textbook
tr(PᵀAP) − 2tr(PᵀC) + ‖Y‖² loses everything below eps·‖Y‖² to cancellation. An epoch
then costs O(B·(d²k + Σ d·h_j·h_{j+1})), whatever n.

Stacks whose hidden layers are at most ``BATCH_LAST_WIDTH`` wide are stored with the run
index last (:func:`~.state.to_batch_last`): Δ of all runs is then one (d, k·B)
matrix, [R; sA]Δ one shared product, and each per-run product of tiny matrices a few
elementwise operations over B instead of B matrix products (``torch.bmm`` costs ~0.1-0.2 µs
per matrix whatever its size). Every sum there runs in an order that does not depend on B,
so a run's trajectory does not depend on how many runs share its stack.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ...stats import Stats
from .kernels.compiled import MIN_ROWS, CompiledEpoch
from .state import is_batch_last

# L* and r come from the rows when L* is below this fraction of ‖Y‖² (cancellation would
# cost more than 1e-12 of it), or when the rows are few enough (entries of X) to pass cheaply
RESIDUAL_FLOOR = 1e-4
SMALL_DATA = 2**24
# stacks whose hidden layers are at most this wide keep the run index last in memory: their
# per-run products become elementwise operations over the runs, 1.2-2x faster than batched
# matrix products of tiny matrices; wider ones gain more from torch.bmm
BATCH_LAST_WIDTH = 8


def _sum_first(T: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
    # Σ over the first dimension of a contiguous T as one product with a row of ones: the
    # order of the sum does not depend on the other dimensions (the size of the stack)
    return (ones[:, : T.shape[0]] @ T.view(T.shape[0], -1)).view(T.shape[1:])


def _mm_last(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    # per-run X @ Y with the run index last: (m, a, B) x (a, c, B) -> (m, c, B)
    (m, a, B), c = X.shape, Y.shape[1]
    if a == 1:
        return torch.mul(X, Y, out=X.new_empty((m, c, B)))
    out = torch.mul(X[:, :1], Y[:1], out=X.new_empty((m, c, B)))
    for t in range(1, a):  # term by term: an order that does not depend on B
        out.addcmul_(X[:, t, None], Y[t])
    return out


def _times_transpose(G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    # per-run G Wᵀ, (B, m, c) x (B, a, c) -> (B, m, a); for c <= 2 and a <= 16 term by term
    # (1.5-2x faster than torch.bmm there), else torch.bmm
    (B, m, c), a = G.shape, W.shape[1]
    if c > 2 or a > 16:
        return torch.bmm(G, W.transpose(1, 2))
    out = torch.mul(G[:, :, :1], W[:, None, :, 0], out=G.new_empty((B, m, a)))
    for t in range(1, c):
        out.addcmul_(G[:, :, t, None], W[:, None, :, t])
    return out


def gram_stats(X, Y, chunk_rows: int = 16384, device="cpu") -> Stats:
    """:class:`~linlab.stats.Stats` of (X, Y) in float64 from one pass over the rows.

    The Gram matrix of [X, Y, 1] holds XᵀX, XᵀY, ‖Y‖², Σx, Σy and n: each chunk of rows is
    copied into a float64 buffer (on `device`) and added with one product, BᵀB. X may be
    a memory map: only `chunk_rows` rows are in float64 at a time.

    Examples
    --------
    >>> X, Y = np.arange(12.).reshape(4, 3), np.ones((4, 2))
    >>> s = gram_stats(X, Y, chunk_rows=3)
    >>> bool(np.allclose(s.A, X.T @ X)), bool(np.allclose(s.C, X.T @ Y)), s.yy, s.n
    (True, True, 8.0, 4)
    """
    n, d = X.shape
    k = Y.shape[1]
    m = max(1, min(int(chunk_rows), n))
    buf = torch.empty((m, d + k + 1), dtype=torch.float64, device=device)
    buf[:, -1] = 1.0
    M = torch.zeros((d + k + 1, d + k + 1), dtype=torch.float64, device=device)
    with warnings.catch_warnings():  # read-only memory maps: the rows are only read
        warnings.simplefilter("ignore", UserWarning)
        for start in range(0, n, m):
            b = buf[: min(m, n - start)]
            b[:, :d].copy_(torch.from_numpy(np.ascontiguousarray(X[start:start + m])))
            b[:, d:d + k].copy_(torch.from_numpy(np.ascontiguousarray(Y[start:start + m])))
            M.addmm_(b.T, b)
    M = M.cpu().numpy()
    M = 0.5 * (M + M.T)
    return Stats(
        M[:d, :d].copy(), M[:d, d:d + k].copy(), float(np.trace(M[d:d + k, d:d + k])), n,
        M[:d, -1].copy(), M[d:d + k, -1].copy(),
    )


@dataclass(frozen=True)
class LeastSquaresTerms:
    """P₀, a root R of A, r = AP₀ − C and L* = ‖XP₀ − Y‖², all float64."""

    P: np.ndarray  # (d, k) the least-squares solution (minimum norm)
    root: np.ndarray  # (d, d) R with RᵀR = A
    r: np.ndarray  # (d, k) AP₀ − C, rounding-sized
    loss: float  # L*, the least-squares minimum of the summed loss
    on_rows: bool  # whether r and L* were computed from the rows


def _root(A: np.ndarray, evals: np.ndarray, V: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(A).T  # A = LLᵀ, R = Lᵀ
    except np.linalg.LinAlgError:  # singular A (collinear features, d > n)
        return np.sqrt(np.clip(evals, 0.0, None))[:, None] * V.T


def least_squares_terms(stats: Stats, X=None, Y=None, chunk_rows: int = 8192) -> LeastSquaresTerms:
    """The constants of the exact loss decomposition, computed once per dataset.

    When the rows X, Y are given and either they are few (``SMALL_DATA`` entries) or L* is
    below ``RESIDUAL_FLOOR`` times the terms it is computed from, r and L* come from one
    pass over them: e = XP₀ − Y, L* = ‖e‖², r = Xᵀe. Otherwise from the statistics,
    L* = ‖Y‖² − 2tr(P₀ᵀC) + tr(P₀ᵀAP₀), whose rounding is then far below L*.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((50, 3))
    >>> t = least_squares_terms(Stats.of(X, X @ np.ones((3, 1))), X, X @ np.ones((3, 1)))
    >>> bool(np.allclose(t.P, 1.0)), t.on_rows, t.loss < 1e-25
    (True, True, True)
    """
    A = 0.5 * (stats.A + stats.A.T)
    evals, V = np.linalg.eigh(A)
    cutoff = max(evals.max(initial=0.0), 0.0) * A.shape[0] * np.finfo(np.float64).eps
    inv = np.where(evals > cutoff, 1.0 / np.where(evals > cutoff, evals, 1.0), 0.0)
    P = V @ (inv[:, None] * (V.T @ stats.C))  # (d, k) minimum-norm solution
    AP = A @ P
    fit_terms = (stats.yy, 2.0 * float(np.sum(P * stats.C)), float(np.sum(P * AP)))
    loss = fit_terms[0] - fit_terms[1] + fit_terms[2]
    root = _root(A, evals, V)
    small = X is not None and X.shape[0] * X.shape[1] <= SMALL_DATA
    if X is None or (not small and loss > RESIDUAL_FLOOR * sum(abs(v) for v in fit_terms)):
        return LeastSquaresTerms(P, root, AP - stats.C, max(loss, 0.0), False)
    r, loss = np.zeros_like(P), 0.0
    for start in range(0, X.shape[0], max(1, int(chunk_rows))):
        x = np.asarray(X[start:start + chunk_rows], dtype=np.float64)
        e = x @ P - np.asarray(Y[start:start + chunk_rows], dtype=np.float64)  # (m, k)
        loss += float(np.sum(e * e))
        r += x.T @ e
    return LeastSquaresTerms(P, root, r, loss, True)


_BY_DATASET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dataset_terms(data, device="cpu") -> tuple[Stats, LeastSquaresTerms]:
    """The statistics and least-squares constants of a :class:`~linlab.data.Dataset`,
    computed on its first use and kept while the dataset lives, so that many calls on
    one dataset (a sweep in batches, repeated fits) pass over its rows once.

    Examples
    --------
    >>> from linlab.data import seed_dataset
    >>> data = seed_dataset()
    >>> dataset_terms(data)[0] is dataset_terms(data)[0]
    True
    """
    if data not in _BY_DATASET:
        stats = getattr(data, "stats", None)  # sharded data: summarised already, rows not read again
        if stats is not None:
            _BY_DATASET[data] = stats, least_squares_terms(stats)
        else:
            stats = gram_stats(data.X, data.Y, device=device)
            _BY_DATASET[data] = stats, least_squares_terms(stats, data.X, data.Y)
    return _BY_DATASET[data]


class StatsPath:
    """Loss and gradients of stacked runs for the squared loss, from the statistics.

    Parameters
    ----------
    stats : Stats
    terms : LeastSquaresTerms
    reduction : {"sum", "mean"}
        ``"mean"`` divides loss and gradient by n·k.
    dtype, device
        Of the stacked runs; the constants are cast once.
    compiled : bool
        Train in the eigenbasis of A, so that SGD stacks can run fused (:mod:`.kernels.fused`).
    inductor : bool
        With `compiled`, also keep every stack with the run index last and run its epochs
        through the compiled kernel of :mod:`.kernels.compiled` (stacks of fewer than ``MIN_ROWS``
        runs, and all stacks once compiling failed, run eagerly).

    Examples
    --------
    >>> X, Y = np.eye(3), np.ones((3, 1))
    >>> s = Stats.of(X, Y)
    >>> path = StatsPath(s, least_squares_terms(s, X, Y), "sum", torch.float64, "cpu")
    >>> loss, grads, _ = path.loss_and_grads([torch.zeros(2, 3, 1, dtype=torch.float64)])
    >>> loss.tolist(), grads[0][0].flatten().tolist()
    ([3.0, 3.0], [-2.0, -2.0, -2.0])
    """

    def __init__(self, stats: Stats, terms: LeastSquaresTerms, reduction: str, dtype, device,
                 compiled: bool = False, inductor: bool = True):
        d, k = self.d, self.k = stats.n_features, stats.n_targets
        self.divisor = 1 if reduction == "sum" else stats.n * stats.n_targets
        self.dtype, self.device, self.floor = dtype, device, terms.loss
        scale = 2.0 / self.divisor
        A = 0.5 * (stats.A + stats.A.T)
        # one product of Δᵀ (rows (run, target)) with [Rᵀ | sA | r] plus [0 | srᵀ | 0] gives
        # (RΔ)ᵀ, the gradient (∂ℓ/∂P)ᵀ = s(ΔᵀA + rᵀ) and Δᵀr, with s = 2 / divisor
        self.operator = self._tensor(np.hstack([terms.root.T, scale * A, terms.r]))  # (d, 2d + k)
        self.offset = np.hstack([np.zeros((k, d)), scale * terms.r.T, np.zeros((k, k))])  # (k, 2d + k)
        self.tile = self._tensor(self.offset)
        self.Pt = self._tensor(terms.P.T)  # (k, d)
        # run index last: [R; sA; rᵀ] Δ holds RΔ, s·AΔ and rᵀΔ (whose diagonal blocks sum to tr(Δᵀr))
        self.stacked = self._tensor(np.vstack([terms.root, scale * A]))  # [R; sA], (2d, d)
        self.P, self.sr = self._tensor(terms.P[:, :, None]), self._tensor(scale * terms.r[:, :, None])
        self.r = self._tensor(terms.r.reshape(1, d * k))
        self.ones = self._tensor(np.ones((1, d * k)))
        self.compiled = CompiledEpoch(inductor) if compiled else None
        self.r3 = self._tensor(terms.r[:, :, None])
        if compiled:  # the fused stacks train in the eigenbasis of A (see `eigenbasis`)
            lam, V = np.linalg.eigh(A)
            lam = np.clip(lam, 0.0, None)
            Vr = V.T @ terms.r
            self.V = self._tensor(V)
            self.eigen = tuple(self._tensor(a[:, :, None]) for a in (
                V.T @ terms.P, np.sqrt(lam)[:, None], scale * lam[:, None], scale * Vr, Vr))

    def eigenbasis(self):
        """(V, (P₀, √λ, sλ, s·r, r) in the eigenbasis of A = V diag(λ) Vᵀ), each (d, ·, 1).

        Rotating the input space by V (W1 → VᵀW1) leaves every trajectory as it is and makes
        A diagonal: [R; sA]Δ becomes two elementwise products (:func:`~.compiled.eigen_epoch`).
        """
        return self.V, self.eigen

    @staticmethod
    def narrow(widths) -> bool:
        """Whether the eager path is fastest on a stack of these padded widths kept with the run
        index last (elementwise products) rather than as (B, a, b) matrices (``torch.bmm``)."""
        return max(widths[1:-1], default=1) <= BATCH_LAST_WIDTH

    def batch_last(self, widths) -> bool:
        """Whether a stack of these padded widths is kept with the run index last."""
        return (self.compiled is not None and self.compiled.inductor) or self.narrow(widths)

    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), device=self.device).to(self.dtype)

    def _offsets(self, B: int) -> torch.Tensor:
        # `offset` repeated for B runs; rows repeat with period k, so one tile serves any smaller B
        if self.tile.shape[0] < B * self.k:
            self.tile = self._tensor(np.tile(self.offset, (B, 1)))
        return self.tile[: B * self.k]

    def loss_and_grads(self, factors, biases=None):
        """Per-run loss (B,) and gradients of every factor; biases are not supported here."""
        if biases is not None:
            raise ValueError("the statistics path has no biases; use path='data' for bias=True.")
        d, k, B, L = self.d, self.k, factors[0].shape[0], len(factors)
        last = all(is_batch_last(W) for W in factors)
        if last and self.compiled is not None and B >= MIN_ROWS:
            # detached: views of different bases would each need a graph of their own
            Ws = [W.permute(1, 2, 0).detach() for W in factors]
            out = self.compiled(Ws, self.P, self.stacked, self.sr, self.r3)
            if out is not None:
                loss = out[0].add_(self.floor)
                if self.divisor != 1:
                    loss.div_(self.divisor)
                return loss, [g.permute(2, 0, 1) for g in out[1]], None
        # a single run is stored both ways: it follows its width's stacks, whatever the chunk size
        if last and self.narrow([d] + [W.shape[2] for W in factors]):
            return self._batch_last(factors)
        Qs = [factors[0]]  # Q_j = W1⋯Wj for j < L, (B, d, H_j)
        for W in factors[1:-1]:
            Qs.append(torch.bmm(Qs[-1], W))
        # Pᵀ = W_Lᵀ Q_{L-1}ᵀ, (B, k, d): the rows of Δᵀ are then contiguous
        Pt = factors[0].transpose(1, 2)
        if L > 1:
            Pt = torch.bmm(factors[-1].transpose(1, 2), Qs[-1].transpose(1, 2))
        Dt = (Pt - self.Pt).reshape(B * k, d)  # Δᵀ
        Z = torch.addmm(self._offsets(B), Dt, self.operator)  # (B k, 2d + k)
        quad = Z[:, :d].square().reshape(B, k * d).sum(1)  # ‖RΔ‖²
        lin = Z[:, 2 * d:].reshape(B, k, k).diagonal(dim1=1, dim2=2).sum(1)  # tr(Δᵀr)
        loss = (quad + 2.0 * lin + self.floor) / self.divisor
        G = Z[:, d:2 * d].reshape(B, k, d).transpose(1, 2)  # (B, d, k) ∂ℓ/∂P
        grads = [None] * L  # ∂ℓ/∂W_j = Q_{j-1}ᵀ G_j, G_{j-1} = G_j W_jᵀ (the first layer's input is I)
        for j in reversed(range(1, L)):
            grads[j] = torch.bmm(Qs[j - 1].transpose(1, 2), G)
            G = _times_transpose(G, factors[j])
        grads[0] = G
        return loss, grads, None

    def _batch_last(self, factors):
        # the same quantities with every tensor (.., B): Q_j = W1⋯Wj, G_j = ∂ℓ/∂Q_j,
        # ∂ℓ/∂W_j = Q_{j-1}ᵀ G_j and G_{j-1} = G_j W_jᵀ; every sum runs in an order that does
        # not depend on B (products with a shared matrix, or term by term), so that a run
        # ends in the same place whatever the size of its stack
        d, k, B = self.d, self.k, factors[0].shape[0]
        ones = self.ones  # sums run over d or d·k terms
        Ws = [W.permute(1, 2, 0) for W in factors]  # (H_{j-1}, H_j, B), contiguous
        Qs = [Ws[0]]
        for W in Ws[1:]:
            Qs.append(_mm_last(Qs[-1], W))
        D = (Qs[-1] - self.P).view(d * k, B)  # Δ, one column per run
        Dw = D.view(d, k * B)
        Z = self.stacked @ Dw if k * B > 1 else (self.stacked @ torch.cat([Dw, Dw], 1))[:, :1]  # [RΔ; sAΔ]
        quad = _sum_first(Z[:d].square().view(d * k, B), ones)  # ‖RΔ‖²
        lin = (self.r @ D)[0]  # tr(Δᵀr)
        loss = quad.add_(lin, alpha=2.0).add_(self.floor)  # (quad + 2 lin + L*) / divisor
        if self.divisor != 1:
            loss.div_(self.divisor)
        G = Z[d:].view(d, k, B) + self.sr  # ∂ℓ/∂P
        grads = [None] * len(Ws)
        for j in reversed(range(1, len(Ws))):
            T = torch.mul(Qs[j - 1][:, :, None], G[:, None], out=G.new_empty((d, *Ws[j].shape)))
            grads[j] = _sum_first(T, ones)
            G = _mm_last(G, Ws[j].transpose(0, 1))
        grads[0] = G
        return loss, [g.permute(2, 0, 1) for g in grads], None
