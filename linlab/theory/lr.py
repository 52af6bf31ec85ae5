"""``lr="auto"``: a learning rate chosen from the curvature of the problem.

The rules, by model and optimizer (plain SGD; the others raise a ValueError saying so):

- depth 1, squared loss, full batch: the optimal constant lr 2/(λmin + λmax) over the
  nonzero Hessian spectrum (:func:`~linlab.theory.spectrum.lr_bounds`); with momentum μ > 0
  the lr that contracts heavy ball fastest for that μ
  (:func:`~linlab.theory.spectrum.momentum_lr`), which is Polyak's 4/(√λmax + √λmin)² when
  μ is at least ``lr_bounds(...).momentum``. The configured μ is kept as it is.
- depth 1, huber loss: the same on the quadratic region's Hessian s·XᵀX, an upper bound of
  the huber Hessian everywhere, so the rate is stable on the whole path.
- depth 1, ℓp loss with p >= 2: 1/λmax of the Hessian at the initial point (its curvature
  p(p−1)|r|^{p−2} shrinks as the residuals do); p < 2 has unbounded curvature near r = 0
  and is refused. With mini-batches and ``"mean"`` the Hessian is divided by the smallest
  batch's m·k entries instead of n·k (X_BᵀDX_B ⪯ XᵀDX bounds every batch).
- depth 1, mini-batches: 1/Λ with Λ an upper bound on every batch's Hessian,
  Λ = max over the batch sizes m (b, and n mod b for the last batch) of
  2s_m·min(λmax(XᵀX), Σ of the m largest ‖x_i‖²), s_m = 1 (sum) or 1/(m·k) (mean)
  (X_BᵀX_B ⪯ XᵀX, and λmax(X_BᵀX_B) <= tr(X_BᵀX_B)); each update is then a
  contraction, 0 ⪯ η·H_B ⪯ I.
- depth > 1, squared loss: ``SAFETY`` × 2/sharpness at the initial factors, sharpness from
  exact Hessian-vector products (:func:`~linlab.theory.deep.sharpness`). ``SAFETY = 1/2``
  puts every initial curvature direction in the monotone regime 0 <= ηλ <= 1 and leaves a
  factor 2 for the sharpness to grow along the path (it does: on the seed, (10, 5, 2) from
  randn factors sharpens from 1.1e5 to 1.6e5). If it grows further the loss rises and the
  training loop calls :func:`reestimate_lr`, which re-measures at the current factors.
  With mini-batches and ``"mean"`` the sharpness is scaled by n/m (m the smallest batch's
  rows): each batch's mean divides by its own m·k entries.
  With momentum μ the lr is scaled by 1 − μ, so the effective step η/(1 − μ) is the same
  (heavy ball is stable for ηλ < 2(1 + μ), so this is well inside), and rises are not
  taken as instability: heavy ball need not descend monotonically.
"""

from __future__ import annotations

import numpy as np

from ..stats import Stats
from .deep import sharpness
from .least_squares import _rows, as_stats
from .spectrum import bounds_from_spectrum, hessian_spectrum, momentum_lr

SAFETY = 0.5  # fraction of the stability bound 2/sharpness used for deep models
RISE_RTOL = 1e-9  # a loss rise larger than this (relative) is not rounding


def _refuse(config) -> None:
    if config.optimizer != "sgd":
        raise ValueError(
            f'lr="auto" applies to optimizer="sgd", not {config.optimizer!r}: adaptive methods '
            "rescale each step by their own statistics, so the curvature gives no bound. Give a "
            "number, e.g. lr=1e-3 for Adam (lr=0.1 is the seed's step 6)."
        )
    if config.nesterov:
        raise ValueError('lr="auto" covers heavy-ball momentum only; set nesterov=False or give lr.')
    if config.depth > 1 and config.loss != "squared":
        raise ValueError(
            f'lr="auto" for depth {config.depth} needs loss="squared" (the sharpness comes from '
            f"XᵀX and XᵀY), not {config.loss!r}; give lr as a number."
        )
    if config.loss == "lp" and config.p < 2:
        raise ValueError(
            f'lr="auto" needs p >= 2 for the lp loss; p={config.p} has unbounded curvature at zero '
            "residual. Give lr as a number."
        )


def _batch_curvature(data, config, stats: Stats) -> float:
    """Upper bound Λ on the top eigenvalue of every mini-batch's Hessian (squared loss)."""
    X, _ = _rows(data)
    if X is None:
        raise ValueError("mini-batch auto lr needs the rows of X; pass a Dataset, not Stats.")
    if config.bias:
        X = np.hstack([X, np.ones((X.shape[0], 1))])
    b = int(config.batch_size)
    top = np.cumsum(np.sort(np.sum(X * X, axis=1))[::-1])  # top[m - 1]: the m largest ‖x_i‖²
    lam_full = float(np.linalg.eigvalsh(X.T @ X)[-1])
    # batches hold b rows, the last n mod b; with "mean" the shorter one can be the sharper
    sizes = {b, X.shape[0] % b or b}
    scale = {m: 1.0 if config.reduction == "sum" else 1.0 / (m * stats.n_targets) for m in sizes}
    return max(2.0 * scale[m] * min(lam_full, float(top[m - 1])) for m in sizes)


def _lp_curvature(data, config, factors, biases) -> float:
    """λmax of the ℓp loss Hessian at W: blocks p(p−1)·Xᵀdiag(|r_j|^{p−2})X per target j
    (an upper bound for each mini-batch's Hessian)."""
    X, Y = _rows(data)
    if X is None:
        raise ValueError('lr="auto" for the lp loss needs the rows of X; pass a Dataset, not Stats.')
    W = np.asarray(factors[0], dtype=np.float64)
    R = X @ W - Y + (0.0 if biases is None else np.asarray(biases[0], dtype=np.float64))
    if config.bias:
        X = np.hstack([X, np.ones((X.shape[0], 1))])
    p = float(config.p)
    top = max(float(np.linalg.eigvalsh((X * np.abs(r)[:, None] ** (p - 2)).T @ X)[-1]) for r in R.T)
    rows = _smallest_batch(config, Y.shape[0])
    return p * (p - 1) * top * (1.0 if config.reduction == "sum" else 1.0 / (rows * Y.shape[1]))


def _smallest_batch(config, n: int) -> int:
    """Rows in the smallest batch of an epoch: n for full batch, else n mod b (or b)."""
    if config.batch_size is None or config.batch_size >= n:
        return n
    return n % config.batch_size or config.batch_size


def _depth1_lr(data, config, factors, biases) -> float:
    stats = as_stats(data)
    if config.loss == "lp":
        return 1.0 / (_lp_curvature(data, config, factors, biases) + config.weight_decay)
    half = 0.5 if config.loss == "huber" else 1.0  # huber: ½r² near zero
    if config.batch_size is not None and config.batch_size < stats.n:
        return 1.0 / (half * _batch_curvature(data, config, stats) + config.weight_decay)
    lam = half * hessian_spectrum(stats, reduction=config.reduction, intercept=config.bias)
    lam = lam + config.weight_decay
    if config.momentum > 0:
        return momentum_lr(lam, config.momentum)
    return bounds_from_spectrum(lam).optimal_lr


def top_curvature(stats: Stats, factors, reduction: str = "sum", biases=None) -> float:
    """The sharpness λmax(∇²ℓ), also where the Hessian vanishes altogether.

    With three or more all-zero factors (and no biases) every first and second
    derivative of P = W1⋯WL is zero, so ∇²ℓ = 0 and Lanczos has nothing to work on;
    0.0 is returned. Elsewhere this is :func:`~linlab.theory.deep.sharpness`.

    Examples
    --------
    >>> import numpy as np
    >>> s = Stats.of(np.eye(2), np.ones((2, 1)))
    >>> top_curvature(s, [np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 1))])
    0.0
    """
    if biases is None and sum(not np.any(W) for W in factors) >= 3:
        return 0.0
    return sharpness(stats, factors, reduction, biases)


def auto_lr(data, config, factors, biases=None) -> float:
    """The learning rate ``lr="auto"`` resolves to, for this data, model and start.

    Parameters
    ----------
    data : Dataset, Stats or (X, Y)
    config : TrainConfig
        Its depth, loss, reduction, bias, optimizer, momentum, weight decay and batch
        size select the rule (see the module's docstring).
    factors : list of ndarray
        The initial factors W1..WL.
    biases : list of ndarray, optional

    Returns
    -------
    float

    Notes
    -----
    Depth 1: η = 2/(λmin + λmax) of H = 2s·XᵀX (heavy ball with μ > 0); depth > 1:
    η = SAFETY · 2(1 − μ)/λmax(∇²ℓ(W1..WL)) = (1 − μ)/sharpness.

    Examples
    --------
    >>> from linlab import TrainConfig, seed_dataset, init_factors
    >>> cfg = TrainConfig(widths=(10, 2), lr="auto")
    >>> f"{auto_lr(seed_dataset(), cfg, init_factors(cfg.widths)):.3g}"
    '0.000495'
    """
    _refuse(config)
    if config.depth == 1:
        return float(_depth1_lr(data, config, factors, biases))
    stats = as_stats(data)
    top = top_curvature(stats, factors, config.reduction, biases)
    if config.reduction == "mean":  # each batch's mean divides by its own m·k entries, not n·k
        top *= stats.n / _smallest_batch(config, stats.n)
    top += config.weight_decay
    if not top > 0:
        raise ValueError(
            f"the loss Hessian at the initial factors has no positive curvature (sharpness {top:.3g}): "
            "all-zero factors are a saddle gradient descent never leaves. Use another init "
            "(e.g. init='scaled') or give lr as a number."
        )
    return SAFETY * 2.0 * (1.0 - config.momentum) / top


def reestimate_lr(data, config, params, lr: float, history, changes: list) -> float:
    """The lr to go on with after an epoch: lower when the last loss rose, else `lr`.

    Parameters
    ----------
    data, config
        As in :func:`auto_lr`.
    params : callable
        Returns the current (factors, biases); called only when the loss rose.
    lr : float
        The learning rate in use.
    history : sequence of float
        Losses so far; the last two are compared.
    changes : list
        Each change is appended as ``{"epoch", "from", "to", "loss"}``.

    Notes
    -----
    A rise by more than ``RISE_RTOL`` (relative) means the sharpness outgrew 2/lr.
    The new lr is min(auto_lr at the current factors, lr/2). Runs with momentum keep
    their lr (their loss may rise without any instability).

    Examples
    --------
    >>> from linlab import TrainConfig, seed_dataset
    >>> cfg, changes = TrainConfig(widths=(10, 1, 2), lr="auto"), []
    >>> reestimate_lr(seed_dataset(), cfg, None, 1e-5, [5.0, 4.0], changes), changes
    (1e-05, [])
    """
    if config.momentum > 0 or len(history) < 2 or not history[-1] > history[-2] * (1.0 + RISE_RTOL):
        return lr
    factors, biases = params()
    new = min(auto_lr(data, config, factors, biases), lr / 2.0)
    changes.append({"epoch": len(history) - 1, "from": float(lr), "to": float(new),
                    "loss": float(history[-1])})
    return new
