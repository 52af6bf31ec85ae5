"""The stop rules of a training run, stated once.

The single-run loop (:func:`linlab.engines.fit`) applies them to one loss at a time, the
batched engine's stacks to arrays of runs (:mod:`linlab.engines.batched.stop`); the fused
kernels (TorchInductor graphs, the C kernel) implement the same rules in their own code and
are tested against these. In the order they are checked at epoch t, with ℓ_t the loss before
the t-th update:

- ``diverged``: ℓ_0 is not finite, or later ℓ_t is not ≤ diverge_factor · ℓ_0 (NaN included);
  the run keeps its last finite state;
- ``max_epochs``: t = epochs;
- ``converged``: ℓ_t ≤ tol;
- ``stalled``: the best loss so far fell by at most stall_rtol (relative) over the last
  stall_window epochs: best_{t-w} − best_t ≤ stall_rtol · best_{t-w}.

Every function takes floats or NumPy arrays alike.
"""

from __future__ import annotations

import numpy as np


def divergence_limit(diverge_factor, initial_loss):
    """The loss above which a run has diverged: diverge_factor · ℓ_0 (ℓ_0 floored at 1e-300).

    Examples
    --------
    >>> float(divergence_limit(1e3, 2.0))
    2000.0
    """
    return diverge_factor * np.maximum(initial_loss, 1e-300)


def is_diverged(loss, limit=None):
    """Whether `loss` means divergence: not finite at epoch 0 (``limit=None``), not ≤ `limit` later.

    Examples
    --------
    >>> bool(is_diverged(float("nan"), 10.0)), bool(is_diverged(11.0, 10.0)), bool(is_diverged(1e308))
    (True, True, False)
    """
    if limit is None:
        return np.logical_not(np.isfinite(loss))
    return np.logical_not(loss <= limit)


def has_stalled(past_best, best, rtol):
    """Whether the best loss fell by at most `rtol` (relative) from `past_best`, the best
    loss stall_window epochs back (NaN before then: never stalled).

    Examples
    --------
    >>> bool(has_stalled(100.0, 99.99, 1e-3)), bool(has_stalled(100.0, 90.0, 1e-3))
    (True, False)
    """
    return past_best - best <= rtol * past_best


def diverged_message(t: int, loss: float, lr: float, last_loss: float) -> str:
    """What a run that diverged at epoch `t` says (`last_loss`: its loss at t − 1)."""
    return (f"diverged at epoch {t}: loss became {loss:.4g} with lr={lr:.3g}; kept the "
            f"last finite state (epoch {t - 1}, loss {last_loss:.4g}).")


def max_epochs_message(t: int, loss: float) -> str:
    """What a run that reached its epoch limit `t` says."""
    return f"reached the epoch limit {t} at loss {loss:.4g}."


def converged_message(t: int, loss: float, tol: float) -> str:
    """What a run that converged at epoch `t` says."""
    return f"converged at epoch {t}: loss {loss:.4g} <= tol {tol:g}."


def stalled_message(t: int, best: float, rtol: float, window: int) -> str:
    """What a run that stalled at epoch `t` says."""
    return (f"stalled at epoch {t}: the best loss improved by less than "
            f"{rtol:g} (relative) over the last {window} epochs, at {best:.6g}.")
