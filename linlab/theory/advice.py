"""Advice before training: the floor an architecture can reach, the learning-rate bounds,
the lr to use, and how many epochs gradient descent will need (``linlab advise``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import TrainConfig
from ..models import init_biases, initial_factors
from .least_squares import as_stats, rank_floor
from .lr import auto_lr, top_curvature
from .spectrum import epochs_to_tol, lr_bounds


@dataclass
class Advice:
    """What theory says about training `widths` on a dataset.

    ``floor``: L*, the rank of Ŷ and the rank floor (squared loss); ``bounds``: the
    depth-1 Hessian's learning-rate facts; ``lr``: the recommended lr for `widths` (None
    where ``lr="auto"`` has no rule for the model, the rule then says why), its stability
    bound and how it was chosen; ``forecast``: epochs to tol; ``notes``: the
    same in sentences.
    """

    data: dict
    widths: tuple[int, ...]
    loss: str
    reduction: str
    tol: float
    floor: dict | None
    bounds: dict
    lr: dict
    forecast: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable (NaN and infinity never appear; missing values are None)."""
        return {"data": self.data, "widths": list(self.widths), "loss": self.loss,
                "reduction": self.reduction, "tol": self.tol, "floor": self.floor,
                "bounds": self.bounds, "lr": self.lr, "forecast": self.forecast, "notes": self.notes}

    def rows(self) -> list[tuple[str, str, object]]:
        """(section, quantity, value) rows for a table."""
        out = [("data", key, value) for key, value in self.data.items()]
        for section in ("floor", "bounds", "lr", "forecast"):
            out += [(section, key, value) for key, value in (getattr(self, section) or {}).items()]
        return out


def _floor(data, config: TrainConfig) -> dict | None:
    if config.loss != "squared":
        return None
    f = rank_floor(data, config.widths, intercept=config.bias, reduction=config.reduction)
    return {"ls_loss": f.ls_loss, "fitted_rank": f.fitted_rank, "narrowest_width": f.width,
            "floor_loss": f.loss, "floor_share": f.share, "binding": f.binding,
            "width_needed": f.fitted_rank}


def _bounds(data, config: TrainConfig) -> dict:
    b = lr_bounds(data, reduction=config.reduction, intercept=config.bias)
    out = b.to_dict()
    if config.loss == "huber":  # ½r² near zero: half the curvature, twice the lrs
        out = {k: (v * 0.5 if k.startswith("lam") else v * 2.0 if k.endswith("lr") else v)
               for k, v in out.items()}
    return out


def _lr(data, config: TrainConfig, factors, biases, bounds: dict) -> dict:
    rule = "2/(λmin+λmax) of the Hessian"
    stable = bounds["stable_lr"]
    if config.depth > 1:
        top = top_curvature(as_stats(data), factors, config.reduction, biases)
        stable = 2.0 / top if top > 0 else None
        rule = "1/sharpness at the initial factors (half the stability bound), lowered if the loss rises"
    elif config.loss == "lp":
        stable, rule = None, f"1/λmax of the ℓ{config.p:g} Hessian at the initial factors"
    try:
        recommended = auto_lr(data, config, factors, biases)
    except ValueError as err:  # no rule covers this model (e.g. the huber loss beyond depth 1)
        recommended, rule = None, str(err)
    return {"recommended": recommended, "stable": stable, "rule": rule}


def _forecast(data, config: TrainConfig, floor: dict | None, bounds: dict, recommended: float,
              compare_lr: float | None) -> dict:
    """Epochs to tol: exact for plain regression (squared loss), 'never' under a floor above tol."""
    out = {"epochs_to_tol": None, "plain_lr": None, "plain_epochs": None,
           "compare_lr": compare_lr, "compare_epochs": None}
    if config.loss != "squared":
        return out
    d, k = config.widths[0], config.widths[-1]
    W0 = initial_factors(data, config.replace(widths=(d, k)))[0]
    b0 = np.zeros(k) if config.bias else None

    def plain(lr):
        epochs = epochs_to_tol(data, W0, lr, config.tol, b0=b0, reduction=config.reduction)
        return "never" if epochs is None else epochs

    out["plain_lr"] = bounds["optimal_lr"]
    out["plain_epochs"] = plain(bounds["optimal_lr"])
    if compare_lr is not None:
        out["compare_epochs"] = plain(compare_lr)
    if config.depth == 1:
        out["epochs_to_tol"] = plain(recommended)
    elif floor["binding"] and floor["floor_loss"] > config.tol:
        out["epochs_to_tol"] = "never"
    return out


def _notes(a: Advice) -> list[str]:
    notes, f, b, fc = [], a.floor, a.bounds, a.forecast
    if f is not None and f["binding"]:
        notes.append(
            f"Narrowest width {f['narrowest_width']} < rank {f['fitted_rank']} of the fitted values Ŷ: the best "
            f"rank-{f['narrowest_width']} fit leaves loss {f['floor_loss']:.6g} ({100 * f['floor_share']:.3g}% of "
            f"‖Y‖²), where gradient descent stalls at any lr. Hidden widths >= {f['width_needed']} reach "
            f"L* = {f['ls_loss']:.6g}.")
    head = "Plain regression" if a.loss != "lp" else "Plain regression with the squared loss"
    notes.append(
        f"{head}: GD is stable for lr < {b['stable_lr']:.3g} (2/λmax); lr = {b['optimal_lr']:.3g} "
        f"(2/(λmin+λmax)) shrinks the error {b['rate']:.3g}x per epoch; heavy ball with momentum "
        f"{b['momentum']:.3g} and lr {b['momentum_lr']:.3g} shrinks it {b['momentum_rate']:.3g}x.")
    if fc["plain_epochs"] is not None:
        line = (f"Plain regression from the initial factors never reaches tol={a.tol:g}"
                if fc["plain_epochs"] == "never" else
                f"Plain regression from the initial factors reaches tol={a.tol:g} in {fc['plain_epochs']} epochs")
        if fc["compare_lr"] is not None:
            line += f" at lr {fc['plain_lr']:.3g}, against {fc['compare_epochs']} at lr {fc['compare_lr']:.3g}"
        notes.append(line + ".")
    if f is not None and f["ls_loss"] > a.tol:
        notes.append(f"L* = {f['ls_loss']:.6g} is above tol={a.tol:g}: no linear model gets there; raise tol.")
    if a.lr["recommended"] is None:
        notes.append(f"No lr is recommended for widths {a.widths}: {a.lr['rule']}")
    else:
        notes.append(f"Recommended lr for widths {a.widths}: {a.lr['recommended']:.3g} ({a.lr['rule']}).")
    if len(a.widths) > 2 and fc["epochs_to_tol"] is None:
        how = 'train with lr="auto"' if a.lr["recommended"] is not None else "train"
        notes.append(f"Depth > 1 has no closed-form epoch count; {how} and watch the loss.")
    if a.loss != "squared":
        notes.append(f"Floors and forecasts are exact for the squared loss only; {a.loss!r} gets bounds alone.")
    return notes


def advise(data, widths, *, loss: str = "squared", reduction: str = "sum", tol: float = 1e-4,
           bias: bool = False, init: str = "normal", seed: int = 0, compare_lr: float | None = None) -> Advice:
    """Theory's advice for training `widths` on `data` by gradient descent.

    Parameters
    ----------
    data : Dataset, Stats or (X, Y)
    widths : tuple of int or str
        ``(d, h1, ..., k)`` or ``"10,1,2"``.
    loss, reduction, tol, bias, init, seed
        As in :class:`~linlab.config.TrainConfig`; `init` and `seed` make the initial
        factors the forecasts start from, by the rule every run follows
        (:func:`~linlab.models.initial_factors`: the seed's own weights on its data with
        ``seed=0``).
    compare_lr : float, optional
        Also forecast plain regression at this lr (e.g. the seed's 1e-5).

    Returns
    -------
    Advice

    Notes
    -----
    Floor: L_r = L* + Σ_{i>r} σ_i²(Ŷ); bounds: 2/λmax and 2/(λmin+λmax) of H = 2s·XᵀX;
    forecast: the first t with L* + Σ c_i (1 − ηλ_i)^{2t} <= tol.

    Examples
    --------
    >>> from linlab import seed_dataset
    >>> a = advise(seed_dataset(), (10, 1, 2), compare_lr=1e-5)
    >>> round(a.floor["floor_loss"], 1), a.floor["width_needed"], a.forecast["epochs_to_tol"]
    (248784.9, 2, 'never')
    >>> a.forecast["plain_epochs"], a.forecast["compare_epochs"]
    (6, 619)
    """
    config = TrainConfig(widths=widths, loss=loss, reduction=reduction, tol=tol, bias=bias, init=init,
                         seed=seed, lr="auto")
    stats = as_stats(data)
    if (stats.n_features, stats.n_targets) != (config.widths[0], config.widths[-1]):
        raise ValueError(
            f"widths={config.widths} need {config.widths[0]} features and {config.widths[-1]} targets, "
            f"but the data has {stats.n_features} and {stats.n_targets}; use widths "
            f"({stats.n_features}, ..., {stats.n_targets})."
        )
    factors = initial_factors(data, config)
    biases = init_biases(config.widths, bias)
    floor, bounds = _floor(data, config), _bounds(data, config)
    lr = _lr(data, config, factors, biases, bounds)
    forecast = _forecast(data, config, floor, bounds, lr["recommended"], compare_lr)
    name = getattr(data, "name", "data")
    summary = {"name": name, "n_samples": stats.n, "n_features": stats.n_features, "n_targets": stats.n_targets}
    advice = Advice(summary, config.widths, loss, reduction, tol, floor, bounds, lr, forecast)
    advice.notes = _notes(advice)
    return advice
