"""The seed's seven programs as named experiments, replayed to the last printed digit.

Each program is the seed's loop exactly: forward, loss, print every ten epochs, backward,
update, for every epoch, with no early stop (the seed had none), on the seed's data and
its own initial weights. The arithmetic is linlab's engines: ``numpy`` (steps 2-3),
``autograd`` (step 4), ``module`` with ``torch.optim`` (steps 6-7). Step 5 updates
``nn.Sequential``'s parameters by hand (``param -= lr * param.grad``), which rounds
differently from ``torch.optim.SGD``'s fused ``add_``; :class:`ManualUpdateEngine` is the
``module`` engine with that update.

How each run ended is read from its full history by :func:`outcome_of`, with the rules
of :func:`linlab.engines.fit` (converged, diverged, stalled, max_epochs).
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..config import TrainConfig
from ..data import seed_dataset, seed_factors
from ..engines import make_engine
from ..models import end_to_end


@dataclass(frozen=True)
class Program:
    """One of the seed's programs: its data stream, network, update rule and schedule."""

    name: str  # a short handle: "numpy-direct", "sequential", ...
    step: int  # the section of the seed post
    title: str
    widths: tuple[int, ...]
    lr: float
    epochs: int
    variant: str = "numpy"  # the seed's numpy (steps 1-3) or torch (steps 4-7) data stream
    engine: str = "numpy"  # numpy, autograd, module, or "manual" (module + hand-written update)
    optimizer: str = "sgd"
    init: str = "normal"  # randn (steps 2-4) or nn.Linear's own init (steps 5-7)

    def config(self) -> TrainConfig:
        """The program as a :class:`TrainConfig` (no early stop: the seed ran every epoch)."""
        engine = "module" if self.engine == "manual" else self.engine
        return TrainConfig(widths=self.widths, lr=self.lr, epochs=self.epochs, engine=engine,
                           optimizer=self.optimizer, init=self.init,
                           dtype="float64" if self.variant == "numpy" else "float32")


SEED_PROGRAMS = (
    Program("numpy-direct", 2, "NumPy, hand-written gradients, W directly", (10, 2), 1e-5, 750),
    Program("numpy-width1-small-lr", 3, "NumPy, W = W1·W2 of width 1, small lr", (10, 1, 2), 1e-5, 700),
    Program("numpy-width1-large-lr", 3, "NumPy, W = W1·W2 of width 1, large lr", (10, 1, 2), 1e-2, 700),
    Program("numpy-width5", 3, "NumPy, W = W1·W2 of width 5", (10, 5, 2), 1e-5, 700),
    Program("autograd", 4, "torch autograd, manual update under no_grad", (10, 5, 2), 1e-5, 700,
            "torch", "autograd"),
    Program("sequential", 5, "nn.Sequential + MSELoss(sum), manual update over parameters()",
            (10, 5, 2), 1e-5, 700, "torch", "manual", init="torch"),
    Program("adam", 6, "nn.Sequential + optim.Adam(lr=0.1)", (10, 5, 2), 0.1, 700, "torch", "module",
            "adam", "torch"),
    Program("custom-module", 7, "custom nn.Module (TwoLayerNet) + optim.SGD, saved as model.ckpt",
            (10, 5, 2), 1e-5, 700, "torch", "module", "sgd", "torch"),
)


def program(name: str) -> Program:
    """The seed program called `name` (see :data:`SEED_PROGRAMS`)."""
    for p in SEED_PROGRAMS:
        if p.name == name:
            return p
    names = ", ".join(p.name for p in SEED_PROGRAMS)
    raise ValueError(f"no seed program is called {name!r}; the programs are: {names}.")


def _manual_engine_class():
    from ..engines.torch_engines import ModuleEngine

    class ManualUpdateEngine(ModuleEngine):
        """The ``module`` engine with the seed's step-5 update: ``model.zero_grad()``,
        ``loss.backward()``, then ``param -= lr * param.grad`` for each parameter."""

        name = "manual"

        def _update(self, loss, lr):
            import torch

            self.model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in self.model.parameters():
                    param -= lr * param.grad

    return ManualUpdateEngine


def log_line(epoch: int, epochs: int, loss: float) -> str:
    """The seed's log line: ``Epoch [10/750], Loss: 1149920.9260``."""
    return f"Epoch [{epoch}/{epochs}], Loss: {loss:.4f}"


@dataclass
class Replay:
    """A seed program's run: the lines it printed, every loss, and where it ended."""

    program: Program
    lines: list[str]
    history: np.ndarray  # (epochs,) the loss computed at each epoch, before its update
    factors: list[np.ndarray]  # the final W1..WL (float64 copies of the program's weights)
    W_true: np.ndarray
    outcome: str
    message: str
    epochs_to_tol: int | None
    seconds: float
    state_dict: dict | None = field(default=None, repr=False)  # nn.Module programs: the final weights

    @property
    def end_to_end(self) -> np.ndarray:
        """W1 ⋯ WL, shape (10, 2)."""
        return end_to_end(self.factors)

    def summary(self) -> dict:
        """JSON-ready facts: outcome, losses, the learned W against the true one."""
        W, W_true = self.end_to_end, self.W_true.astype(np.float64)
        finite = bool(np.all(np.isfinite(W)))
        return {
            "name": self.program.name, "step": self.program.step, "title": self.program.title,
            "widths": list(self.program.widths), "lr": self.program.lr, "epochs": self.program.epochs,
            "optimizer": self.program.optimizer, "outcome": self.outcome, "message": self.message,
            "epochs_to_tol": self.epochs_to_tol, "first_loss": _finite_or_none(self.history[0]),
            "final_loss": _finite_or_none(self.history[-1]), "seconds": self.seconds,
            "max_abs_error": float(np.abs(W - W_true).max()) if finite else None,
            "relative_error": float(np.linalg.norm(W - W_true) / np.linalg.norm(W_true)) if finite else None,
            "end_to_end": W.tolist() if finite else None, "W_true": W_true.tolist(),
        }


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@contextmanager
def _one_thread():
    # the seed's tensors are tiny: one thread is 20x faster than two on a busy 2-core machine,
    # and the arithmetic does not change
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def outcome_of(history, config: TrainConfig) -> tuple[str, str, int | None]:
    """How a run with this full `history` ends under :func:`linlab.engines.fit`'s rules.

    Returns (outcome, message, epochs_to_tol): the first epoch t whose loss is non-finite
    or above ``diverge_factor`` × the initial loss (diverged), at most ``tol``
    (converged), or after which the best loss improved by at most ``stall_rtol``
    (relative) over ``stall_window`` epochs (stalled); otherwise max_epochs.
    """
    best = np.minimum.accumulate(np.where(np.isfinite(history), history, np.inf))
    w = config.stall_window
    for t, loss in enumerate(history):
        if not math.isfinite(loss) or (t and loss > config.diverge_factor * history[0]):
            return ("diverged", f"diverged at epoch {t}: the loss became {loss:.4g} with lr={config.lr:g} "
                    f"(it was {history[0]:.4g} at the start).", None)
        if loss <= config.tol:
            return "converged", f"converged at epoch {t}: loss {loss:.4g} <= tol {config.tol:g}.", t
        if t >= w and best[t - w] - best[t] <= config.stall_rtol * best[t - w]:
            return ("stalled", f"stalled at epoch {t}: the best loss improved by less than "
                    f"{config.stall_rtol:g} (relative) over {w} epochs, at {best[t]:.6g}.", None)
    return "max_epochs", f"ran all {len(history)} epochs; the last loss was {history[-1]:.4g}.", None


def _engine(p: Program, data, factors):
    config = p.config()
    if p.engine == "manual":
        return _manual_engine_class()(data, config, factors)
    return make_engine(config.engine, data, config, factors)


def _module_state_dict(engine) -> dict:
    # DeepLinear's layers.{j}.weight, renamed to the seed's TwoLayerNet attributes
    names = ("linear1", "linear2")
    return {f"{names[j]}.weight": layer.weight.detach().clone() for j, layer in enumerate(engine.model.layers)}


def replay(p: Program | str, log=None) -> Replay:
    """Run seed program `p` exactly as the seed did; `log` receives each printed line.

    Examples
    --------
    >>> r = replay("numpy-direct")
    >>> r.lines[0], r.outcome, r.epochs_to_tol
    ('Epoch [10/750], Loss: 1149920.9260', 'converged', 619)
    """
    import time

    p = program(p) if isinstance(p, str) else p
    data = seed_dataset(p.variant)
    factors = seed_factors(p.widths, p.variant, p.init)
    lines, history = [], []
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"), (_one_thread() if p.variant == "torch" else nullcontext()):
        engine = _engine(p, data, factors)
        for epoch in range(p.epochs):
            loss = engine.loss()
            history.append(loss)
            if (epoch + 1) % 10 == 0:
                lines.append(log_line(epoch + 1, p.epochs, loss))
                if log is not None:
                    log(lines[-1])
            engine.step(p.lr, None)
    seconds = time.perf_counter() - t0
    history = np.asarray(history)
    outcome, message, epochs_to_tol = outcome_of(history, p.config())
    return Replay(p, lines, history, engine.params()[0], data.W_true, outcome, message, epochs_to_tol,
                  seconds, _module_state_dict(engine) if p.engine in ("manual", "module") else None)


def save_seed_checkpoint(replay_: Replay, path) -> None:
    """Save step 7's ``torch.save(model.state_dict(), 'model.ckpt')``: a plain state dict
    that the seed's own ``TwoLayerNet`` loads with ``torch.load(weights_only=True)``."""
    import torch

    from ..atomic import atomic_write

    if replay_.state_dict is None:
        raise ValueError(f"program {replay_.program.name!r} has no nn.Module to save; "
                         "only steps 5-7 train one.")
    atomic_write(path, lambda f: torch.save(replay_.state_dict, f))
