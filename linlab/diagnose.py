"""Compare a finished run with theory and say, in words and numbers, what happened.

The verdicts, checked in this order:

=================  ============================================================
diverged           the loss blew up, or ended above where it started; the lr is
                   compared with the stability bound
converged_optimum  the loss is at the optimum (L*, or the ℓp/huber minimum)
unstable           lr >= 2(1+μ)/λmax on plain regression: the top mode never contracts
converged_floor    tol was met, but a bottleneck keeps the loss above L*
stalled_floor      stuck at the reduced-rank floor a narrow hidden layer imposes
saddle             the factors sit at a saddle (zero init): no gradient flows
too_slow           the lr is far below what the curvature allows
still_improving    the epoch limit came while the loss was still falling
stalled_other      none of the above (a plateau, an adaptive optimizer, …)
=================  ============================================================

Floors and bounds come from :mod:`linlab.theory` for the squared loss; for the huber
and ℓp losses the optimum is solved for (convex, :func:`linlab.theory.convex_optimum`)
wherever the network can reach every linear map. Past ``DENSE_FEATURES`` columns the
d×d spectra are skipped (only λmax is estimated, by Lanczos) and the numbers say so.
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
    "diverged", "unstable", "converged_optimum", "converged_floor", "stalled_floor", "saddle", "too_slow",
    "still_improving", "stalled_other",
)
SLOW = 0.5  # an lr below SLOW × the recommended one counts as too slow
SADDLE_RTOL = 1e-8  # ‖∇factors‖ below this × ‖∇end-to-end‖ is a saddle
COND_WARN = 100.0  # a condition number of XᵀX above this is named as a cause of slow descent
INTERCEPT_GAIN = 0.5  # L* with a bias below this × L* without: the missing bias is named
DENSE_FEATURES = 2048  # past this many columns the d×d spectra are skipped (O(d³))


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
    ls_loss: float | None = None  # the optimum: L* (squared loss), or the ℓp/huber minimum
    optimum_name: str = "the least-squares optimum L*"
    floor: object = None  # RankFloor when the bottleneck binds
    stable_lr: float | None = None
    bound_of: str = "the Hessian"  # what stable_lr is 2/λmax of
    exact_bound: bool = False  # lr >= stable_lr never converges (depth 1, squared, full-batch SGD)
    suggested_lr: float | None = None
    condition: float | None = None  # λmax/λmin over XᵀX's nonzero spectrum
    ls_with_bias: float | None = None  # L* with an intercept, for a run without one

    @property
    def final(self) -> float:
        return self.result.final_loss

    def near(self, target: float, rtol: float = 1e-6) -> bool:
        return self.final - target <= max(self.config.tol, rtol * abs(target))


def _config(result: RunResult) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in result.config.items() if k in known})


def _optimum(run: _Run) -> None:
    """L*, the rank floor, the optimum with a bias and the condition number of XᵀX."""
    from . import theory

    c, data, nums = run.config, run.data, run.numbers
    if c.loss == "squared":
        floor = theory.rank_floor(data, c.widths, intercept=c.bias, reduction=c.reduction)
        run.ls_loss = nums["ls_loss"] = floor.ls_loss
        nums["fitted_rank"], nums["narrowest_width"] = floor.fitted_rank, floor.width
        if floor.binding:
            run.floor = floor
            nums["floor_loss"], nums["floor_share"] = floor.loss, floor.share
        if not c.bias:
            run.ls_with_bias = nums["ls_loss_with_bias"] = theory.least_squares(
                data, intercept=True, reduction=c.reduction).loss
    elif c.depth == 1 or min(c.widths) >= min(c.widths[0], c.widths[-1]):  # every W is reachable
        opt = theory.convex_optimum(data, c.loss, reduction=c.reduction, p=c.p, delta=c.delta, intercept=c.bias)
        run.ls_loss = nums["optimum_loss"] = opt.loss
        run.optimum_name = f"the {c.loss} loss's optimum (L-BFGS, convex)"
    lam = theory.hessian_spectrum(data, reduction=c.reduction, intercept=c.bias)
    run.condition = nums["condition_number"] = _kappa(lam)
    if run.condition is not None and run.condition > COND_WARN:
        gram = _standardized_gram(data)
        nums["condition_number_standardized"] = _kappa(np.linalg.eigvalsh(gram)) if gram.size else None


def _stats_of(data):
    """The statistics sharded data is known by (its rows are then never read), or None."""
    from .stats import Stats

    stats = getattr(data, "stats", None)
    return stats if isinstance(stats, Stats) else None


def _standardized_gram(data) -> np.ndarray:
    """ZᵀZ of the non-constant columns scaled to mean 0 and std 1, as --standardize scales them."""
    stats = _stats_of(data)
    if stats is None:
        X = data.X.astype(np.float64)
        std = X.std(axis=0)
        Z = (X[:, std > 0] - X[:, std > 0].mean(axis=0)) / std[std > 0]
        return Z.T @ Z
    from .theory.least_squares import centered

    cov = centered(stats).A  # Σ(x − x̄)(x − x̄)ᵀ; a constant column keeps only rounding of its Σx²
    keep = np.diag(cov) > 64 * np.finfo(np.float64).eps * np.abs(np.diag(stats.A))
    std = np.sqrt(np.diag(cov)[keep] / stats.n)
    return cov[np.ix_(keep, keep)] / np.outer(std, std)


def _kappa(lam) -> float | None:
    """λmax/λmin over the spectrum's nonzero part (eigenvalues below rounding count as zero)."""
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    nonzero = lam[lam > max(lam.size, 1) * np.finfo(np.float64).eps * (lam.max() if lam.size else 0.0)]
    return float(nonzero[-1] / nonzero[0]) if nonzero.size else None


def _bounds(run: _Run) -> None:
    """The stability bound and the lr that ``lr="auto"`` picks, where theory has them."""
    from . import theory
    from .theory.lr import _batch_curvature, _smallest_batch

    c, data, nums = run.config, run.data, run.numbers
    start = run.result.initial_factors
    if start is None:  # rebuilt as every run builds them
        from .models import initial_factors

        start = initial_factors(data, c)
    biases = [np.zeros(w) for w in c.widths[1:]] if c.bias else None
    top = None
    if c.depth == 1 and c.loss != "lp":
        half = 0.5 if c.loss == "huber" else 1.0
        if c.batch_size is not None and c.batch_size < data.n_samples:  # every batch's update stable
            top = half * _batch_curvature(data, c, theory.as_stats(data))
            run.bound_of = f"every mini-batch's Hessian, batch_size={c.batch_size}"
        else:
            top = half * float(theory.hessian_spectrum(data, reduction=c.reduction, intercept=c.bias).max())
            run.exact_bound = (c.loss == "squared" and c.optimizer == "sgd" and not c.nesterov
                               and c.schedule == "constant")
        top += c.weight_decay
        run.stable_lr = 2.0 * (1.0 + c.momentum) / top if top > 0 else None
    elif c.depth > 1 and c.loss == "squared":
        top = theory.top_curvature(theory.as_stats(data), start, c.reduction, biases)
        rows = _smallest_batch(c, data.n_samples)
        if c.reduction == "mean" and rows < data.n_samples:  # as lr="auto" bounds each batch
            top *= data.n_samples / rows
            run.bound_of = f"the Hessian scaled to mini-batches of batch_size={c.batch_size} (mean)"
        run.stable_lr = 2.0 / top if top > 0 else None
    if top is not None and not top > 0:
        nums["curvature"] = "zero: X carries no signal, so no lr can lower the loss and none is unstable"
    if c.depth > 1 or c.loss == "lp":
        nums["bound_at"] = (
            "the run's initial factors" if run.result.initial_factors is not None
            else f"initial factors (init={c.init!r}, seed={c.seed})"
        )
    try:
        run.suggested_lr = theory.auto_lr(data, c, start, biases)
    except (ValueError, ZeroDivisionError, FloatingPointError) as err:
        nums["auto_lr"] = str(err) or "no curvature to choose an lr from"
    nums["stable_lr"], nums["suggested_lr"] = run.stable_lr, run.suggested_lr


def _wide(run: _Run) -> None:
    """Past DENSE_FEATURES columns: only λmax, by Lanczos on v ↦ Xᵀ(Xv) (depth 1, squared)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    c, data, nums = run.config, run.data, run.numbers
    d = data.n_features + c.bias
    nums["theory"] = (f"skipped L*, the floor and the spectrum's lower end: {d} columns > {DENSE_FEATURES} "
                      "make XᵀX's eigendecomposition O(d³) in time and O(d²) in memory")
    full_batch = c.batch_size is None or c.batch_size >= data.n_samples
    if c.depth > 1 or c.loss != "squared" or not full_batch:
        return
    stats = _stats_of(data)
    if stats is not None:
        A = (stats.with_intercept() if c.bias else stats).A
        gram = LinearOperator((d, d), matvec=lambda v: A @ v, dtype=np.float64)
    else:
        X = data.X.astype(np.float64)
        if c.bias:
            X = np.hstack([X, np.ones((X.shape[0], 1))])
        gram = LinearOperator((d, d), matvec=lambda v: X.T @ (X @ v), dtype=np.float64)
    mu = float(eigsh(gram, k=1, which="LA", return_eigenvectors=False, tol=1e-6)[0])
    scale = 1.0 if c.reduction == "sum" else 1.0 / (data.n_samples * data.n_targets)
    top = 2.0 * scale * mu * (1 + 1e-6) + c.weight_decay  # Lanczos approaches λmax from below
    if top > 0:
        run.stable_lr = nums["stable_lr"] = 2.0 * (1.0 + c.momentum) / top
        nums["theory"] += "; the stability bound comes from λmax by Lanczos (scipy eigsh)"


def _is_wide(run: _Run) -> bool:
    return run.data.n_features + run.config.bias > DENSE_FEATURES


def _theory(run: _Run) -> None:
    """Fill in the optimum, the floor and the lr bounds that apply to this run."""
    if _is_wide(run):
        _wide(run)
        return
    _optimum(run)
    _bounds(run)


def _gradient_norms(run: _Run) -> tuple[float, float]:
    """‖∂ℓ/∂(W1..WL)‖ and ‖∂ℓ/∂P‖ at the final factors (P the end-to-end product)."""
    from .engines.numpy_engine import backward, forward
    from .losses import loss_grad

    c, r = run.config, run.result
    stats = _stats_of(run.data)
    if stats is not None and c.loss == "squared" and r.biases is None:
        from .models import end_to_end
        from .theory.deep import gradient

        with np.errstate(all="ignore"):
            grads = gradient(stats, r.factors, c.reduction)
            G = gradient(stats, [end_to_end(r.factors)], c.reduction)[0]  # ∂ℓ/∂P: depth 1 at P
            return float(np.sqrt(sum(np.sum(g * g) for g in grads))), float(np.linalg.norm(G))
    X, Y = run.data.X.astype(np.float64), run.data.Y.astype(np.float64)
    with np.errstate(all="ignore"):
        hs = forward(X, r.factors, r.biases)
        G = loss_grad(hs[-1] - Y, c.loss, c.reduction, c.p, c.delta)
        grads, _ = backward(hs, G, r.factors)
        return float(np.sqrt(sum(np.sum(g * g) for g in grads))), float(np.linalg.norm(X.T @ G))


def _squared_from_stats(stats, P: np.ndarray) -> float:
    """‖XP − Y‖² from the statistics alone.

    About the least-squares P₀ (Δ = P − P₀, r = AP₀ − C, L* = ‖XP₀ − Y‖²) the loss is
    tr(ΔᵀAΔ) + 2tr(Δᵀr) + L*: near the optimum it keeps its accuracy, where
    tr(PᵀAP) − 2tr(PᵀC) + ‖Y‖² would cancel.
    """
    from .theory import least_squares

    best = least_squares(stats)
    D, r = P - best.coef, stats.A @ best.coef - stats.C
    return max(float(np.sum(D * (stats.A @ D)) + 2.0 * np.sum(D * r)) + best.loss, 0.0)


def _add_a_bias(run: _Run) -> str:
    if _stats_of(run.data) is not None:  # sharded data trains without biases
        return "Fit an intercept: write the shards with centred columns, or train on one file with --bias."
    return "Add a bias (--bias, bias=True)."


def _lower_lr_advice(run: _Run) -> list[str]:
    advice = []
    if run.stable_lr:
        run.numbers["lr_over_bound"] = run.result.lr / run.stable_lr
        advice.append(f"Use lr < {run.stable_lr:.3g}, or lr=\"auto\".")
    else:
        advice.append("Lower lr (e.g. 10x) until the loss decreases steadily.")
    if run.suggested_lr:
        advice.append(f"lr={run.suggested_lr:.3g} is what lr=\"auto\" picks here.")
    return advice


def _diverged(run: _Run) -> Diagnosis | None:
    """Blown up, or ended above where it started: a rising loss is divergence, whatever the stop."""
    r = run.result
    rose = len(r.history) > 1 and r.final_loss > r.history[0]
    if r.outcome != "diverged" and np.isfinite(r.final_loss) and not rose:
        return None
    advice = _lower_lr_advice(run)
    what = "the loss blew up" if r.outcome == "diverged" or not np.isfinite(r.final_loss) else (
        f"the loss rose from {r.history[0]:.6g} to {r.final_loss:.6g} ({r.outcome})")
    msg = f"{what} with lr={r.lr:.3g}."
    if run.stable_lr:
        msg = (f"lr={r.lr:.3g} is {run.numbers['lr_over_bound']:.3g}x the stability bound {run.stable_lr:.3g} "
               f"(2/λmax of {run.bound_of}); {what}.")
    return Diagnosis("diverged", msg, run.numbers, advice)


def _unstable(run: _Run) -> Diagnosis | None:
    """lr at or above 2(1+μ)/λmax on a quadratic: the top mode never contracts."""
    r, c = run.result, run.config
    if not (run.exact_bound and run.stable_lr and r.lr >= run.stable_lr * (1 - 1e-12)):
        return None
    advice = _lower_lr_advice(run)
    how = "neither shrinks nor grows" if r.lr <= run.stable_lr * (1 + 1e-12) else "grows"
    msg = (f"lr={r.lr:.3g} is {run.numbers['lr_over_bound']:.6g}x the stability bound {run.stable_lr:.6g} "
           f"(2{'(1+μ)' if c.momentum else ''}/λmax of {run.bound_of}): the error along the top "
           f"eigenvector {how} every epoch, so the loss cannot reach its optimum at this lr ({r.outcome} "
           f"at {r.final_loss:.6g}).")
    return Diagnosis("unstable", msg, run.numbers, advice)


def _causes_above_tol(run: _Run) -> list[str]:
    """Why the optimum itself lies above tol: a missing bias, else noise or nonlinearity."""
    c, tips = run.config, []
    if run.ls_with_bias is not None and run.ls_with_bias < INTERCEPT_GAIN * run.ls_loss:
        tips.append(f"The model has no bias: the best fit without one leaves L* = {run.ls_loss:.6g}, "
                    f"with one L* = {run.ls_with_bias:.6g}. {_add_a_bias(run)}")
    if run.ls_with_bias is None or run.ls_with_bias > c.tol:
        name = "L*" if c.loss == "squared" else "The optimum"
        tips.append(f"{name}{' with a bias' if tips else ''} is above tol={c.tol:g}: no linear model fits "
                    "closer; the rest is noise or nonlinearity, so raise tol.")
    return tips


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
        gap = r.final_loss - run.ls_loss
        run.numbers["gap_to_optimum"] = gap
        where = f"within tol={c.tol:g} of" if abs(gap) <= c.tol else (
            f"{abs(gap):.3g} ({abs(gap) / abs(run.ls_loss):.2g} relative) {'below' if gap < 0 else 'above'}")
        msg = f"loss {r.final_loss:.6g} is {where} {run.optimum_name} {run.ls_loss:.6g}."
        advice = [] if run.ls_loss <= c.tol else _causes_above_tol(run)
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
    if c.depth > 1 or c.loss != "squared" or not plain or not full_batch or not lr > 0 or _is_wide(run):
        return None
    return epochs_to_tol(run.data, r.factors[0], lr, c.tol, b0=None if not c.bias else r.biases[0],
                         reduction=c.reduction)


def _slow_causes(run: _Run) -> list[str]:
    """What keeps gradient descent slow or high whatever the lr: conditioning, a missing bias, a floor."""
    tips, kappa = [], run.condition
    if kappa is not None and kappa > COND_WARN:
        scaled = run.numbers.get("condition_number_standardized")
        flag = "write the shards standardized" if _stats_of(run.data) is not None else "--standardize"
        how = (f"standardize the features ({flag}): columns of mean 0 and std 1 bring κ to {scaled:.3g}"
               if scaled is not None and scaled < kappa / 10 else
               f"standardizing leaves κ at {scaled:.3g}, so correlated columns cause it: drop or combine them, or "
               "use momentum (its rate is (√κ−1)/(√κ+1))" if scaled is not None else "")
        tips.append(f"XᵀX has condition number κ = {kappa:.3g}: even at the best lr the slowest direction's "
                    f"error shrinks only by (κ−1)/(κ+1) per epoch, about κ/2 = {kappa / 2:.3g} epochs per e-fold"
                    f"{'; ' + how if how else ''}.")
    if run.ls_with_bias is not None and run.ls_with_bias < INTERCEPT_GAIN * run.ls_loss:
        tips.append(f"The model has no bias: the best fit without one is L* = {run.ls_loss:.6g}, with one "
                    f"{run.ls_with_bias:.6g}. {_add_a_bias(run)}")
    if run.floor is not None:
        tips.append(f"Even at the end this width cannot go below the rank-{run.floor.width} "
                    f"floor {run.floor.loss:.6g}; hidden width {run.floor.fitted_rank} is needed.")
    return tips


def _too_slow(run: _Run) -> Diagnosis | None:
    r, c, nums = run.result, run.config, run.numbers
    if not r.lr > 0:  # e.g. a crafted checkpoint: no update ever moves the factors
        tip = f"Use lr={run.suggested_lr:.3g} (or lr=\"auto\")." if run.suggested_lr else "Give lr > 0."
        return Diagnosis("too_slow", f"lr={r.lr:g}: no update moves the factors.", nums, [tip])
    if not (run.suggested_lr and r.lr < SLOW * run.suggested_lr):
        return None
    nums["lr_over_suggested"] = r.lr / run.suggested_lr
    if c.lr == "auto":  # auto chose this lr itself: lowered as the loss rose
        msg = (f"lr=\"auto\" ended at lr={r.lr:.3g}, {run.suggested_lr / r.lr:.3g}x below the "
               f"{run.suggested_lr:.3g} it starts from: the loss rose as the sharpness grew and the lr was "
               f"lowered; the loss is {r.final_loss:.6g} after {r.epochs} epochs.")
        return Diagnosis("too_slow", msg, nums, _slow_causes(run) or ["Run more epochs."])
    nums["forecast_epochs_now"] = _forecast(run, r.lr)
    nums["forecast_epochs_suggested"] = _forecast(run, run.suggested_lr)
    msg = (f"lr={r.lr:.3g} is {run.suggested_lr / r.lr:.3g}x below the recommended "
           f"{run.suggested_lr:.3g}; the loss is {r.final_loss:.6g} after {r.epochs} epochs.")
    tip = f"Use lr={run.suggested_lr:.3g} (or lr=\"auto\")"
    if nums["forecast_epochs_suggested"] is not None:
        tip += (f": tol is then {nums['forecast_epochs_suggested']} more epochs away, "
                f"against {nums['forecast_epochs_now']} at the current lr")
    return Diagnosis("too_slow", msg, nums, [tip + "."] + _slow_causes(run))


def _slow(run: _Run) -> Diagnosis:
    r, c, nums = run.result, run.config, run.numbers
    found = _too_slow(run)
    if found is not None:
        return found
    causes = _slow_causes(run)
    recent = r.history[-min(len(r.history), c.stall_window):]
    if r.outcome == "max_epochs" and recent[0] - recent[-1] > c.stall_rtol * recent[0]:
        nums["forecast_epochs_now"] = _forecast(run, r.lr)
        msg = f"the epoch limit {r.epochs} came while the loss ({r.final_loss:.6g}) was still falling."
        more = nums["forecast_epochs_now"]
        tip = f"Run {more} more epochs to reach tol." if more is not None else "Run more epochs."
        return Diagnosis("still_improving", msg, nums, causes + [tip])
    known = f"above {run.optimum_name} {run.ls_loss:.6g}" if run.ls_loss is not None else "above any known floor"
    msg = f"the loss stopped improving at {r.final_loss:.6g} ({r.outcome}), {known}."
    tips = ["Try another init or optimizer."]
    if run.stable_lr and r.lr < SLOW * run.stable_lr:
        tips = ["Try another init or optimizer, or a larger lr below the bound "
                f"{run.stable_lr:.3g}."]
    return Diagnosis("stalled_other", msg, nums, causes + tips)


def fit_metrics(result: RunResult, data: Dataset) -> dict:
    """How well the run's final model fits `data`, per row and in the targets' own units.

    Returns ``{"rows", "mean_loss", "mse", "rmse", "r2"}``: the loss divided by the rows
    (whatever the reduction, so training and validation compare), and the mean squared
    error, its root and R² of the predictions after undoing ``--standardize``.

    Notes
    -----
    With a scaler (y = z·σ + μ) the residuals are r·σ; R² = 1 − Σr² / Σ(y − ȳ)² over every
    target column together.

    Examples
    --------
    >>> from linlab import seed_dataset, train
    >>> data = seed_dataset()
    >>> m = fit_metrics(train(data, widths=(10, 2), lr=4e-4, epochs=50), data)
    >>> m["rows"], m["r2"] > 0.999999
    (1000, True)
    """
    from .engines.numpy_engine import forward
    from .losses import loss_value

    c = _config(result)
    stats = _stats_of(data)
    if stats is not None and c.loss == "squared" and result.biases is None and "scaler" not in data.provenance:
        return _metrics_from_stats(stats, result.factors)
    X, Y = data.X.astype(np.float64), data.Y.astype(np.float64)
    with np.errstate(all="ignore"):
        R = forward(X, result.factors, result.biases)[-1] - Y
        loss = float(loss_value(R, c.loss, "sum", c.p, c.delta))
        scaler = data.provenance.get("scaler")
        if scaler is not None:
            std, mean = np.asarray(scaler["y_std"]), np.asarray(scaler["y_mean"])
            R, Y = R * std, Y * std + mean
        sse, sst = float(np.sum(R * R)), float(np.sum((Y - Y.mean(axis=0)) ** 2))
    n = data.n_samples
    return {"rows": n, "mean_loss": loss / n, "mse": sse / R.size, "rmse": float(np.sqrt(sse / R.size)),
            "r2": 1.0 - sse / sst if sst > 0 else None}


def _metrics_from_stats(stats, factors) -> dict:
    """:func:`fit_metrics` of a squared-loss model without biases, from the statistics alone."""
    from .models import end_to_end
    from .theory.least_squares import centered

    n, entries = stats.n, stats.n * stats.n_targets
    with np.errstate(all="ignore"):
        sse = _squared_from_stats(stats, end_to_end(factors))
    sst = centered(stats).yy
    return {"rows": n, "mean_loss": sse / n, "mse": sse / entries, "rmse": float(np.sqrt(sse / entries)),
            "r2": 1.0 - sse / sst if sst > 0 else None}


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
    for check in (_diverged, _at_target, _unstable, _saddle):
        found = check(run)
        if found is not None:
            return found
    return _slow(run)
