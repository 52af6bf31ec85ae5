"""Deep linear networks: architectures, initial factors, and the ``nn.Module`` form.

One factor order everywhere: predictions = X @ W1 @ W2 @ … @ WL (+ biases), the seed's
order, with W_j of shape (widths[j-1], widths[j]). Depth 1 is plain regression.
"""

from __future__ import annotations

import numpy as np

from .config import INITS, parse_widths


def n_params(widths, bias: bool = False) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> n_params((10, 1, 2)), n_params((10, 5, 2)), n_params((10, 2))
    (12, 60, 20)
    """
    widths = parse_widths(widths)
    return sum(a * b + (b if bias else 0) for a, b in zip(widths[:-1], widths[1:]))


def end_to_end(factors) -> np.ndarray:
    """The product W1 @ W2 @ … @ WL, of shape (d, k)."""
    out = factors[0]
    for W in factors[1:]:
        out = out @ W
    return out


def end_to_end_bias(factors, biases) -> np.ndarray:
    """The offset of a network with a bias in every layer, ((b1 W2 + b2) W3 + b3) ⋯, shape (k,).

    Examples
    --------
    >>> end_to_end_bias([np.ones((2, 3)), 2 * np.ones((3, 1))], [np.ones(3), np.ones(1)]).tolist()
    [7.0]
    """
    b = np.asarray(biases[0], dtype=np.float64)
    for W, bj in zip(factors[1:], biases[1:]):
        b = b @ W + bj
    return b


def _orthogonal(rng, a: int, b: int) -> np.ndarray:
    # a (semi-)orthogonal (a, b) matrix: orthonormal columns if a >= b, rows otherwise
    M = rng.standard_normal((max(a, b), min(a, b)))
    Q, R = np.linalg.qr(M)
    Q = Q * np.sign(np.diag(R))  # uniform (Haar) distribution
    return Q if a >= b else Q.T


def _balanced(rng, widths, scale: float) -> list[np.ndarray]:
    # draw an end-to-end M = U Σ Vᵀ of rank r <= min(widths), then split Σ evenly:
    # W1 = U Σ^{1/L} Q1ᵀ, Wj = Q_{j-1} Σ^{1/L} Qjᵀ, WL = Q_{L-1} Σ^{1/L} Vᵀ.
    # Then Wjᵀ Wj = W_{j+1} W_{j+1}ᵀ = Qj Σ^{2/L} Qjᵀ: balanced (Arora et al. 2018, eq. 7).
    L, r = len(widths) - 1, min(widths)
    M = scale * rng.standard_normal((widths[0], widths[-1]))
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    root = np.diag(s[:r] ** (1.0 / L))
    Qs = [U[:, :r]] + [_orthogonal(rng, h, r) for h in widths[1:-1]] + [Vt[:r].T]
    return [Qs[j] @ root @ Qs[j + 1].T for j in range(L)]


def init_factors(widths, init: str = "normal", scale: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """Initial factors W1..WL in float64, from an explicit seed (no global random state).

    Parameters
    ----------
    widths : tuple of int
        ``(d, h1, ..., k)``.
    init : {"normal", "scaled", "orthogonal", "balanced", "zeros", "torch"}
        ``normal``: standard normal entries (the seed's ``randn``); ``scaled``: normal with
        std `scale`; ``orthogonal``: `scale` times a (semi-)orthogonal matrix;
        ``balanced``: factors of an end-to-end matrix with N(0, scale²) entries (its best
        rank-min(widths) approximation under a narrower hidden layer) satisfying
        Wjᵀ Wj = W_{j+1} W_{j+1}ᵀ; ``zeros``: all zero, a saddle gradient descent never
        leaves; ``torch``: ``nn.Linear``'s default U(−1/√fan_in, 1/√fan_in).
    scale : float
        See `init`; ignored by ``normal``, ``zeros`` and ``torch``.
    seed : int

    Examples
    --------
    >>> W1, W2 = init_factors((6, 3, 2), "balanced", scale=0.1, seed=0)
    >>> bool(np.allclose(W1.T @ W1, W2 @ W2.T))
    True
    """
    widths = parse_widths(widths)
    if init not in INITS:
        raise ValueError(f"init={init!r} is not one of {', '.join(map(repr, INITS))}.")
    return draw_factors(widths, init, scale, seed)


def draw_factors(widths: tuple[int, ...], init: str, scale: float, seed: int, rng=None) -> list[np.ndarray]:
    """:func:`init_factors` for widths and init already checked (a sweep draws thousands);
    `rng`, where given, must be in the state of ``np.random.default_rng(seed)`` (see
    :func:`linlab.seeding.seeded`).

    Examples
    --------
    >>> [W.shape for W in draw_factors((3, 2, 1), "normal", 1.0, 0)]
    [(3, 2), (2, 1)]
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    shapes = list(zip(widths[:-1], widths[1:]))
    if init == "normal":
        return [rng.standard_normal(s) for s in shapes]
    if init == "scaled":
        return [scale * rng.standard_normal(s) for s in shapes]
    if init == "orthogonal":
        return [scale * _orthogonal(rng, a, b) for a, b in shapes]
    if init == "balanced":
        return _balanced(rng, widths, scale)
    if init == "zeros":
        return [np.zeros(s) for s in shapes]
    return [rng.uniform(-1, 1, s) / np.sqrt(s[0]) for s in shapes]  # torch


# the initial factors the seed draws itself on each of its data variants (its steps 2-3, 4 and 5-7)
SEED_INITS = {"numpy": ("normal",), "torch": ("normal", "torch")}


def takes_seed_factors(data, config) -> bool:
    """Whether a run of `config` on `data` starts from the seed's own initial factors.

    The one rule, everywhere a run is made (``linlab.train``, ``linlab train``, ``advise``,
    sweeps, ``diagnose``; the engines' loops ``fit`` and ``fit_batched`` take the factors
    they are given, else ``init_factors`` of the config): on the seed's data (``seed``,
    ``seed-torch``, or a split of them), with an init the seed draws itself there (``normal``; ``torch`` too on
    ``seed-torch``) and ``seed=0`` (the default), a run starts from the seed's own weights,
    drawn right after its data (:func:`linlab.data.seed_factors`). Any other data, init or
    seed: :func:`init_factors` from ``config.seed``.

    Examples
    --------
    >>> from linlab import TrainConfig, seed_dataset
    >>> takes_seed_factors(seed_dataset(), TrainConfig()), takes_seed_factors(seed_dataset(), TrainConfig(seed=1))
    (True, False)
    """
    prov = getattr(data, "provenance", None) or {}
    return (prov.get("source") == "seed" and config.seed == 0
            and config.init in SEED_INITS.get(prov.get("variant"), ()))


def initial_factors(data, config) -> list[np.ndarray]:
    """The factors a run of `config` on `data` starts from (see :func:`takes_seed_factors`).

    Examples
    --------
    >>> from linlab import TrainConfig, seed_dataset, seed_factors
    >>> W, = initial_factors(seed_dataset(), TrainConfig(widths=(10, 2)))
    >>> bool(np.array_equal(W, seed_factors((10, 2))[0]))
    True
    """
    if takes_seed_factors(data, config):
        from .data.seed import seed_factors

        return seed_factors(config.widths, data.provenance["variant"], config.init)
    return init_factors(config.widths, config.init, config.init_scale, config.seed)


def init_biases(widths, bias: bool) -> list[np.ndarray] | None:
    """Zero biases, one per layer (``None`` for a bias-free model)."""
    return [np.zeros(w) for w in parse_widths(widths)[1:]] if bias else None


def __getattr__(name):  # DeepLinear needs torch: build it on first use only
    if name == "DeepLinear":
        from ._module import DeepLinear

        return DeepLinear
    raise AttributeError(f"module 'linlab.models' has no attribute {name!r}")
