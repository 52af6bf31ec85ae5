r"""Saxe, McClelland & Ganguli (2014): exact learning dynamics of deep linear networks.

"Exact solutions to the nonlinear dynamics of learning in deep linear neural networks",
ICLR 2014. With whitened inputs (XᵀX/n = I) the input-output correlation
M = XᵀY/n = U S Vᵀ is also the least-squares map. Start the factors decoupled and
balanced along its modes (W1 = U a Q1ᵀ, …, WL = Q_{L−1} a Vᵀ with a = u0^{1/L}) and each
mode strength u_α = u_αᵀ W v_α evolves on its own under gradient flow:

.. math::
    \tau\,\frac{du}{dt} = N\,u^{2-2/N}\,(s - u),\qquad
    \frac{1}{\tau} = 2\,c\,n\,\eta \quad (= 2n\eta \text{ for the summed loss},\
    2\eta/k \text{ for the mean over } n\cdot k \text{ entries}),

with t counted in epochs (full-batch GD steps of size η), N the depth and c the
reduction's factor. Depth 2 is the logistic curve

.. math::
    u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau} - 1 + s/u_0},

which takes t_{1/2} = (τ/2s)·ln(s/u0 − 1) ≈ (τ/2s)·ln(s/u0) to reach s/2: stronger modes
are learned first, and each in a sharp sigmoidal step. Depth 1 is
u(t) = s + (u0 − s)e^{−t/τ}; deeper nets follow Saxe's implicit t(u), integrated here.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad, solve_ivp

from ..config import parse_widths
from ..data import Dataset
from ..stats import Stats
from .least_squares import check_reduction


def whiten(data: Dataset) -> Dataset:
    """The same problem with whitened features: X ← X Σ^{-1/2}, Σ = XᵀX/n, so XᵀX/n = I.

    Σ is the uncentred second moment, Saxe's Σ¹¹ = E[xxᵀ]. Predictions are unchanged for
    W ← Σ^{1/2} W, so the true weights (when known) are mapped that way.

    Examples
    --------
    >>> from linlab.data import synthetic
    >>> w = whiten(synthetic(n=100, d=3, k=2, condition=10.0, seed=0))
    >>> bool(np.allclose(w.X.T @ w.X / 100, np.eye(3)))
    True
    """
    X = np.asarray(data.X, dtype=np.float64)
    evals, evecs = np.linalg.eigh(X.T @ X / data.n_samples)
    if evals[0] <= 1e-12 * max(evals[-1], 1e-300):
        raise ValueError(
            f"the features of {data.name!r} are linearly dependent (smallest eigenvalue of XᵀX/n "
            f"is {evals[0]:.3g}); whitening needs n >= d independent columns. Drop redundant columns."
        )
    root, inv_root = (evecs * evals**0.5) @ evecs.T, (evecs / evals**0.5) @ evecs.T
    W_true = None if data.W_true is None else root @ data.W_true
    return Dataset(X @ inv_root, data.Y, W_true, name=f"whitened({data.name})",
                   provenance={**data.provenance, "whitened": True})


def _orthonormal(rng, rows: int, cols: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((rows, cols)))
    return Q * np.sign(np.diag(R))  # (rows, cols), orthonormal columns


def saxe_dataset(strengths, n: int = 200, d: int | None = None, k: int | None = None,
                 seed: int = 0) -> Dataset:
    """Whitened data whose input-output correlation has exactly the given singular values.

    X = √n·Q with orthonormal columns (so XᵀX = nI), M = U diag(strengths) Vᵀ with random
    orthonormal U (d×m), V (k×m), and Y = XM, hence XᵀY/n = M = W_true.

    Examples
    --------
    >>> ds = saxe_dataset([3.0, 1.0], n=50, d=4, k=3)
    >>> np.round(np.linalg.svd(ds.X.T @ ds.Y / 50, compute_uv=False), 10).tolist()
    [3.0, 1.0, 0.0]
    """
    s = np.asarray(strengths, dtype=np.float64).ravel()
    m = s.size
    d, k = m if d is None else d, m if k is None else k
    if m < 1 or not np.all(np.isfinite(s) & (s >= 0)):
        raise ValueError(f"strengths={strengths!r} must be one or more finite numbers >= 0.")
    if m > min(d, k) or n < d:
        raise ValueError(
            f"{m} strengths need d, k >= {m} and n >= d; got n={n}, d={d}, k={k}. "
            "Raise d, k or n."
        )
    rng = np.random.default_rng(seed)
    X = np.sqrt(n) * _orthonormal(rng, n, d)  # (n, d), XᵀX = nI
    M = (_orthonormal(rng, d, m) * s) @ _orthonormal(rng, k, m).T  # (d, k)
    prov = {"source": "saxe", "strengths": s.tolist(), "n": n, "d": d, "k": k, "seed": seed}
    return Dataset(X, X @ M, M, name=f"saxe(n={n},d={d},k={k})", provenance=prov)


def target_modes(stats: Stats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SVD M = U S Vᵀ of the input-output correlation M = XᵀY/n (thin: m = min(d, k)).

    Examples
    --------
    >>> U, s, Vt = target_modes(Stats.of(saxe_dataset([2.0, 0.5]).X, saxe_dataset([2.0, 0.5]).Y))
    >>> np.round(s, 10).tolist()
    [2.0, 0.5]
    """
    return np.linalg.svd(stats.C / stats.n, full_matrices=False)


def mode_strengths(W, stats: Stats) -> np.ndarray:
    """u_α = U[:, α]ᵀ W V[:, α]: the end-to-end W projected on each mode of M = XᵀY/n.

    Examples
    --------
    >>> ds = saxe_dataset([2.0, 0.5])
    >>> np.round(mode_strengths(ds.W_true, Stats.of(ds.X, ds.Y)), 10).tolist()
    [2.0, 0.5]
    """
    U, _, Vt = target_modes(stats)
    return np.einsum("im,ij,mj->m", U, np.asarray(W, dtype=np.float64), Vt)


def saxe_factors(stats: Stats, widths, u0, seed: int = 0) -> list[np.ndarray]:
    """Decoupled, balanced factors with mode strengths u0 along the modes of M = XᵀY/n.

    W1 = U a Q1ᵀ, Wj = Q_{j−1} a Qjᵀ, WL = Q_{L−1} a Vᵀ with a = diag(u0)^{1/L} and random
    orthonormal Qj (hidden bases); the first r = min(widths) modes get strength u0 (a
    number or r numbers > 0), the others 0. From here GD keeps the modes decoupled.

    Examples
    --------
    >>> ds = saxe_dataset([2.0, 0.5], d=3, k=2)
    >>> s = Stats.of(ds.X, ds.Y)
    >>> W1, W2 = saxe_factors(s, (3, 4, 2), 1e-3)
    >>> np.round(mode_strengths(W1 @ W2, s), 12).tolist()
    [0.001, 0.001]
    """
    widths = list(parse_widths(widths))
    if (widths[0], widths[-1]) != (stats.n_features, stats.n_targets):
        raise ValueError(f"widths={tuple(widths)} must start at {stats.n_features} and end at {stats.n_targets}.")
    r, L = min(widths), len(widths) - 1
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), (r,))
    if not np.all(np.isfinite(u0) & (u0 > 0)):
        raise ValueError(f"u0={u0.tolist()} must be finite numbers > 0 (small, e.g. 1e-3).")
    U, _, Vt = target_modes(stats)
    rng = np.random.default_rng(seed)
    bases = [U[:, :r]] + [_orthonormal(rng, h, r) for h in widths[1:-1]] + [Vt[:r].T]
    a = u0 ** (1.0 / L)
    return [(bases[j] * a) @ bases[j + 1].T for j in range(L)]


def saxe_tau(lr: float, n: int, n_targets: int = 1, reduction: str = "sum") -> float:
    """The time constant τ, in epochs, of whitened-input dynamics: 1/τ = 2cnη.

    c = 1 for the summed loss (τ = 1/(2nη)) and 1/(n·k) for the mean (τ = k/(2η)).

    Examples
    --------
    >>> saxe_tau(1e-3, n=100), saxe_tau(0.1, n=100, n_targets=2, reduction="mean")
    (5.0, 10.0)
    """
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a finite number > 0.")
    check_reduction(reduction)
    c = 1.0 if reduction == "sum" else 1.0 / (n * n_targets)
    return 1.0 / (2.0 * c * n * lr)


def _check_modes(s, u0, depth):
    s, u0 = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(u0, dtype=np.float64))
    if not np.all(np.isfinite(s) & (s >= 0)):
        raise ValueError(f"s={s.tolist()} must be finite numbers >= 0 (singular values of XᵀY/n).")
    if not np.all(np.isfinite(u0) & (u0 > 0)):
        raise ValueError(f"u0={u0.tolist()} must be finite numbers > 0 (initial mode strengths).")
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth={depth!r} must be a positive integer (the number of factors).")
    return s, u0, int(depth)


def saxe_trajectory(s, u0, lr: float, epochs: int, *, n: int = 1, n_targets: int = 1,
                    reduction: str = "sum", depth: int = 2) -> np.ndarray:
    r"""Mode strengths u(t) under gradient flow, at t = 0, 1, …, epochs (in epochs).

    Parameters
    ----------
    s : float or array_like
        Singular values of M = XᵀY/n (the mode's target strength).
    u0 : float or array_like
        Initial strengths (> 0), broadcast against `s`.
    lr : float
        The learning rate η of the GD being modelled.
    epochs : int
    n, n_targets, reduction
        Set τ (:func:`saxe_tau`); inputs must be whitened, XᵀX = nI.
    depth : int
        N, the number of factors.

    Returns
    -------
    ndarray of shape (epochs + 1,) + broadcast shape of (s, u0)

    Notes
    -----
    Depth 2 (Saxe et al. 2014, eq. 8), written without overflow for large t:

    .. math::
        u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau} - 1 + s/u_0}
             = \frac{u_0}{e^{-2st/\tau} + u_0\,(1 - e^{-2st/\tau})/s},

    which is u0/(1 + 2u0t/τ) at s = 0. Depth 1: u = s + (u0 − s)e^{−t/τ}. Depth N ≥ 3:
    τ du/dt = N u^{2−2/N}(s − u) integrated in ln u (LSODA, rtol 1e-10). Gradient descent
    with step η follows these curves up to O(η) relative error in time.

    Examples
    --------
    >>> u = saxe_trajectory([2.0, 1.0], 1e-3, lr=1e-3, epochs=3000, n=100)
    >>> np.round(u[-1], 6).tolist()  # both modes learned: u → s
    [2.0, 1.0]
    >>> bool(np.all(np.diff(u, axis=0) >= 0))  # monotone, sigmoidal rise
    True
    """
    s, u0, N = _check_modes(s, u0, depth)
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be an integer >= 0.")
    tau = saxe_tau(lr, n, n_targets, reduction)
    t = np.arange(int(epochs) + 1, dtype=np.float64).reshape((-1,) + (1,) * s.ndim)
    if N == 1:
        return s + (u0 - s) * np.exp(-t / tau)
    if N == 2:
        x = 2.0 * s * t / tau
        positive = s > 0
        rise = np.where(positive, -np.expm1(-x) / np.where(positive, s, 1.0), 2.0 * t / tau)
        return u0 / (np.exp(-x) + u0 * rise)
    if t.size == 1:  # epochs = 0: solve_ivp needs an interval of positive length
        return u0[None] * 1.0
    s_flat, u0_flat = s.ravel(), u0.ravel()

    def rate(_, x):  # x = ln u
        return (N / tau) * np.exp(x * (1.0 - 2.0 / N)) * (s_flat - np.exp(x))

    sol = solve_ivp(rate, (0.0, float(epochs)), np.log(u0_flat), method="LSODA",
                    t_eval=t.ravel(), rtol=1e-10, atol=1e-12)
    return np.exp(sol.y.T).reshape((-1,) + s.shape)


def saxe_time_to_learn(s, u0, lr: float, *, fraction: float = 0.5, n: int = 1, n_targets: int = 1,
                       reduction: str = "sum", depth: int = 2):
    r"""Epochs for a mode to grow from u0 to fraction·s under gradient flow.

    Notes
    -----
    Saxe et al. (2014)'s implicit solution, from τ du/dt = N u^{2−2/N}(s − u):

    .. math::
        t(u_f) = \tau \int_{u_0}^{u_f} \frac{dv}{N v^{2-2/N}(s - v)}
        \;\overset{N=2}{=}\; \frac{\tau}{2s} \ln\frac{u_f (s - u_0)}{u_0 (s - u_f)},

    so at depth 2 the half-way time is (τ/2s) ln(s/u0 − 1) ≈ (τ/2s) ln(s/u0): inversely
    proportional to the strength s. Depth 1 gives τ ln((s − u0)/(s − u_f)); deeper nets
    are integrated numerically (adaptive quadrature in ln v).

    Examples
    --------
    >>> t = saxe_time_to_learn([2.0, 1.0], 1e-3, lr=1e-3, n=100)  # τ = 5 epochs
    >>> np.round(t, 3).tolist()  # (τ/2s)·ln(s/u0 − 1)
    [9.501, 17.267]
    """
    s, u0, N = _check_modes(s, u0, depth)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} must lie strictly between 0 and 1 (0.5: half-learned).")
    uf = fraction * s
    if np.any(u0 >= uf):
        raise ValueError(
            f"u0={u0.tolist()} must lie below fraction·s = {uf.tolist()}; the mode is already "
            "learned that far. Use a smaller u0 or a larger fraction."
        )
    tau = saxe_tau(lr, n, n_targets, reduction)
    if N == 1:
        return tau * np.log((s - u0) / (s - uf))
    if N == 2:
        return tau / (2.0 * s) * np.log(uf * (s - u0) / (u0 * (s - uf)))

    def one(s_, u0_, uf_):  # dv = v d(ln v)
        value, _ = quad(lambda x: np.exp(x * (2.0 / N - 1.0)) / (N * (s_ - np.exp(x))),
                        np.log(u0_), np.log(uf_), epsabs=0.0, epsrel=1e-10)
        return tau * value

    return np.vectorize(one)(s, u0, uf)
