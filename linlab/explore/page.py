"""The explorer page: the statistics it embeds and the HTML file that carries them.

The page trains on the statistics alone, in the exact decomposition of linlab's batched
engine (:mod:`linlab.engines.batched.objective_stats`): with P₀ the least-squares solution,
Δ = P − P₀, r = AP₀ − C and L* = ‖XP₀ − Y‖² (r and L* from the rows when that is needed),

    ‖XP − Y‖² = Σ_i λ_i ‖(VᵀΔ)_i‖² + 2 tr(Δᵀr) + L*,    ∂/∂P = 2(VΛVᵀΔ + r),

where A = XᵀX = VΛVᵀ. The loss is then a sum of nonnegative terms plus L*, exact to its
last digits down to the optimum, where the textbook tr(PᵀAP) − 2tr(PᵀC) + ‖Y‖² would lose
everything below eps·‖Y‖² to cancellation. The factors stay in the data's own basis, so
Adam (which acts coordinate by coordinate) takes the very steps it takes in linlab.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..data import Dataset

MOMENTUM = 0.9  # the page's "momentum" optimizer: heavy ball with this μ
OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = ("normal", "balanced", "orthogonal")  # normal: N(0, scale²) entries (linlab's "scaled")
MAX_DEPTH = 4
MAX_EPOCHS = 10_000  # the epochs slider's end
DEFAULTS = {"depth": 2, "width": None, "lr": None, "init": "normal", "init_scale": 1.0, "optimizer": "sgd",
            "epochs": 1000, "reduction": "sum", "seed": 0}
# the rules of the run, as TrainConfig has them: the page's loop stops as linlab's does
RULES = ("tol", "stall_window", "stall_rtol", "diverge_factor", "betas", "eps")


def _matrix(M) -> list:
    return np.asarray(M, dtype=np.float64).tolist()


def _depth1_lrs(data: Dataset, reduction: str) -> dict:
    """The depth-1 stability bounds 2(1+μ)/λmax and the lr ``lr="auto"`` picks, for SGD and
    heavy ball (the ones ``linlab diagnose`` quotes)."""
    from ..theory import auto_lr, hessian_spectrum

    top = float(hessian_spectrum(data, reduction=reduction).max())
    out = {}
    for name, mu in (("sgd", 0.0), ("momentum", MOMENTUM)):
        config = TrainConfig(widths=(data.n_features, data.n_targets), reduction=reduction, momentum=mu)
        out[name] = {"stable": 2.0 * (1.0 + mu) / top, "optimal": auto_lr(data, config, None)}
    return out


def _floors(data: Dataset, reduction: str) -> dict:
    """L*, the rank floor of every narrowest width that can bind (Eckart-Young) and L* with
    an intercept (the page's model has no bias; ``linlab diagnose`` names a missing one)."""
    from ..theory import least_squares, rank_floor

    widths = range(1, min(data.n_features, data.n_targets) + 1)
    floors = [rank_floor(data, r, reduction=reduction) for r in widths]
    return {"ls_loss": floors[0].ls_loss, "fitted_rank": floors[0].fitted_rank,
            "loss": [f.loss for f in floors], "share": [f.share for f in floors],
            "ls_with_bias": least_squares(data, intercept=True, reduction=reduction).loss}


def _conditioning(data: Dataset, reduction: str) -> dict:
    """κ of XᵀX and κ after --standardize, as ``linlab diagnose`` computes them for its
    slow verdicts (the standardized one only where κ > COND_WARN, where diagnose names it)."""
    from ..diagnose import COND_WARN, _kappa, _standardized_gram
    from ..theory import hessian_spectrum

    kappa = _kappa(hessian_spectrum(data, reduction=reduction))
    scaled = None
    if kappa is not None and kappa > COND_WARN:
        gram = _standardized_gram(data)
        scaled = _kappa(np.linalg.eigvalsh(gram)) if gram.size else None
    return {"kappa": kappa, "standardized": scaled}


def explorer_stats(data: Dataset) -> dict:
    """What the explorer page embeds: statistics of `data`, never its rows.

    Parameters
    ----------
    data : Dataset

    Returns
    -------
    dict
        JSON-ready: ``n``, ``d``, ``k``, ``yy`` (‖Y‖²), the eigenvalues ``lam`` (ascending)
        and eigenvectors ``V`` (columns) of XᵀX, ``P_ls`` (the least-squares W),
        ``r`` = XᵀX·P_ls − XᵀY, ``L_star`` (its summed loss), ``C_eig`` = VᵀXᵀY, the
        singular values ``ls_sv`` of P_ls, and per reduction the rank ``floors`` (with
        L* with an intercept), the depth-1 ``lrs`` (stability bound, optimal lr) and the
        ``condition`` number κ of XᵀX (and after standardizing, where κ > 100).

    Notes
    -----
    See the module: loss = Σ_i λ_i ‖(VᵀΔ)_i‖² + 2tr(Δᵀr) + L*, Δ = P − P_ls.

    Examples
    --------
    >>> from linlab import seed_dataset
    >>> s = explorer_stats(seed_dataset())
    >>> s["n"], s["d"], s["k"], len(s["floors"]["sum"]["loss"])
    (1000, 10, 2, 2)
    """
    from ..engines.batched.objective_stats import least_squares_terms
    from ..theory import as_stats

    if data.n_samples < 1:
        raise ValueError(f"data {data.name!r} has no rows; the explorer needs at least one.")
    stats = as_stats(data)
    terms = least_squares_terms(stats, data.X, data.Y)
    lam, V = np.linalg.eigh(0.5 * (stats.A + stats.A.T))
    return {
        "name": data.name, "n": stats.n, "d": stats.n_features, "k": stats.n_targets, "yy": stats.yy,
        "lam": np.clip(lam, 0.0, None).tolist(), "V": _matrix(V), "P_ls": _matrix(terms.P),
        "r": _matrix(terms.r), "L_star": terms.loss, "C_eig": _matrix(V.T @ stats.C),
        "ls_sv": np.linalg.svd(terms.P, compute_uv=False).tolist(),
        "floors": {red: _floors(data, red) for red in ("sum", "mean")},
        "lrs": {red: _depth1_lrs(data, red) for red in ("sum", "mean")},
        "condition": {red: _conditioning(data, red) for red in ("sum", "mean")},
    }


def _whole(value, low, high) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _check_options(stats: dict, options: dict) -> dict:
    """The page's starting controls: `options` over ``DEFAULTS``, each checked."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown explorer option(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}.")
    o = {**DEFAULTS, **options}
    top = 4 * max(stats["d"], stats["k"])
    if o["width"] is None:
        o["width"] = max(stats["d"], stats["k"])
    if o["lr"] is None and o["reduction"] in ("sum", "mean"):  # depth 1: the optimal lr; deeper 2% of it
        optimal = stats["lrs"][o["reduction"]]["sgd"]["optimal"]
        o["lr"] = optimal if o["depth"] == 1 else float(f"{0.02 * optimal:.1g}")
    checks = [
        ("depth", _whole(o["depth"], 1, MAX_DEPTH), f"an integer from 1 to {MAX_DEPTH}"),
        ("width", _whole(o["width"], 1, top), f"an integer from 1 to {top} (4×max(d, k))"),
        ("lr", _positive(o["lr"]), "a number > 0"),
        ("init", o["init"] in INITS, f"one of {', '.join(INITS)}"),
        ("init_scale", _positive(o["init_scale"]) and 1e-3 <= o["init_scale"] <= 10,
         "a number from 0.001 to 10 (the init scale slider's range)"),
        ("optimizer", o["optimizer"] in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        ("epochs", _whole(o["epochs"], 10, MAX_EPOCHS), f"an integer from 10 to {MAX_EPOCHS}"),
        ("reduction", o["reduction"] in ("sum", "mean"), "sum or mean"),
        ("seed", _whole(o["seed"], 0, 2**32 - 1), "an integer from 0 to 2**32 - 1"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"{name}={o[name]!r} is not valid for the explorer; give {expected}.")
    return o


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _uplot() -> tuple[str, str]:
    """uPlot's script and stylesheet, vendored in ``vendor/`` (MIT, ``vendor/uPlot.LICENSE``)."""
    return _resource("vendor/uPlot.iife.min.js"), _resource("vendor/uPlot.min.css")


def _script_json(value) -> str:
    # JSON inside <script>: "</" would end the element, so it is escaped (still valid JSON)
    return json.dumps(value, allow_nan=False).replace("</", "<\\/")


def explorer_html(data: Dataset, **options) -> str:
    """The explorer page for `data` as one HTML string.

    Parameters
    ----------
    data : Dataset
    **options
        The page's starting controls, as in :func:`write_explorer`.

    Returns
    -------
    str
        The page: template, inlined uPlot (script and stylesheet), the page's script and the statistics of
        :func:`explorer_stats` with the controls and the stop rules, as JSON.
    """
    stats = explorer_stats(data)
    controls = _check_options(stats, options)
    rules = {name: getattr(TrainConfig(), name) for name in RULES}
    payload = {"stats": stats, "controls": controls, "rules": {**rules, "betas": list(rules["betas"])},
               "momentum": MOMENTUM}
    uplot_js, uplot_css = _uplot()
    parts = {
        "/*@UPLOT@*/": uplot_js, "/*@UPLOT_CSS@*/": uplot_css, "/*@CORE@*/": _resource("core.js"),
        "/*@RULES@*/": _resource("rules.js"), "/*@UI@*/": _resource("ui.js"),
        "/*@DATA@*/": _script_json(payload), "@TITLE@": f"linlab explore: {data.name}",
        "/*@STYLE@*/": _resource("explorer.css"),
    }
    page = _resource("explorer.html")
    for marker, text in parts.items():
        if page.count(marker) != 1:
            raise RuntimeError(f"the explorer template must hold {marker} exactly once")
        safe = _escape(text) if marker == "@TITLE@" else text.replace("</script", "<\\/script")
        page = page.replace(marker, safe)
    return page


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_explorer(data: Dataset, path, **options) -> Path:
    """Write the explorer page for `data` to `path`: one self-contained HTML file.

    The file embeds the data's statistics (never its rows), uPlot (the charts) and the page's own
    script; it opens from a ``file://`` URL, with no server and no network. Every change
    of a control re-runs the whole training in the browser (float64) and redraws.

    Parameters
    ----------
    data : Dataset
    path : str or Path
        Where to write the page (written atomically).
    **options
        Initial controls: ``depth`` (1-4, default 2), ``width`` (hidden units, 1 to
        4·max(d, k); default max(d, k)), ``lr`` (default: at depth 1 the optimal lr, deeper 2% of it),
        ``init`` (normal, balanced, orthogonal), ``init_scale`` (0.001 to 10, default 1.0), ``optimizer``
        (sgd, momentum, adam), ``epochs`` (1000), ``reduction`` (sum, mean), ``seed`` (0).

    Returns
    -------
    Path
        The page's path.

    Examples
    --------
    >>> import os, tempfile
    >>> from linlab import seed_dataset
    >>> path = write_explorer(seed_dataset(), os.path.join(tempfile.mkdtemp(), "explorer.html"), depth=3)
    >>> "uPlot" in path.read_text(encoding="utf-8")  # the charting library is inlined
    True
    """
    from ..atomic import atomic_write

    html = explorer_html(data, **options).encode("utf-8")
    return atomic_write(path, lambda f: f.write(html))
