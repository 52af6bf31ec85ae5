"""Compare a finished run with theory and say, in words and numbers, what happened.

The verdicts, checked in this order:

=================  ============================================================
diverged           the loss blew up; the lr is compared with the stability bound
converged_optimum  the loss is at the least-squares optimum L* (within tol)
converged_floor    tol was met, but a bottleneck keeps the loss above L*
stalled_floor      stuck at the reduced-rank floor a narrow hidden layer imposes
saddle             the factors sit at a saddle (zero init): no gradient flows
too_slow           the lr is far below what the curvature allows
still_improving    the epoch limit came while the loss was still falling
stalled_other      none of the above (a plateau, an adaptive optimizer, …)
=================  ============================================================

Floors and bounds come from :mod:`linlab.theory` for the squared loss; for the huber
and ℓp losses only what holds for them is reported.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from .config import TrainConfig
from .data import Dataset
from .results import RunResult

VERDICTS = (
    "diverged", "converged_optimum", "converged_floor", "stalled_floor", "saddle", "too_slow",
    "still_improving", "stalled_other",
)
SLOW = 0.5  # an lr below SLOW × the recommended one counts as too slow
SADDLE_RTOL = 1e-8  # ‖∇factors‖ below this × ‖∇end-to-end‖ is a saddle


@dataclass
class Diagnosis:
    """What happened in a run (``verdict``), why (``message``), the ``numbers`` behind it
    and what to do (``advice``).

    Examples
    --------
    >>> d = Diagnosis("too_slow", "lr is 50x below the optimum.", {"lr": 1e-5}, ["Use lr=5e-4."])
    >>> print(d.text())
    too_slow: lr is 50x below the optimum.
      lr = 1e-05
      - Use lr=5e-4.
    """

    verdict: str
    message: str
    numbers: dict = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A few readable lines: verdict and message, the numbers, the advice."""
        lines = [f"{self.verdict}: {self.message}"]
        lines += [f"  {key} = {_fmt(value)}" for key, value in self.numbers.items() if value is not None]
        lines += [f"  - {tip}" for tip in self.advice]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable: numbers become plain floats, ints, strings or None."""
        out = {"verdict": self.verdict, "message": self.message,
               "numbers": {k: _plain(v) for k, v in self.numbers.items()}, "advice": list(self.advice)}
        json.dumps(out)  # fail here, not in the caller, if something slipped through
        return out


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _plain(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else str(value)
    return value


@dataclass
class _Run:
    """The run and the theory it is compared with."""

    result: RunResult
    data: Dataset
    config: TrainConfig
    numbers: dict
    ls_loss: float | None = None  # L*, squared loss only
    floor: object = None  # RankFloor when the bottleneck binds
    stable_lr: float | None = None
    bound_of: str = "the Hessian"  # what stable_lr is 2/λmax of
    suggested_lr: float | None = None

    @property
    def final(self) -> float:
        return self.result.final_loss

    def near(self, target: float, rtol: float = 1e-6) -> bool:
        return self.final - target <= max(self.config.tol, rtol * abs(target))


def _config(result: RunResult) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in result.config.items() if k in known})


def _theory(run: _Run) -> None:
    """Fill in L*, the rank floor and the lr bounds that apply to this run."""
    from . import theory
    from .models import init_factors
    from .theory.lr import _batch_curvature, _smallest_batch

    c, data, nums = run.config, run.data, run.numbers
    if c.loss == "squared":
        floor = theory.rank_floor(data, c.widths, intercept=c.bias, reduction=c.reduction)
        run.ls_loss = nums["ls_loss"] = floor.ls_loss
        nums["fitted_rank"], nums["narrowest_width"] = floor.fitted_rank, floor.width
        if floor.binding:
            run.floor = floor
            nums["floor_loss"], nums["floor_share"] = floor.loss, floor.share
    start = run.result.initial_factors
    if start is None:  # rebuilt from the config's init and seed
        start = init_factors(c.widths, c.init, c.init_scale, c.seed)
    biases = [np.zeros(w) for w in c.widths[1:]] if c.bias else None
    if c.depth == 1 and c.loss != "lp":
        half = 0.5 if c.loss == "huber" else 1.0
        if c.batch_size is not None and c.batch_size < data.n_samples:  # every batch's update stable
            top = _batch_curvature(data, c, theory.as_stats(data))
            run.bound_of = f"every mini-batch's Hessian, batch_size={c.batch_size}"
        else:
            top = float(theory.hessian_spectrum(data, reduction=c.reduction, intercept=c.bias).max())
        run.stable_lr = 2.0 * (1.0 + c.momentum) / (half * top + c.weight_decay)
    elif c.depth > 1 and c.loss == "squared":
        top = theory.top_curvature(theory.as_stats(data), start, c.reduction, biases)
        rows = _smallest_batch(c, data.n_samples)
        if c.reduction == "mean" and rows < data.n_samples:  # as lr="auto" bounds each batch
            top *= data.n_samples / rows
            run.bound_of = f"the Hessian scaled to mini-batches of batch_size={c.batch_size} (mean)"
        run.stable_lr = 2.0 / top if top > 0 else None
    if c.depth > 1 or c.loss == "lp":
        nums["bound_at"] = (
            "the run's initial factors" if run.result.initial_factors is not None
            else f"initial factors (init={c.init!r}, seed={c.seed})"
        )
    try:
        run.suggested_lr = theory.auto_lr(data, c, start, biases)
    except ValueError as err:
        nums["auto_lr"] = str(err)
    nums["stable_lr"], nums["suggested_lr"] = run.stable_lr, run.suggested_lr


def _gradient_norms(run: _Run) -> tuple[float, float]:
    """‖∂ℓ/∂(W1..WL)‖ and ‖∂ℓ/∂P‖ at the final factors (P the end-to-end product)."""
    from .engines.numpy_engine import backward, forward
    from .losses import loss_grad

    c, r = run.config, run.result
    X, Y = run.data.X.astype(np.float64), run.data.Y.astype(np.float64)
    with np.errstate(all="ignore"):
        hs = forward(X, r.factors, r.biases)
        G = loss_grad(hs[-1] - Y, c.loss, c.reduction, c.p, c.delta)
        grads, _ = backward(hs, G, r.factors)
        return float(np.sqrt(sum(np.sum(g * g) for g in grads))), float(np.linalg.norm(X.T @ G))


def _diverged(run: _Run) -> Diagnosis | None:
    r = run.result
    if r.outcome != "diverged" and np.isfinite(r.final_loss):
        return None
    advice, msg = [], f"the loss blew up with lr={r.lr:.3g}."
    if run.stable_lr:
        factor = r.lr / run.stable_lr
        run.numbers["lr_over_bound"] = factor
        msg = (f"lr={r.lr:.3g} is {factor:.3g}x the stability bound {run.stable_lr:.3g} "
               f"(2/λmax of {run.bound_of}); the loss blew up.")
        advice.append(f"Use lr <= {run.stable_lr:.3g}, or lr=\"auto\".")
    else:
        advice.append("Lower lr (e.g. 10x) until the loss decreases steadily.")
    if run.suggested_lr:
        advice.append(f"lr={run.suggested_lr:.3g} is what lr=\"auto\" picks here.")
    return Diagnosis("diverged", msg, run.numbers, advice)


def _at_target(run: _Run) -> Diagnosis | None:
    r, c, f = run.result, run.config, run.floor
    if f is not None and (run.near(f.loss) or r.outcome == "converged"):
        advice = [f"Make every hidden layer at least {f.fitted_rank} wide to reach L* = {f.ls_loss:.6g}."]
        why = (f"the narrowest hidden width {f.width} is below the rank {f.fitted_rank} of the "
               f"fitted values Ŷ, so the rank-{f.width} floor {f.loss:.6g} ({100 * f.share:.3g}% of ‖Y‖²)")
        if r.outcome == "converged":
            msg = f"loss {r.final_loss:.6g} met tol={c.tol:g}, but {why} is the lowest this width reaches."
            return Diagnosis("converged_floor", msg, run.numbers, advice)
        msg = f"loss {r.final_loss:.6g} is at the floor: {why} is as low as any lr or epoch count goes."
        return Diagnosis("stalled_floor", msg, run.numbers, advice)
    if f is None and run.ls_loss is not None and run.near(run.ls_loss):
        advice = [] if run.ls_loss <= c.tol else [
            f"L* = {run.ls_loss:.6g} is above tol={c.tol:g}: no linear model fits closer; "
            "the rest is noise or nonlinearity, so raise tol."]
        msg = (f"loss {r.final_loss:.6g} is within tol={c.tol:g} of the least-squares optimum "
               f"L* = {run.ls_loss:.6g}.")
        return Diagnosis("converged_optimum", msg, run.numbers, advice)
    if r.outcome == "converged":
        return Diagnosis("converged_optimum", f"loss {r.final_loss:.6g} <= tol={c.tol:g}.", run.numbers)
    return None


def _saddle(run: _Run) -> Diagnosis | None:
    if run.config.depth == 1:
        return None
    g_factors, g_end = _gradient_norms(run)
    run.numbers["grad_norm"], run.numbers["end_to_end_grad_norm"] = g_factors, g_end
    if not g_factors <= SADDLE_RTOL * g_end:
        return None
    msg = (f"the factors sit at a saddle: the gradient is {g_factors:.3g} while the end-to-end "
           f"product still has gradient {g_end:.3g}; with all-zero factors no update ever moves.")
    advice = ["Start away from zero: init='scaled' (e.g. init_scale=0.1), 'balanced' or 'orthogonal'."]
    return Diagnosis("saddle", msg, run.numbers, advice)


def _forecast(run: _Run, lr: float) -> int | None:
    """Epochs from the final state to tol at `lr` (depth 1, squared, plain full-batch GD)."""
    from .theory import epochs_to_tol

    c, r = run.config, run.result
    plain = c.momentum == 0 and c.weight_decay == 0 and c.schedule == "constant"
    full_batch = c.batch_size is None or c.batch_size >= run.data.n_samples
    if c.depth > 1 or c.loss != "squared" or not plain or not full_batch:
        return None
    return epochs_to_tol(run.data, r.factors[0], lr, c.tol, b0=None if not c.bias else r.biases[0],
                         reduction=c.reduction)


def _slow(run: _Run) -> Diagnosis:
    r, c, nums = run.result, run.config, run.numbers
    advice = []
    if run.floor is not None:
        advice.append(f"Even at the end this width cannot go below the rank-{run.floor.width} "
                      f"floor {run.floor.loss:.6g}; hidden width {run.floor.fitted_rank} is needed.")
    if run.suggested_lr and r.lr < SLOW * run.suggested_lr:
        nums["lr_over_suggested"] = r.lr / run.suggested_lr
        nums["forecast_epochs_now"] = _forecast(run, r.lr)
        nums["forecast_epochs_suggested"] = _forecast(run, run.suggested_lr)
        msg = (f"lr={r.lr:.3g} is {run.suggested_lr / r.lr:.3g}x below the recommended "
               f"{run.suggested_lr:.3g}; the loss is {r.final_loss:.6g} after {r.epochs} epochs.")
        tip = f"Use lr={run.suggested_lr:.3g} (or lr=\"auto\")"
        if nums["forecast_epochs_suggested"] is not None:
            tip += (f": tol is then {nums['forecast_epochs_suggested']} more epochs away, "
                    f"against {nums['forecast_epochs_now']} at the current lr")
        return Diagnosis("too_slow", msg, nums, [tip + "."] + advice)
    recent = r.history[-min(len(r.history), c.stall_window):]
    if r.outcome == "max_epochs" and recent[0] - recent[-1] > c.stall_rtol * recent[0]:
        nums["forecast_epochs_now"] = _forecast(run, r.lr)
        msg = f"the epoch limit {r.epochs} came while the loss ({r.final_loss:.6g}) was still falling."
        more = nums["forecast_epochs_now"]
        tip = f"Run {more} more epochs to reach tol." if more is not None else "Run more epochs."
        return Diagnosis("still_improving", msg, nums, [tip] + advice)
    msg = f"the loss stopped improving at {r.final_loss:.6g} ({r.outcome}), above any known floor."
    tips = ["Try another init or optimizer, or a larger lr within the bound."]
    return Diagnosis("stalled_other", msg, nums, tips + advice)


def diagnose(result: RunResult, data: Dataset) -> Diagnosis:
    """Say what happened in `result` (trained on `data`) and what to do about it.

    Parameters
    ----------
    result : RunResult
    data : Dataset
        The training rows the run used.

    Returns
    -------
    Diagnosis
        ``verdict`` (one of ``VERDICTS``), ``message``, ``numbers`` (final loss, L*,
        floor, bounds, forecasts) and ``advice``.

    Notes
    -----
    L* and the rank floor L_r = L* + Σ_{i>r} σ_i²(Ŷ) come from
    :func:`linlab.theory.rank_floor`; the stability bound is 2(1+μ)/λmax for depth 1
    (λmax bounded over every batch's Hessian with mini-batches) and 2/sharpness at the
    initial factors for deeper models; forecasts are exact for depth 1
    (:func:`linlab.theory.epochs_to_tol`).

    Examples
    --------
    >>> from linlab import seed_dataset, train
    >>> data = seed_dataset()
    >>> diagnose(train(data, widths=(10, 1, 2), lr=1e-5, epochs=300), data).verdict
    'stalled_floor'
    """
    config = _config(result)
    if (data.n_features, data.n_targets) != (config.widths[0], config.widths[-1]):
        raise ValueError(
            f"data {data.name!r} has {data.n_features} features and {data.n_targets} targets but the "
            f"run's widths are {config.widths}; pass the dataset the run was trained on."
        )
    run = _Run(result, data, config, {
        "outcome": result.outcome, "epochs": result.epochs, "lr": result.lr,
        "initial_loss": float(result.history[0]) if len(result.history) else None,
        "final_loss": result.final_loss,
    })
    _theory(run)
    for check in (_diverged, _at_target, _saddle):
        found = check(run)
        if found is not None:
            return found
    return _slow(run)
