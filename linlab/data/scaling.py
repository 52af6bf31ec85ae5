"""Standardization of features and targets, stored as plain lists so a checkpoint can hold it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FIELDS = ("x_mean", "x_std", "y_mean", "y_std")


def _matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} has shape {a.shape}; expected a 2-D array. Use a.reshape(-1, 1) for one column.")
    return a


def _max_abs(a: np.ndarray) -> np.ndarray:
    m = np.abs(a).max(axis=0)
    return np.where(m > 0, m, 1.0)


def _spread(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; constant columns (and columns whose spread is
    subnormal, so that 1/std overflows) get std 1.

    Each column is divided by its largest magnitude first, so squares neither overflow
    (values near 1e300) nor underflow (values near 1e-300).
    """
    s = _max_abs(a)
    mean = (a / s).mean(axis=0) * s
    centered = a - mean
    t = _max_abs(centered)
    std = np.sqrt(((centered / t) ** 2).mean(axis=0)) * t  # population std (ddof=0)
    constant = std <= len(a) * np.finfo(np.float64).eps * np.abs(mean)  # includes std == 0
    constant |= std < 1.0 / np.finfo(np.float64).max  # subnormal spread: 1/std would overflow
    return mean, np.where(constant, 1.0, std)


@dataclass(frozen=True, eq=False)
class Scaler:
    """Column standardization of features and targets, and its inverse.

    Parameters
    ----------
    x_mean, x_std : ndarray of shape (n_features,)
    y_mean, y_std : ndarray of shape (n_targets,)

    Notes
    -----
    z = (x − μ) / σ column by column, with μ the mean and σ the population standard
    deviation (ddof=0). A constant column (σ ≤ n·ε·|μ|, i.e. zero up to rounding, or σ
    subnormal, so that 1/σ overflows) keeps σ = 1, instead of a division by zero.

    A model fitted on standardized data, Ŷz = Xz·W, predicts in original units with

        Ŷ = Ŷz·diag(σ_y) + μ_y = X·W' + b,  W' = diag(1/σ_x)·W·diag(σ_y),  b = μ_y − μ_x·W'.

    Examples
    --------
    >>> X = np.array([[1.0, 5.0], [3.0, 5.0]]); Y = np.array([[10.0], [20.0]])
    >>> s = Scaler.fit(X, Y)
    >>> s.transform_X(X).tolist(), s.x_std.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
    >>> s.inverse_Y(s.transform_Y(Y)).tolist()
    [[10.0], [20.0]]
    >>> Scaler.from_dict(s.to_dict()).y_mean.tolist()
    [15.0]
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    @classmethod
    def fit(cls, X, Y) -> Scaler:
        """Means and standard deviations of the columns of X (n, d) and Y (n, k)."""
        X, Y = _matrix("X", X), _matrix("Y", Y)
        return cls(*_spread(X), *_spread(Y))

    def transform_X(self, X) -> np.ndarray:
        """Xz = (X − μ_x) / σ_x."""
        X = self._check("X", X, self.x_mean)
        return (X - self.x_mean) / self.x_std

    def transform_Y(self, Y) -> np.ndarray:
        """Yz = (Y − μ_y) / σ_y."""
        Y = self._check("Y", Y, self.y_mean)
        return (Y - self.y_mean) / self.y_std

    def inverse_Y(self, Yz) -> np.ndarray:
        """Y = Yz·σ_y + μ_y: predictions back in the targets' units."""
        Yz = self._check("Yz", Yz, self.y_mean)
        return Yz * self.y_std + self.y_mean

    def original_weights(self, W) -> tuple[np.ndarray, np.ndarray]:
        """W' and b with X·W' + b = inverse_Y(transform_X(X)·W) for every X.

        Parameters
        ----------
        W : ndarray of shape (n_features, n_targets)
            End-to-end weights learned on standardized data.

        Returns
        -------
        W_orig : ndarray of shape (n_features, n_targets)
        intercept : ndarray of shape (n_targets,)

        Examples
        --------
        >>> s = Scaler.fit(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]]))
        >>> W, b = s.original_weights(np.array([[1.0]]))
        >>> W.tolist(), b.tolist()
        ([[2.0]], [1.0])
        """
        W = np.asarray(W, dtype=np.float64)
        expected = (len(self.x_mean), len(self.y_mean))
        if W.shape != expected:
            raise ValueError(f"W has shape {W.shape}; expected (n_features, n_targets) = {expected}.")
        W_orig = W / self.x_std[:, None] * self.y_std[None, :]
        return W_orig, self.y_mean - self.x_mean @ W_orig

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists of floats, for JSON, provenance and checkpoints."""
        return {name: [float(v) for v in getattr(self, name)] for name in _FIELDS}

    @classmethod
    def from_dict(cls, state: dict) -> Scaler:
        """Rebuild a scaler from `to_dict`'s output, checking keys, lengths and signs."""
        missing = [name for name in _FIELDS if name not in state]
        if missing:
            raise ValueError(
                f"scaler state lacks {missing}; expected keys {list(_FIELDS)} as written by to_dict()."
            )
        arrays = [np.asarray(state[name], dtype=np.float64) for name in _FIELDS]
        for name, a in zip(_FIELDS, arrays):
            if a.ndim != 1 or not np.all(np.isfinite(a)):
                raise ValueError(f"scaler state {name}={state[name]!r} must be a list of finite numbers.")
        for mean, std in ((0, 1), (2, 3)):
            if arrays[mean].shape != arrays[std].shape or np.any(arrays[std] <= 0):
                raise ValueError(
                    f"scaler state {_FIELDS[std]}={state[_FIELDS[std]]!r} must hold one positive number per "
                    f"entry of {_FIELDS[mean]} ({len(arrays[mean])})."
                )
        return cls(*arrays)

    def _check(self, name: str, a, mean: np.ndarray) -> np.ndarray:
        a = _matrix(name, a)
        if a.shape[1] != len(mean):
            raise ValueError(
                f"{name} has {a.shape[1]} columns but the scaler was fit on {len(mean)}; pass the same "
                "columns, in the same order, as in training."
            )
        return a
