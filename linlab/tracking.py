"""Live tracking of a run in TensorBoard: loss, learning rate and the end-to-end spectrum.

API
---
``TensorBoardCallback(logdir, every=1, *, max_singular_values=None)``
    A ``fit(callbacks=...)`` callback; call ``final(result)`` (or ``close()``) after ``fit``.

Scalars, with ``step`` = updates done, the convention of ``RunResult.history``:

- ``loss`` at step t: the training loss after t updates (``history[t]``);
- ``val_loss`` at step t, when the run has validation rows;
- ``lr`` at step t: the learning rate of the update from t to t + 1;
- ``sv/i`` at step t: the i-th largest singular value σ_i of W = W1·…·WL after t updates.

Needs the ``tensorboard`` package (``pip install tensorboard``); view with
``tensorboard --logdir LOGDIR``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .models import end_to_end


class TensorBoardUnavailable(ValueError):
    """TensorBoard logging was asked for but the ``tensorboard`` package is missing."""


def _summary_writer(logdir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise TensorBoardUnavailable(
            f"logging to TensorBoard (logdir={logdir!r}) needs the tensorboard package, which is "
            f"not importable here ({e}); run `pip install tensorboard` (or `pip install "
            "linlab[tensorboard]`), or drop the TensorBoard option."
        ) from None
    return SummaryWriter(log_dir=logdir)


def singular_values(factors) -> np.ndarray:
    r"""Singular values σ_1 ≥ σ_2 ≥ … of the end-to-end matrix W = W1·W2·…·WL.

    Examples
    --------
    >>> singular_values([np.diag([3.0, 1.0]), np.eye(2) * 2]).tolist()
    [6.0, 2.0]
    """
    return np.linalg.svd(np.asarray(end_to_end(factors), dtype=np.float64), compute_uv=False)


class TensorBoardCallback:
    """Write a run's loss, learning rate and end-to-end singular values to TensorBoard.

    Parameters
    ----------
    logdir : str or Path
        The folder of the event files (created).
    every : int
        Write after every `every`-th update.
    max_singular_values : int, optional
        Log only σ_1..σ_m (all min(d, k) by default).

    Raises
    ------
    TensorBoardUnavailable
        When ``tensorboard`` is not installed (a ``ValueError`` that says what to install).

    Examples
    --------
    >>> import tempfile
    >>> from linlab import TrainConfig, seed_dataset
    >>> from linlab.engines import fit
    >>> tb = TensorBoardCallback(tempfile.mkdtemp(), every=5)
    >>> r = fit(seed_dataset(), TrainConfig(widths=(10, 2), lr=1e-5, epochs=10), callbacks=[tb])
    >>> tb.final(r)
    >>> tb.steps_written
    [5, 10]
    """

    def __init__(self, logdir, every: int = 1, *, max_singular_values: int | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be a positive integer (log after every N epochs).")
        if max_singular_values is not None and max_singular_values < 1:
            raise ValueError(f"max_singular_values={max_singular_values!r} must be >= 1, or None for all.")
        self.logdir, self.every, self.max_sv = Path(logdir), every, max_singular_values
        self.writer = _summary_writer(str(self.logdir))
        self.steps_written: list[int] = []

    def _spectrum(self, factors, step: int) -> None:
        sv = singular_values(factors)[: self.max_sv]
        for i, s in enumerate(sv):
            self.writer.add_scalar(f"sv/{i}", float(s), step)

    def __call__(self, epoch) -> None:
        t = epoch.epoch
        if t % self.every:
            return
        self.writer.add_scalar("loss", epoch.loss, t - 1)  # the loss before this update
        self.writer.add_scalar("lr", epoch.lr, t - 1)
        engine = epoch.engine
        if getattr(engine, "val", None) is not None:
            self.writer.add_scalar("val_loss", engine.val_loss(), t)
        self._spectrum(engine.params()[0], t)
        self.steps_written.append(t)

    def final(self, result) -> None:
        """Write the last loss and spectrum of `result` (a ``RunResult``), then close."""
        self.writer.add_scalar("loss", result.final_loss, result.epochs)
        if result.val_history is not None:
            self.writer.add_scalar("val_loss", float(result.val_history[-1]), result.epochs)
        self._spectrum(result.factors, result.epochs)
        self.close()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
