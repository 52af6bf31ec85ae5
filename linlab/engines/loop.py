"""The training loop shared by every single-run engine: epochs, stop conditions, logs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .. import optim
from ..config import TrainConfig
from ..data import Dataset
from ..models import init_biases, init_factors
from ..results import RunResult
from .base import Engine
from .stop_rules import (
    converged_message,
    diverged_message,
    divergence_limit,
    has_stalled,
    is_diverged,
    max_epochs_message,
    stalled_message,
)


def make_engine(name: str, data, config, factors, biases=None, val=None) -> Engine:
    """Instantiate engine `name` (torch is imported only for the torch engines)."""
    if name == "numpy":
        from .numpy_engine import NumpyEngine

        return NumpyEngine(data, config, factors, biases, val)
    if name in ("autograd", "module"):
        from .torch_engines import AutogradEngine, ModuleEngine

        cls = AutogradEngine if name == "autograd" else ModuleEngine
        return cls(data, config, factors, biases, val)
    if name == "batched":  # a stack of one; many runs at once: linlab.engines.batched.fit_batched
        from .batched.engine import BatchedEngine

        return BatchedEngine(data, config, factors, biases, val)
    raise ValueError(f"engine={name!r} has no single-run form; use 'numpy', 'autograd', 'module' or 'batched'.")


@dataclass
class Epoch:
    """What a callback sees after each update: ``epoch`` updates are done."""

    epoch: int
    loss: float  # the loss before this epoch's update
    lr: float
    engine: Engine
    state: Callable[[], dict]  # everything needed to resume from here


@contextmanager
def _flush_denormals(config):
    # near zero loss, denormal floats slow torch's CPU kernels 30-50x (measured on the seed)
    if config.engine == "numpy":
        yield
        return
    import torch

    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _batches(rng, n: int, batch_size: int | None, shuffle: bool):
    if batch_size is None or batch_size >= n:
        return None
    order = rng.permutation(n) if shuffle else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class _Reported(list):
    """An epoch's mini-batches that call ``on_batch(done, total)`` as the engine walks them."""

    def __init__(self, batches, on_batch):
        super().__init__(batches)
        self.on_batch, self.every = on_batch, max(1, len(batches) // 200)  # about 200 reports an epoch

    def __iter__(self):
        total = len(self)
        for i, rows in enumerate(super().__iter__(), start=1):
            yield rows
            if i % self.every == 0 or i == total:
                self.on_batch(i, total)


def fit(
    data: Dataset,
    config: TrainConfig,
    *,
    factors=None,
    biases=None,
    val: Dataset | None = None,
    log: Callable[[str], None] | None = None,
    callbacks: tuple[Callable[[Epoch], None], ...] = (),
    resume: dict | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Train one model and return its :class:`~linlab.results.RunResult`.

    Each epoch: evaluate the loss (the seed's forward pass), record it, log it, stop if
    it is non-finite or exploding (``diverged``: the last finite state is kept), small
    enough (``converged``) or no longer improving (``stalled``); otherwise update.

    Parameters
    ----------
    data, config
        The training rows and the run's settings.
    factors, biases
        Initial parameters (NumPy); by default made from ``config.init`` and ``config.seed``
        (``linlab.train``, the CLI and sweeps pass :func:`~linlab.models.initial_factors`).
    val
        Optional validation rows; their loss is recorded alongside.
    log
        Receives the seed's line ``Epoch [10/750], Loss: 1149920.9260`` every
        ``config.log_every`` epochs.
    callbacks
        Called with an :class:`Epoch` after every update (checkpoints, TensorBoard).
    resume
        A state from ``Epoch.state()``: parameters, optimizer, history, epoch and RNG.
    on_batch
        With mini-batches, called as ``on_batch(done, total)`` about 200 times an epoch
        (a display of long epochs); it does not change the run.

    Examples
    --------
    >>> from linlab.data import seed_dataset
    >>> r = fit(seed_dataset(), TrainConfig(widths=(10, 2), lr=4e-4, epochs=100, seed=1))
    >>> r.outcome, r.epochs_to_tol
    ('converged', 10)
    """
    if factors is None:
        factors = init_factors(config.widths, config.init, config.init_scale, config.seed)
    if biases is None:
        biases = init_biases(config.widths, config.bias)
    lr = config.lr
    if lr == "auto" and resume is None:  # a resumed run keeps the lr it was started with
        from ..theory import auto_lr

        lr = auto_lr(data, config, factors, biases)
    engine = make_engine(config.engine, data, config, factors, biases, val)
    rng = np.random.default_rng([config.seed, 1])  # the mini-batch order's own stream
    history, val_history, best = [], [], []
    lr_changes = []  # lr="auto", depth > 1: lowered whenever the loss rises
    if resume is not None:
        engine.set_params(resume["factors"], resume.get("biases"))
        engine.load_optimizer_state(resume["optimizer"])
        history, val_history = list(resume["history"]), list(resume.get("val_history") or [])
        best = list(np.minimum.accumulate(history)) if history else []
        rng.bit_generator.state = resume["rng"]
        lr = resume.get("lr", lr)
        # history holds the losses before each completed update; the next loss starts epoch t
    start = len(history)

    def state(t):
        f, b = engine.params()
        return {
            "epoch": t, "factors": f, "biases": b, "optimizer": engine.optimizer_state(),
            "history": history[:t], "val_history": val_history[:t] or None,
            "rng": rng.bit_generator.state, "lr": lr, "config": config.to_dict(),
        }

    outcome, message, snapshot = "max_epochs", "", None
    epochs_to_tol = None
    t0 = time.perf_counter()
    with _flush_denormals(config):
        for t in range(start, config.epochs + 1):
            loss = engine.loss()
            limit = divergence_limit(config.diverge_factor, history[0] if history else loss)
            if not history and not math.isfinite(loss):
                raise ValueError(
                    f"the loss at the initial factors is {loss}, so no step can be taken: the data "
                    f"or the initial factors (init={config.init!r}, init_scale={config.init_scale:g}) "
                    "overflow. Lower init_scale, or standardize the data."
                )
            if is_diverged(loss, limit if history else None):
                outcome = "diverged"
                message = diverged_message(t, loss, lr, history[-1])
                if snapshot is not None:
                    engine.set_params(*snapshot)
                else:  # the first epoch of a resumed run: no earlier state is held
                    message = (
                        f"diverged at epoch {t}, the first after resuming: loss became {loss:.4g} "
                        f"with lr={lr:.3g}; the factors are those the run resumed from."
                    )
                break
            history.append(loss)
            best.append(min(loss, best[-1]) if best else loss)
            if val is not None:
                val_history.append(engine.val_loss())
            if t == config.epochs:
                message = max_epochs_message(t, loss)
                break
            if log is not None and (t + 1) % config.log_every == 0:
                log(f"Epoch [{t + 1}/{config.epochs}], Loss: {loss:.4f}")
            if loss <= config.tol:
                outcome, epochs_to_tol = "converged", t
                message = converged_message(t, loss, config.tol)
                break
            w = config.stall_window
            if t >= w and has_stalled(best[t - w], best[t], config.stall_rtol):
                outcome = "stalled"
                message = stalled_message(t, best[t], config.stall_rtol, w)
                break
            if config.lr == "auto" and config.depth > 1 and len(history) > 1 and loss > history[-2]:
                from ..theory import reestimate_lr

                lr = reestimate_lr(data, config, engine.params, lr, history, lr_changes)
            snapshot = engine.params()
            lr_t = optim.lr_at(config, t, lr)
            batches = _batches(rng, data.n_samples, config.batch_size, config.shuffle)
            engine.step(lr_t, batches if on_batch is None or batches is None else _Reported(batches, on_batch))
            for cb in callbacks:
                cb(Epoch(t + 1, loss, lr_t, engine, lambda t=t: state(t + 1)))
    seconds = time.perf_counter() - t0
    f, b = engine.params()
    distance = None
    if data.W_true is not None:
        from ..models import end_to_end

        W_true = data.W_true.astype(np.float64)
        distance = float(np.linalg.norm(end_to_end(f) - W_true) / (np.linalg.norm(W_true) or 1.0))
    return RunResult(
        config={**config.to_dict(), "data": data.name}, outcome=outcome, message=message,
        history=np.asarray(history), epochs=len(history) - 1, lr=float(lr), factors=f, biases=b,
        val_history=np.asarray(val_history) if val is not None else None,
        epochs_to_tol=epochs_to_tol, seconds=seconds, distance_to_true=distance,
        initial_factors=None if resume is not None else [np.array(W, dtype=np.float64) for W in factors],
        extra={"lr_changes": lr_changes} if lr_changes else {},
    )
