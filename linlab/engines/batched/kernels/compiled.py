r"""A fused, compiled epoch for the statistics path: ``torch.compile`` over stacks kept with the
run index last.

The eager statistics path (:mod:`..objective_stats`) spends an epoch in a few dozen tensor
operations, each a pass over memory; the products of tiny per-run matrices it needs are
either many elementwise passes or ``torch.bmm`` calls of ~0.1-0.2 µs per matrix. Written as
broadcast products and sums over (…, B) tensors, the same epoch compiles (TorchInductor,
a C++ loop nest with the run index as the vector lane) to a few fused kernels: 2-5x faster
per epoch at B ≥ 1,000 on a CPU. Compiling costs seconds once per process and stack
signature (depth, dtype, and whether a layer has width 1; every size is symbolic), and
needs a C++ compiler; without one, or on any failure, the stack falls back to the eager path
with a warning. SGD stacks go further and run their stop rules and updates in the graph too
(:mod:`.fused`); this module serves the other optimizers, whose step stays eager.

For the stack with the run index last (Wj of shape (H_{j-1}, H_j, B)), one epoch is

.. math::
    Q_1 = W_1,\ Q_j = Q_{j-1} W_j,\quad \Delta = Q_L - P_0,\quad
    [Z_1; Z_2] = [R; sA]\,\Delta,\quad \ell = \|Z_1\|^2 + 2\langle r, \Delta\rangle,

    G_L = Z_2 + s r,\quad \partial\ell/\partial W_j = Q_{j-1}^\top G_j,\quad G_{j-1} = G_j W_j^\top,

per run, as in :class:`~..objective_stats.StatsPath` (the caller adds L* and divides).
A compiled run agrees with the eager one to rounding (about 1e-15 relative per epoch),
not bit for bit: the kernels' order of operations differs.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings

import torch

# fewer live rows than this run eagerly: compiled kernels gain nothing on tiny stacks, and a
# stack of one row would need a graph of its own (size 1 is never symbolic)
MIN_ROWS = 32
# graphs one compiled function may hold: one per depth, dtype, optimizer terms, unroll and
# width-1 layer; torch's default of 8 would send a varied sweep back to eager mode
RECOMPILE_LIMIT = 128


def limits():
    """A context in which the compiled functions may hold ``RECOMPILE_LIMIT`` graphs each."""
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)


def stats_epoch(Ws, P, stacked, sr, r):
    """Loss terms and gradients of stacked runs, run index last; eager-traceable and compiled.

    Parameters
    ----------
    Ws : list of Tensor
        W_j of shape (H_{j-1}, H_j, B), contiguous.
    P : Tensor (d, k, 1)
        The least-squares solution P₀.
    stacked : Tensor (2d, d)
        [R; sA] with RᵀR = A and s = 2 / divisor.
    sr : Tensor (d, k, 1)
        s·r.
    r : Tensor (d, k, 1)
        r = AP₀ − C.

    Returns
    -------
    loss : Tensor (B,)
        ‖RΔ‖² + 2⟨r, Δ⟩, to which L* is added (and the sum divided) by the caller.
    grads : list of Tensor
        ∂ℓ/∂W_j of shape (H_{j-1}, H_j, B).

    Examples
    --------
    >>> W = [torch.ones(2, 1, 3, dtype=torch.float64), torch.ones(1, 1, 3, dtype=torch.float64)]
    >>> eye, zero = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, 1, dtype=torch.float64)
    >>> loss, grads = stats_epoch(W, zero, torch.cat([eye, 2 * eye]), zero, zero)
    >>> loss.tolist(), grads[1][0, 0].tolist()
    ([2.0, 2.0, 2.0], [4.0, 4.0, 4.0])
    """
    d, B = Ws[0].shape[0], Ws[0].shape[2]

    def terms(D):
        k = D.shape[1]
        Z = (stacked @ D.reshape(d, k * B)).view(2 * d, k, B)
        return Z[:d].square().sum((0, 1)) + 2.0 * (r * D).sum((0, 1)), Z[d:] + sr

    return through_factors(Ws, P, terms)


def mm(X, Y):
    """Per-run X @ Y, run index last: (m, a, B) x (a, c, B) -> (m, c, B)."""
    return (X[:, :, None, :] * Y[None]).sum(1)


def tm(X, Y):
    """Per-run Xᵀ @ Y, run index last: (a, m, B) x (a, c, B) -> (m, c, B)."""
    return (X[:, :, None, :] * Y[:, None]).sum(0)


def mt(X, Y):
    """Per-run X @ Yᵀ, run index last: (m, a, B) x (c, a, B) -> (m, c, B)."""
    return (X[:, None, :, :] * Y[None]).sum(2)


def through_factors(Ws, P, terms):
    """Loss and factor gradients of stacked runs (run index last) given ``terms(Δ)``, which
    returns the loss terms and ∂ℓ/∂P of Δ = W1⋯WL − P: Q_j = Q_{j-1} W_j forward, then
    ∂ℓ/∂W_j = Q_{j-1}ᵀ G_j and G_{j-1} = G_j W_jᵀ backward."""
    Qs = [Ws[0]]
    for W in Ws[1:]:
        Qs.append(mm(Qs[-1], W))
    loss, G = terms(Qs[-1] - P)
    grads = [None] * len(Ws)
    for j in reversed(range(1, len(Ws))):
        grads[j] = tm(Qs[j - 1], G)
        G = mt(G, Ws[j])
    grads[0] = G
    return loss, grads


def eigen_terms(D, root, slam, sr, r):
    """Loss terms and ∂ℓ/∂P of Δ = P − P₀ (d, k, B) in the eigenbasis of A, where R = √λ and
    sA = sλ are diagonal: ‖√λ Δ‖² + 2⟨r, Δ⟩ and sλΔ + s·r (the caller adds L* and divides).

    Examples
    --------
    >>> D = torch.ones(2, 1, 3, dtype=torch.float64)
    >>> root, zero = torch.tensor([[[1.0]], [[2.0]]], dtype=torch.float64), torch.zeros(2, 1, 1)
    >>> loss, G = eigen_terms(D, root, 2 * root.square(), zero, zero)
    >>> loss.tolist(), G[:, 0, 0].tolist()
    ([5.0, 5.0, 5.0], [2.0, 8.0])
    """
    loss = (root * D).square().sum((0, 1)) + 2.0 * (r * D).sum((0, 1))
    return loss, slam * D + sr


def eigen_epoch(Ws, P, root, slam, sr, r):
    """:func:`stats_epoch` for factors whose first layer is in the eigenbasis of A (W1 → VᵀW1,
    constants from :meth:`~..objective_stats.StatsPath.eigenbasis`): no d × d product left."""
    return through_factors(Ws, P, lambda D: eigen_terms(D, root, slam, sr, r))


@functools.cache
def compiled_stats_epoch():
    """:func:`stats_epoch` compiled once per process, with symbolic sizes."""
    return torch.compile(stats_epoch, dynamic=True, fullgraph=True)


@functools.cache
def compiler_found() -> bool:
    """Whether a C++ compiler TorchInductor can call is on the PATH (it also honours $CXX).

    Examples
    --------
    >>> isinstance(compiler_found(), bool)
    True
    """
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return any(c and shutil.which(c) for c in candidates)


class CompiledEpoch:
    """The compiled :func:`stats_epoch` of one statistics path, with its fallback.

    Calling it returns ``(loss, grads)``, or None when compiling failed (the warning says why
    and the caller goes on eagerly; later calls return None at once) or when `inductor` is
    False (a ``"kernel"`` plan: only SGD stacks compile, in :mod:`.native`).
    """

    def __init__(self, inductor: bool = True):
        self.failed, self.inductor = False, inductor

    def __call__(self, Ws, P, stacked, sr, r):
        if self.failed or not self.inductor:
            return None
        try:
            with limits():
                return compiled_stats_epoch()(Ws, P, stacked, sr, r)
        except Exception as exc:  # no compiler, an unsupported platform, a backend error
            self.fail(exc)
            return None

    def fail(self, exc: Exception) -> None:
        """Give up compiling for this path, with a warning that names the reason."""
        self.failed = True
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(
            f"compiling the batched epoch failed ({type(exc).__name__}: {first[:200]}); running "
            "eagerly instead (same results, slower). Install a C++ compiler (g++) or pass compile=False.",
            RuntimeWarning, stacklevel=3,
        )
