r"""Deep linear networks in theory: gradient, Hessian, sharpness, balancedness, end-to-end GD.

Everything here is computed from the sufficient statistics A = XᵀX, C = XᵀY and ‖Y‖²
(:class:`linlab.stats.Stats`), in float64, for the squared loss of the factors
W1..WL (predictions = X @ W1 @ … @ WL, W_j of shape (widths[j-1], widths[j])):

.. math::
    \ell(W_1,\dots,W_L) = c\,\big[\operatorname{tr}(P^\top A P) - 2\operatorname{tr}(P^\top C)
    + \|Y\|^2\big],\qquad P = W_1 W_2 \cdots W_L,

with c = 1 for ``reduction="sum"`` and c = 1/(n·k) for ``"mean"``. Layers with biases are
handled exactly by augmentation: X̃ = [X, 1] and W̃_j = [[W_j, 0], [b_j, 1]] (the last
factor [[W_L], [b_L]]), so that X̃ W̃_1 ⋯ W̃_L = the network's predictions.

References: Arora, Cohen & Hazan (2018), "On the optimization of deep networks: implicit
acceleration by overparameterization", ICML; Cohen et al. (2021), "Gradient descent on
neural networks typically occurs at the edge of stability", ICLR.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from ..stats import Stats
from .least_squares import loss_scale

_DENSE_BELOW = 9  # parameters; under this the Hessian is built and diagonalised directly


def _check_factors(stats: Stats, factors, biases) -> list[np.ndarray]:
    factors = [np.asarray(W, dtype=np.float64) for W in factors]
    if not factors or any(W.ndim != 2 for W in factors):
        raise ValueError("factors must be a non-empty list of 2-D arrays W1..WL.")
    widths = [factors[0].shape[0]] + [W.shape[1] for W in factors]
    chained = all(a.shape[1] == b.shape[0] for a, b in zip(factors[:-1], factors[1:]))
    if not chained or (widths[0], widths[-1]) != (stats.n_features, stats.n_targets):
        raise ValueError(
            f"factors have shapes {[W.shape for W in factors]}; they must chain from "
            f"{stats.n_features} features to {stats.n_targets} targets, W_j of shape "
            "(widths[j-1], widths[j]), as linlab.models.init_factors makes them."
        )
    if biases is not None and [np.shape(b) for b in biases] != [(w,) for w in widths[1:]]:
        raise ValueError(
            f"biases have shapes {[np.shape(b) for b in biases]}; expected one vector per "
            f"layer of lengths {widths[1:]}, or biases=None."
        )
    return factors


def _stack(factors, biases, carry: float = 1.0) -> list[np.ndarray]:
    """W̃_j = [[W_j, 0], [b_j, carry]] (the last without the extra column); `carry` is 1 for
    parameters (the constant input of the next layer) and 0 for directions."""
    out, L = [], len(factors)
    for j, (W, b) in enumerate(zip(factors, biases)):
        rows = np.vstack([W, np.asarray(b, dtype=np.float64)[None, :]])  # (h_{j-1} + 1, h_j)
        if j < L - 1:
            unit = np.zeros((rows.shape[0], 1))
            unit[-1] = carry
            rows = np.hstack([rows, unit])
        out.append(rows)
    return out


def _augment(stats: Stats, factors, biases):
    """(A, C, factors) of the bias-free problem that the network with biases is."""
    if biases is None:
        return stats.A, stats.C, factors
    s = stats.with_intercept()
    return s.A, s.C, _stack(factors, biases)


def _split(aug, factors, biases) -> list[np.ndarray]:
    """Read factor and bias blocks back out of augmented matrices (the inverse of `_augment`)."""
    if biases is None:
        return list(aug)
    parts = [G[: W.shape[0], : W.shape[1]] for G, W in zip(aug, factors)]
    return parts + [G[W.shape[0], : W.shape[1]] for G, W in zip(aug, factors)]


def _products(factors, directions=None):
    """prefix[j] = W1⋯Wj, suffix[j] = W_{j+1}⋯WL, and their derivatives along `directions`."""
    L = len(factors)
    prefix, suffix = [np.eye(factors[0].shape[0])], [np.eye(factors[-1].shape[1])]
    dprefix, dsuffix = [0.0 * prefix[0]], [0.0 * suffix[0]]
    for j in range(L):
        W, Z = factors[j], factors[L - 1 - j]
        prefix.append(prefix[-1] @ W)
        suffix.insert(0, Z @ suffix[0])
        if directions is not None:
            dprefix.append(dprefix[-1] @ W + prefix[-2] @ directions[j])
            dsuffix.insert(0, directions[L - 1 - j] @ suffix[1] + Z @ dsuffix[0])
    return prefix, suffix, dprefix, dsuffix


def network_loss(stats: Stats, factors, reduction: str = "sum", biases=None) -> float:
    """The squared loss of the network, from the statistics alone.

    Notes
    -----
    ℓ = c [tr(PᵀAP) − 2tr(PᵀC) + ‖Y‖²], P = W1⋯WL; c = 1 (sum) or 1/(n·k) (mean).

    Examples
    --------
    >>> X, Y = np.eye(3), np.ones((3, 1))
    >>> network_loss(Stats.of(X, Y), [np.zeros((3, 2)), np.zeros((2, 1))])
    3.0
    """
    factors = _check_factors(stats, factors, biases)
    A, C, aug = _augment(stats, factors, biases)
    P = _products(aug)[0][-1]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging trajectory's loss is inf, quietly
        return loss_scale(stats, reduction) * float(np.sum(P * (A @ P)) - 2.0 * np.sum(P * C) + stats.yy)


def gradient(stats: Stats, factors, reduction: str = "sum", biases=None) -> list[np.ndarray]:
    r"""∂ℓ/∂W_j for every factor (then ∂ℓ/∂b_j for every bias), from the statistics.

    Parameters
    ----------
    stats : Stats
    factors : list of ndarray
        W1..WL, W_j of shape (widths[j-1], widths[j]).
    reduction : {"sum", "mean"}
    biases : list of ndarray, optional
        One vector per layer; their gradients follow the factors' in the returned list.

    Returns
    -------
    list of ndarray
        Same shapes and order as ``factors + biases`` (the optimizers' parameter order).

    Notes
    -----
    .. math::
        G = \partial\ell/\partial P = 2c\,(AP - C),\qquad
        \partial\ell/\partial W_j = (W_1\cdots W_{j-1})^\top\, G\, (W_{j+1}\cdots W_L)^\top.

    Examples
    --------
    >>> s = Stats.of(np.eye(2), np.ones((2, 1)))
    >>> [g.ravel().tolist() for g in gradient(s, [np.zeros((2, 1))])]  # depth 1: 2(AW − C)
    [[-2.0, -2.0]]
    """
    factors = _check_factors(stats, factors, biases)
    A, C, aug = _augment(stats, factors, biases)
    prefix, suffix, _, _ = _products(aug)
    G = 2.0 * loss_scale(stats, reduction) * (A @ prefix[-1] - C)  # (d, k)
    return _split([prefix[j].T @ G @ suffix[j + 1].T for j in range(len(aug))], factors, biases)


def hessian_vector_product(stats: Stats, factors, direction, reduction: str = "sum",
                           biases=None) -> list[np.ndarray]:
    r"""The Hessian of the loss with respect to all parameters, applied to `direction`.

    Parameters
    ----------
    stats, factors, reduction, biases
        As in :func:`gradient`.
    direction : list of ndarray
        One array per parameter, shaped and ordered as ``factors + biases``.

    Returns
    -------
    list of ndarray
        H·v in the same layout, exact (no finite differences).

    Notes
    -----
    With L_j = W_1⋯W_{j−1}, R_j = W_{j+1}⋯W_L, dP = Σ_i L_i V_i R_i and dG = 2c·A·dP,
    the derivative of ∂ℓ/∂W_j = L_jᵀ G R_jᵀ along V is

    .. math::
        (Hv)_j = dL_j^\top G R_j^\top + L_j^\top\, dG\, R_j^\top + L_j^\top G\, dR_j^\top,

    with dL_j, dR_j the derivatives of the partial products (forward mode).

    Examples
    --------
    >>> s = Stats.of(np.diag([1.0, 2.0]), np.zeros((2, 1)))  # A = diag(1, 4)
    >>> hv = hessian_vector_product(s, [np.zeros((2, 1))], [np.array([[0.0], [1.0]])])
    >>> hv[0].ravel().tolist()  # depth 1: H = 2A ⊗ I
    [0.0, 8.0]
    """
    factors = _check_factors(stats, factors, biases)
    A, C, aug = _augment(stats, factors, biases)
    n_dir = len(factors) + (0 if biases is None else len(biases))
    if len(direction) != n_dir or any(np.shape(v) != np.shape(p) for v, p in
                                      zip(direction, list(factors) + list(biases or []))):
        raise ValueError(
            f"direction has shapes {[np.shape(v) for v in direction]}; it must match the "
            "parameters factors + biases one for one."
        )
    dirs = [np.asarray(v, dtype=np.float64) for v in direction]
    if biases is not None:
        dirs = _stack(dirs[: len(factors)], dirs[len(factors):], carry=0.0)
    prefix, suffix, dprefix, dsuffix = _products(aug, dirs)
    c2 = 2.0 * loss_scale(stats, reduction)
    G, dG = c2 * (A @ prefix[-1] - C), c2 * (A @ dprefix[-1])  # (d, k)
    out = [dprefix[j].T @ G @ suffix[j + 1].T + prefix[j].T @ dG @ suffix[j + 1].T
           + prefix[j].T @ G @ dsuffix[j + 1].T for j in range(len(aug))]
    return _split(out, factors, biases)


def _hessian_operator(stats: Stats, factors, reduction: str, biases):
    """H as a function of a flat vector, and the number of parameters."""
    params = _check_factors(stats, factors, biases) + [np.asarray(b, float) for b in biases or []]
    shapes = [p.shape for p in params]
    ends = np.cumsum([p.size for p in params])

    def matvec(v):
        v = np.asarray(v, dtype=np.float64).ravel()
        parts = [x.reshape(s) for x, s in zip(np.split(v, ends[:-1]), shapes)]
        hv = hessian_vector_product(stats, params[: len(factors)], parts, reduction, biases)
        return np.concatenate([h.ravel() for h in hv])

    return matvec, int(ends[-1])


def hessian(stats: Stats, factors, reduction: str = "sum", biases=None) -> np.ndarray:
    """The full Hessian of the loss over all parameters, one Hessian-vector product a column.

    Parameters are flattened in the order ``factors + biases``, each row-major (``ravel``).
    Meant for small networks (a (p, p) matrix for p parameters); :func:`sharpness` never
    builds it.

    Examples
    --------
    >>> s = Stats.of(np.diag([1.0, 2.0]), np.zeros((2, 1)))
    >>> hessian(s, [np.zeros((2, 1))]).tolist()  # depth 1: 2A
    [[2.0, 0.0], [0.0, 8.0]]
    """
    matvec, size = _hessian_operator(stats, factors, reduction, biases)
    H = np.column_stack([matvec(e) for e in np.eye(size)])
    return 0.5 * (H + H.T)  # exact up to rounding; symmetrise the rounding away


def sharpness(stats: Stats, factors, reduction: str = "sum", biases=None, *,
              iters: int = 1000, tol: float = 1e-10) -> float:
    r"""The largest eigenvalue of the loss Hessian over all parameters at the given point.

    Parameters
    ----------
    stats, factors, reduction, biases
        As in :func:`gradient`.
    iters : int
        Most Lanczos restarts (``maxiter`` of :func:`scipy.sparse.linalg.eigsh`).
    tol : float
        Relative accuracy asked of the eigenvalue (0 means machine precision).

    Returns
    -------
    float
        λ_max(∇²ℓ), the largest algebraic eigenvalue (negative directions of a saddle
        do not count).

    Notes
    -----
    Lanczos on exact Hessian-vector products (:func:`hessian_vector_product`), so the
    Hessian is never formed; below 9 parameters it is formed and diagonalised. For
    depth 1, ∇²ℓ = 2c·A ⊗ I_k and the sharpness is 2c·λ_max(XᵀX).

    Examples
    --------
    >>> s = Stats.of(np.diag([1.0, 2.0, 3.0]), np.ones((3, 1)))
    >>> round(sharpness(s, [np.zeros((3, 1))]), 6)  # 2·λmax(XᵀX) = 2·9
    18.0
    """
    if not (isinstance(iters, (int, np.integer)) and iters >= 1):
        raise ValueError(f"iters={iters!r} must be a positive integer, e.g. 1000.")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol={tol!r} must be a finite number >= 0, e.g. 1e-10.")
    params = list(factors) + list(biases or [])
    if not all(np.isfinite(np.asarray(p, dtype=np.float64)).all() for p in params):
        raise ValueError("sharpness needs finite factors; these hold inf or nan (a diverged point).")
    matvec, size = _hessian_operator(stats, factors, reduction, biases)
    if size < _DENSE_BELOW:
        return float(np.linalg.eigvalsh(hessian(stats, factors, reduction, biases))[-1])
    op = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(size)  # a fixed start: deterministic results
    try:
        top = eigsh(op, k=1, which="LA", v0=v0, maxiter=iters, tol=tol, return_eigenvectors=False)
    except ArpackError as err:  # includes ArpackNoConvergence; e.g. an all-zero Hessian
        if np.allclose(matvec(v0), 0.0):
            return 0.0
        if not isinstance(err, ArpackNoConvergence):
            raise ValueError(f"Lanczos failed on this Hessian ({err}); the point may overflow.") from err
        raise ValueError(
            f"Lanczos did not find the top Hessian eigenvalue within iters={iters} at tol={tol:g}; "
            "increase iters or loosen tol."
        ) from err
    return float(top[-1])


def stability_lr(stats: Stats, factors, reduction: str = "sum", biases=None, **kwargs) -> float:
    """2 / sharpness: the largest learning rate at which GD is stable near this point.

    Gradient descent on a quadratic diverges along the Hessian's top eigenvector exactly
    when lr > 2/λ_max; for deep networks the sharpness changes as training goes and GD
    tends to hover at this "edge of stability" (Cohen et al. 2021). ``inf`` when the
    Hessian has no positive eigenvalue. `kwargs` go to :func:`sharpness`.

    Examples
    --------
    >>> s = Stats.of(np.diag([1.0, 2.0, 3.0]), np.ones((3, 1)))
    >>> round(stability_lr(s, [np.zeros((3, 1))]), 6)  # depth 1: 1/λmax(XᵀX)
    0.111111
    """
    top = sharpness(stats, factors, reduction, biases, **kwargs)
    return 2.0 / top if top > 0 else float("inf")


def layer_balancedness(factors) -> list[float]:
    r"""‖W_jᵀW_j − W_{j+1}W_{j+1}ᵀ‖_F for j = 1..L−1 (an empty list for depth 1).

    Notes
    -----
    In linlab's order (predictions = X W1⋯WL) this is Arora et al. (2018)'s
    W_{j+1}ᵀW_{j+1} = W_j W_jᵀ transposed. Under gradient flow each difference
    D_j = W_jᵀW_j − W_{j+1}W_{j+1}ᵀ is constant, since

    .. math::
        \tfrac{d}{dt} W_j^\top W_j = -(W_j^\top \nabla_j + \nabla_j^\top W_j)
        = \tfrac{d}{dt} W_{j+1} W_{j+1}^\top ;

    gradient descent with step η changes it by O(η²) per step.

    Examples
    --------
    >>> W1, W2 = np.array([[3.0, 0.0]]), np.array([[1.0], [0.0]])
    >>> layer_balancedness([W1, W2])  # W1ᵀW1 = diag(9, 0), W2W2ᵀ = diag(1, 0)
    [8.0]
    """
    factors = [np.asarray(W, dtype=np.float64) for W in factors]
    return [float(np.linalg.norm(a.T @ a - b @ b.T)) for a, b in zip(factors[:-1], factors[1:])]


def balancedness(factors) -> float:
    """The smallest δ for which the factors are δ-balanced: max_j ‖W_jᵀW_j − W_{j+1}W_{j+1}ᵀ‖_F.

    Arora et al. (2018) call factors δ-balanced when every such difference is at most δ
    in Frobenius norm; 0 for depth 1. See :func:`layer_balancedness`.

    Examples
    --------
    >>> from linlab.models import init_factors
    >>> balancedness(init_factors((5, 4, 4, 3), "balanced", 0.1, seed=0)) < 1e-12
    True
    """
    return max(layer_balancedness(factors), default=0.0)


def _psd_powers(M: np.ndarray, exponents) -> list[np.ndarray]:
    """M^p for a symmetric PSD M via one eigh; M^0 is the identity (Arora et al.'s convention)."""
    evals, evecs = np.linalg.eigh(M)
    # rounding leaves eigenvalues of size eps·λmax where M is singular; a fractional power
    # would blow them up (√1e-16 = 1e-8), so they are zeroed as in a rank decision
    noise = len(M) * np.finfo(np.float64).eps * max(evals[-1], 0.0) if len(M) else 0.0
    evals = np.where(evals > noise, evals, 0.0)
    return [np.eye(len(M)) if p == 0 else (evecs * evals**p) @ evecs.T for p in exponents]


def end_to_end_update(W, grad, depth: int, lr: float) -> np.ndarray:
    r"""One step of the end-to-end dynamics that GD on balanced depth-N factors induces.

    Parameters
    ----------
    W : ndarray of shape (d, k)
        The end-to-end matrix W1⋯WN.
    grad : ndarray of shape (d, k)
        ∇ℓ(W), e.g. 2(AW − C) for the summed squared loss.
    depth : int
        N, the number of factors.
    lr : float

    Returns
    -------
    ndarray of shape (d, k)

    Notes
    -----
    Arora, Cohen & Hazan (2018, Theorem 1): for balanced factors (δ = 0) under gradient
    flow,

    .. math::
        W \leftarrow W - \eta \sum_{j=1}^{N} [W W^\top]^{\frac{j-1}{N}}\, \nabla\ell(W)\,
        [W^\top W]^{\frac{N-j}{N}} .

    They write predictions = W_e x with W_e = W_N⋯W_1 (k×d); linlab's W = W_eᵀ, and
    transposing their update (then j → N+1−j) gives the same form with WWᵀ (d×d) on the
    left and WᵀW (k×k) on the right. Depth 1 is plain GD; GD on the factors follows this
    update up to O(η²) per step.

    Examples
    --------
    >>> W, g = np.array([[2.0]]), np.array([[1.0]])
    >>> float(end_to_end_update(W, g, depth=2, lr=0.1)[0, 0])  # 2 − 0.1·(2 + 2)
    1.6
    """
    W, grad = np.asarray(W, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    if W.ndim != 2 or grad.shape != W.shape:
        raise ValueError(f"W has shape {W.shape} and grad {grad.shape}; both must be the same (d, k).")
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth={depth!r} must be a positive integer (the number of factors).")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a finite number > 0.")
    N = int(depth)
    left = _psd_powers(W @ W.T, [(j - 1) / N for j in range(1, N + 1)])  # (d, d) each
    right = _psd_powers(W.T @ W, [(N - j) / N for j in range(1, N + 1)])  # (k, k) each
    return W - lr * sum(lw @ grad @ rw for lw, rw in zip(left, right))


class EndToEndPath(NamedTuple):
    """A trajectory of the end-to-end matrix: ``W[t]`` and ``history[t]`` after t updates."""

    W: np.ndarray  # (epochs + 1, d, k)
    history: np.ndarray  # (epochs + 1,) loss


def end_to_end_trajectory(stats: Stats, W0, depth: int, lr: float, epochs: int,
                          reduction: str = "sum") -> EndToEndPath:
    """Iterate :func:`end_to_end_update` with the exact gradient from the statistics.

    Parameters
    ----------
    stats : Stats
    W0 : ndarray of shape (d, k)
        The initial end-to-end matrix (``end_to_end(factors)`` of balanced factors).
    depth, lr
        As in :func:`end_to_end_update`.
    epochs : int
        Number of updates.
    reduction : {"sum", "mean"}

    Returns
    -------
    EndToEndPath
        ``W`` of shape (epochs + 1, d, k) and the loss ``history`` (as in RunResult).

    Notes
    -----
    ∇ℓ(W) = 2c(AW − C) with c = 1 (sum) or 1/(n·k) (mean). The trajectory stops early,
    padded with NaN, if the matrix stops being finite.

    Examples
    --------
    >>> s = Stats.of(np.eye(2), np.eye(2))
    >>> path = end_to_end_trajectory(s, 0.01 * np.eye(2), depth=2, lr=0.1, epochs=100)
    >>> bool(path.history[-1] < 1e-6 < path.history[0])
    True
    """
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be an integer >= 0.")
    c2 = 2.0 * loss_scale(stats, reduction)
    W = np.asarray(W0, dtype=np.float64)
    _check_factors(stats, [W], None)
    Ws = np.full((int(epochs) + 1,) + W.shape, np.nan)
    Ws[0] = W
    with np.errstate(all="ignore"):
        for t in range(1, int(epochs) + 1):
            W = end_to_end_update(W, c2 * (stats.A @ W - stats.C), depth, lr)
            if not np.all(np.isfinite(W)):
                break
            Ws[t] = W
    history = np.array([network_loss(stats, [M], reduction) if np.all(np.isfinite(M)) else np.nan
                        for M in Ws])
    return EndToEndPath(Ws, history)
