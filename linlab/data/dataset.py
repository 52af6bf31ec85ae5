"""The `Dataset` value: features X, targets Y, optionally the true weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _as_matrix(name: str, a, source: str) -> np.ndarray:
    """Check that `a` is a finite, numeric, non-empty 2-D array and return it."""
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(
            f"{name} in {source} has dtype {a.dtype}; expected a numeric array. "
            "Convert text columns to numbers or drop them."
        )
    if np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} in {source} is complex; linlab fits real-valued data only.")
    if a.ndim != 2:
        raise ValueError(
            f"{name} in {source} has shape {a.shape}; expected a 2-D array "
            f"(n_samples, n_{'features' if name == 'X' else 'targets'}). "
            "Use a.reshape(-1, 1) for a single column."
        )
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} in {source} has shape {a.shape}; it needs at least one row and one column.")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} in {source} has {int(bad.sum())} non-finite value(s); the first is "
                f"{a[row, col]} at row {row}, column {col}. Remove or impute them."
            )
    return a


@dataclass(frozen=True, eq=False)
class Dataset:
    """A regression problem Y ≈ X·W, validated on construction.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    W_true : ndarray of shape (n_features, n_targets), optional
        The weights that generated Y, when known (seed and synthetic data).
    name : str
        A short label used in logs, tables and checkpoints.
    provenance : dict
        How the data was made or where it was read from (JSON-serialisable).

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.ones((3, 2)), np.zeros((3, 1)), name="toy")
    >>> ds.n_samples, ds.n_features, ds.n_targets
    (3, 2, 1)
    >>> Dataset(np.ones((3, 2)), np.zeros((4, 1)))
    Traceback (most recent call last):
    ...
    ValueError: X has 3 rows but Y has 4 in dataset 'data'; they must match row for row.
    """

    X: np.ndarray
    Y: np.ndarray
    W_true: np.ndarray | None = None
    name: str = "data"
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        source = f"dataset {self.name!r}"
        X = _as_matrix("X", self.X, source)
        Y = _as_matrix("Y", self.Y, source)
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} rows but Y has {Y.shape[0]} in {source}; "
                "they must match row for row."
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)
        if self.W_true is not None:
            W = _as_matrix("W_true", self.W_true, source)
            if W.shape != (X.shape[1], Y.shape[1]):
                raise ValueError(
                    f"W_true has shape {W.shape} in {source}; expected "
                    f"(n_features, n_targets) = {(X.shape[1], Y.shape[1])}."
                )
            object.__setattr__(self, "W_true", W)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_targets(self) -> int:
        return self.Y.shape[1]

    def split(self, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Split rows at random into a training and a validation dataset.

        Examples
        --------
        >>> import numpy as np
        >>> train, val = Dataset(np.arange(20.).reshape(10, 2), np.ones((10, 1))).split(0.3)
        >>> train.n_samples, val.n_samples
        (7, 3)
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
        n_val = int(round(val_fraction * self.n_samples))
        if n_val < 1:
            raise ValueError(
                f"val_fraction={val_fraction} of {self.n_samples} rows leaves no row for validation; "
                f"use val_fraction >= {0.5 / self.n_samples:.3g} or more data."
            )
        if n_val >= self.n_samples:
            raise ValueError(
                f"val_fraction={val_fraction} of {self.n_samples} rows puts all {n_val} in validation and "
                f"leaves none for training; use val_fraction < {1 - 0.5 / self.n_samples:.3g} or more data."
            )
        order = np.random.default_rng(seed).permutation(self.n_samples)
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        prov = {**self.provenance, "split": {"val_fraction": val_fraction, "seed": seed}}
        return (
            Dataset(self.X[train_rows], self.Y[train_rows], self.W_true, f"{self.name}[train]", prov),
            Dataset(self.X[val_rows], self.Y[val_rows], self.W_true, f"{self.name}[val]", prov),
        )
