"""The seed study's toy data, bit for bit, and the seed's own initial factors.

The seed draws everything from one global stream: NumPy's legacy ``np.random.seed(1)``
(steps 1-3) or ``torch.manual_seed(1)`` (steps 4-7). Here each recipe replays that stream
from a private generator, so nothing global is touched.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

N_SAMPLES, N_FEATURES, N_TARGETS = 1000, 10, 2
SEED = 1


def _numpy_stream() -> tuple[np.random.RandomState, np.ndarray, np.ndarray, np.ndarray]:
    # the seed: np.random.seed(1); x = randn(1000, 10).astype(float32);
    # W = randint(0, 20, (10, 2)); y = x.dot(W).astype(float32)
    rs = np.random.RandomState(SEED)
    x = rs.randn(N_SAMPLES, N_FEATURES).astype(np.float32)
    W = rs.randint(0, 20, size=(N_FEATURES, N_TARGETS))
    y = x.dot(W).astype(np.float32)
    return rs, x, W, y


def _torch_stream():
    import torch

    # the seed: torch.manual_seed(1); x = torch.randn(1000, 10);
    # W = torch.randint(0, 20, (10, 2), dtype=float32); y = x.mm(W)
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=g)
    W = torch.randint(0, 20, size=(N_FEATURES, N_TARGETS), dtype=torch.float32, generator=g)
    y = x.mm(W)
    return g, x, W, y


def seed_dataset(variant: str = "numpy") -> Dataset:
    """The seed's toy regression data, reproduced bit for bit.

    Parameters
    ----------
    variant : {"numpy", "torch"}
        ``"numpy"`` replays steps 1-3 (``np.random.seed(1)``); ``"torch"`` replays
        steps 4-7 (``torch.manual_seed(1)``). The two draw different numbers.

    Returns
    -------
    Dataset
        X of shape (1000, 10) and Y of shape (1000, 2), both float32 as in the seed, and
        the true integer weights W_true of shape (10, 2).

    Examples
    --------
    >>> ds = seed_dataset()
    >>> ds.X.shape, ds.Y.shape, ds.X.dtype
    ((1000, 10), (1000, 2), dtype('float32'))
    >>> int(ds.W_true[0, 0]), int(ds.W_true[0, 1])
    (15, 4)
    """
    if variant == "numpy":
        _, x, W, y = _numpy_stream()
        return Dataset(x, y, W, name="seed", provenance={"source": "seed", "variant": "numpy"})
    if variant == "torch":
        _, x, W, y = _torch_stream()
        return Dataset(
            x.numpy(), y.numpy(), W.numpy(), name="seed-torch",
            provenance={"source": "seed", "variant": "torch"},
        )
    raise ValueError(f"variant={variant!r} is not a seed variant; use 'numpy' or 'torch'.")


def seed_factors(widths, variant: str = "numpy", init: str = "normal") -> list[np.ndarray]:
    """The initial factors the seed draws right after its data, for `widths`.

    ``variant="numpy"`` continues the NumPy stream with ``randn`` per factor (steps 2-3);
    ``variant="torch"`` continues the torch stream with ``torch.randn`` (``init="normal"``,
    step 4) or with ``nn.Linear``'s default uniform init (``init="torch"``, steps 5-7).

    Examples
    --------
    >>> [f.shape for f in seed_factors((10, 5, 2))]
    [(10, 5), (5, 2)]
    """
    widths = tuple(int(w) for w in widths)
    if widths[0] != N_FEATURES or widths[-1] != N_TARGETS:
        raise ValueError(f"widths={widths} must start at {N_FEATURES} and end at {N_TARGETS} for the seed data.")
    shapes = list(zip(widths[:-1], widths[1:]))
    if variant == "numpy":
        if init != "normal":
            raise ValueError(f"init={init!r}: the seed's NumPy steps only use 'normal' (randn).")
        rs = _numpy_stream()[0]
        return [rs.randn(a, b) for a, b in shapes]
    if variant != "torch":
        raise ValueError(f"variant={variant!r} is not a seed variant; use 'numpy' or 'torch'.")
    import torch

    g = _torch_stream()[0]
    if init == "normal":
        return [torch.randn(a, b, generator=g).numpy() for a, b in shapes]
    if init == "torch":
        factors = []
        for a, b in shapes:
            weight = torch.empty(b, a)  # nn.Linear stores (out, in)
            torch.nn.init.kaiming_uniform_(weight, a=5**0.5, generator=g)
            factors.append(weight.T.contiguous().numpy())
        return factors
    raise ValueError(f"init={init!r}: the seed's torch steps use 'normal' (step 4) or 'torch' (steps 5-7).")
