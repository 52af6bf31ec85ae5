"""The seed's questions, answered with numbers: theory first, then runs that confirm it.

Each ``answer_*`` returns a plain dict of the figures the report prints (JSON-ready), so
the report never computes anything and the tests can check every number against
:mod:`linlab.theory`.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..config import TrainConfig
from ..data import Dataset, seed_factors
from ..engines import fit
from ..models import end_to_end, init_factors, n_params
from ..stats import Stats
from ..theory import epochs_to_tol, lr_bounds, rank_floor, sharpness, stability_lr
from .programs import Replay
from .scaling import SEED_LR, TOL, WIDTHS


def _run(data: Dataset, widths, lr: float, epochs: int, factors=None, **settings):
    config = TrainConfig(widths=widths, lr=lr, epochs=epochs, tol=TOL, **settings)
    return fit(data, config, factors=seed_factors(widths) if factors is None else factors)


def _brief(result) -> dict:
    return {"outcome": result.outcome, "epochs": result.epochs, "epochs_to_tol": result.epochs_to_tol,
            "final_loss": result.final_loss, "message": result.message}


def answer_rank_floor(data: Dataset, replays: dict[str, Replay]) -> dict:
    """1. Why width 1 cannot reach 0: the rank-1 floor, and the run that ends on it."""
    floor = rank_floor(data, (10, 1, 2))
    stalled = replays["numpy-width1-small-lr"]
    return {
        "floor_loss": floor.loss, "floor_share": floor.share, "ls_loss": floor.ls_loss,
        "fitted_rank": floor.fitted_rank, "fitted_singular_values": np.sqrt(floor.fitted_sv2).tolist(),
        "width_needed": floor.fitted_rank, "run_final_loss": float(stalled.history[-1]),
        "run_gap": float(stalled.history[-1] - floor.loss) / floor.loss, "run_outcome": stalled.outcome,
        "width5_epochs_to_tol": replays["numpy-width5"].epochs_to_tol,
        # the post's width-5 run reached 0 "at about epoch 420" without saying its lr
        "width5_epochs_at_1e-6": _run(data, (10, 5, 2), 1e-6, 1000).epochs_to_tol,
    }


def answer_stability(data: Dataset, replays: dict[str, Replay]) -> dict:
    """2. Why a large lr gives nan: the stability bounds, and runs on both sides of them."""
    bounds = lr_bounds(data)
    stats = Stats.of(data.X, data.Y)
    narrow = seed_factors((10, 1, 2))
    narrow_bound = stability_lr(stats, narrow)
    nan = replays["numpy-width1-large-lr"]
    first_nan = next((i for i, line in enumerate(nan.lines) if line.endswith(("nan", "inf"))), None)
    return {
        "direct_bound": bounds.stable_lr, "lam_max": bounds.lam_max,
        # no stall rule: a run above the bound must show its divergence, not the plateau of its best loss
        "direct_below": _brief(_run(data, (10, 2), 0.98 * bounds.stable_lr, 1000, stall_window=10**6)),
        "direct_above": _brief(_run(data, (10, 2), 1.02 * bounds.stable_lr, 1000, stall_window=10**6)),
        "width1_bound": narrow_bound, "seed_lr": 1e-2, "seed_lr_over_bound": 1e-2 / narrow_bound,
        "width1_below": _brief(_run(data, (10, 1, 2), 0.5 * narrow_bound, 700)),
        "width1_above": _brief(_run(data, (10, 1, 2), 2.0 * narrow_bound, 700, stall_window=10**6)),
        "seed_first_nonfinite_line": None if first_nan is None else nan.lines[first_nan],
        "seed_diverged_epoch": nan.message,
    }


def answer_fewer_iterations(data: Dataset, replays: dict[str, Replay]) -> dict:
    """3. Fewer iterations: the optimal constant lr and heavy ball, forecast and run."""
    b = lr_bounds(data)
    W0 = seed_factors((10, 2))[0]
    best = _run(data, (10, 2), b.optimal_lr, 1000)
    heavy = _run(data, (10, 2), b.momentum_lr, 1000, momentum=b.momentum)
    return {
        "lam_min": b.lam_min, "lam_max": b.lam_max, "condition": b.condition,
        "optimal_lr": b.optimal_lr, "rate": b.rate,
        "forecast_epochs": epochs_to_tol(data, W0, b.optimal_lr, TOL),
        "run_epochs": best.epochs_to_tol,
        "seed_lr": SEED_LR, "seed_forecast_epochs": epochs_to_tol(data, W0, SEED_LR, TOL),
        "seed_run_epochs": replays["numpy-direct"].epochs_to_tol,
        "momentum_lr": b.momentum_lr, "momentum": b.momentum, "momentum_rate": b.momentum_rate,
        "momentum_run_epochs": heavy.epochs_to_tol,
    }


def _median(values):
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _by_width(rows: list[dict], optimizer: str) -> dict[int, dict[float, list[dict]]]:
    out: dict[int, dict[float, list[dict]]] = {}
    for r in rows:
        if r["optimizer"] == optimizer:
            width = int(r["widths"].split(",")[1])
            out.setdefault(width, {}).setdefault(r["lr"], []).append(r)
    return out


def _lr_facts(runs: list[dict]) -> dict:
    epochs = [r["epochs_to_tol"] for r in runs]
    done = [e for e in epochs if e is not None]
    return {"lr": runs[0]["lr"], "runs": len(runs), "converged": len(done),
            "diverged": sum(r["outcome"] == "diverged" for r in runs),
            "epochs_median": _median(epochs) if len(done) == len(runs) else None,
            "epochs_min": min(done) if done else None, "epochs_max": max(done) if done else None,
            "final_loss_median": _median([r["final_loss"] for r in runs])}


def _best_lr(by_lr: dict[float, list[dict]]) -> dict:
    # every seed converged first, by median epochs; then the lowest median final loss
    facts = [_lr_facts(runs) for runs in by_lr.values()]
    return min(facts, key=lambda f: (f["epochs_median"] is None, f["epochs_median"] or 0.0,
                                     f["final_loss_median"] if f["final_loss_median"] is not None else np.inf))


def width_table(rows: list[dict], optimizer: str, fixed_lr: float | None) -> list[dict]:
    """Per hidden width: the facts at `fixed_lr` (if given) and at the width's best lr."""
    out = []
    for width, by_lr in sorted(_by_width(rows, optimizer).items()):
        first = next(iter(by_lr.values()))[0]
        entry = {"width": width, "n_params": first["n_params"], "flops_per_epoch": first["flops_per_epoch"],
                 "lrs_tried": sorted(by_lr), "best": _best_lr(by_lr)}
        if fixed_lr is not None:
            near = min(by_lr, key=lambda lr: abs(np.log(lr / fixed_lr)))
            entry["fixed"] = _lr_facts(by_lr[near])
        best = entry["best"]
        entry["flops_to_tol"] = None if best["epochs_median"] is None else best["epochs_median"] * first[
            "flops_per_epoch"]
        out.append(entry)
    return out


def init_sharpness(data: Dataset, seeds) -> dict[int, float]:
    """Median sharpness (top Hessian eigenvalue) at the sweep's initial factors, per width."""
    stats = Stats.of(data.X, data.Y)
    return {h: float(statistics.median(sharpness(stats, init_factors((10, h, 2), "normal", 1.0, s), tol=1e-6)
                                       for s in seeds)) for h in WIDTHS}


def _timed_to_tol(data: Dataset, width: int, lr: float, optimizer: str) -> float | None:
    # one run (seed 0) on the numpy engine, timed on its own: the wall time to tol
    config = TrainConfig(widths=(10, width, 2), lr=lr, epochs=3000, tol=TOL, optimizer=optimizer)
    t0 = time.perf_counter()
    result = fit(data, config)
    return time.perf_counter() - t0 if result.epochs_to_tol is not None else None


def answer_scaling(data: Dataset, rows: list[dict], seeds) -> dict:
    """4. Do more parameters converge faster? Fixed lr, each width's best lr, costs, and why."""
    sgd = width_table(rows, "sgd", SEED_LR)
    sharp = init_sharpness(data, seeds)
    for entry in sgd:
        entry["sharpness"] = sharp[entry["width"]]
        entry["stability_lr"] = 2.0 / sharp[entry["width"]]
        best = entry["best"]
        entry["seconds_to_tol"] = None if best["epochs_median"] is None else _timed_to_tol(
            data, entry["width"], best["lr"], "sgd")
    return {"seed_lr": SEED_LR, "tol": TOL, "widths": list(WIDTHS), "seeds": list(seeds), "sgd": sgd}


def answer_adam(rows: list[dict], replays: dict[str, Replay]) -> dict:
    """5. Adam against SGD: each at its best lr per width, and the seed's own pair."""
    return {"adam": width_table(rows, "adam", 0.1), "sgd": width_table(rows, "sgd", None),
            "seed_adam_epochs": replays["adam"].epochs_to_tol,
            "seed_sgd_epochs": replays["custom-module"].epochs_to_tol}


def singular_value_path(data: Dataset, widths, lr: float, epochs: int, factors=None) -> dict:
    """The singular values of W1⋯WL after every epoch of a run (numpy engine)."""
    config = TrainConfig(widths=widths, lr=lr, epochs=epochs, tol=TOL)
    path = []
    start = factors if factors is not None else init_factors(widths, "normal", 1.0, 0)
    path.append(np.linalg.svd(end_to_end(start), compute_uv=False).tolist())

    def record(epoch):
        path.append(np.linalg.svd(end_to_end(epoch.engine.params()[0]), compute_uv=False).tolist())

    result = fit(data, config, factors=start, callbacks=(record,))
    return {"widths": list(widths), "lr": lr, "singular_values": path, "result": result,
            "n_params": n_params(widths)}
