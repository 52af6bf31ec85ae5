"""Records: the finished runs of a stack as the :class:`~linlab.results.RunResult` objects that
:func:`linlab.engines.fit` would have returned, built for the whole stack at once."""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator

import numpy as np

from ...config import TrainConfig
from ...results import RunResult

FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
GET_FIELDS = operator.attrgetter(*FIELDS)
# RunResult's fields in order: the records pass them by position (half the cost of keywords)
POSITIONAL = ("config", "outcome", "message", "history", "epochs", "lr", "factors", "biases", "val_history",
              "epochs_to_tol", "seconds", "distance_to_true", "initial_factors", "extra")
assert tuple(f.name for f in dataclasses.fields(RunResult)) == POSITIONAL, "RunResult's fields changed"


def config_record(config: TrainConfig, device: str, data_name: str) -> dict:
    """``config.to_dict()`` with engine and device as run, built without dataclasses.asdict's
    deep copies (a tenth of a millisecond a run, more than a sweep's epochs).

    Examples
    --------
    >>> config_record(TrainConfig(widths=(3, 1)), "cpu", "toy")["widths"]
    [3, 1]
    """
    fields = config.__dict__
    if len(fields) != len(FIELDS):  # attributes beyond the fields: the fields alone
        fields = dict(zip(FIELDS, GET_FIELDS(config)))
    return {**fields, "widths": [*config.widths], "betas": [*config.betas], "engine": "batched",
            "device": device, "extra": copy.deepcopy(config.extra) if config.extra else {}, "data": data_name}


def deferred_record(config: TrainConfig, device: str, data_name: str):
    """:func:`config_record` for a RunResult to build on its first read of ``config``; built now
    where ``config.extra`` is set (a dict its owner may still change)."""
    if config.extra:
        return config_record(config, device, data_name)
    return functools.partial(config_record, config, device, data_name)


def truth(data) -> tuple[np.ndarray, float] | None:
    # W_true in float64 and the norm distances are divided by (1 when W_true = 0), or None
    if data.W_true is None:
        return None
    W_true = np.asarray(data.W_true, dtype=np.float64)
    return W_true, float(np.linalg.norm(W_true)) or 1.0


def distances(known, factor_lists, layers=None) -> list[float | None]:
    """‖W1⋯WL − W_true‖_F / ‖W_true‖_F of every run (None each when `known`, the data's
    :func:`truth`, is None): the products of runs of one shape as one stacked product.

    Examples
    --------
    >>> runs = [[np.ones((2, 1)), np.ones((1, 1))], [np.zeros((2, 3)), np.zeros((3, 1))]]
    >>> distances((np.ones((2, 1)), np.sqrt(2.0)), runs)
    [0.0, 1.0]
    """
    if known is None:
        return [None] * len(factor_lists)
    try:  # the common case: every run of one shape (the layers as one array each, where given)
        return _distances(known, layers or [[factors[j] for factors in factor_lists]
                                            for j in range(len(factor_lists[0]))])
    except ValueError:
        pass
    out: list[float | None] = [None] * len(factor_lists)
    by_shape: dict[tuple, list[int]] = {}
    for i, factors in enumerate(factor_lists):
        by_shape.setdefault(tuple([W.shape for W in factors]), []).append(i)
    for runs in by_shape.values():
        for i, value in zip(runs, _distances(known, list(zip(*[factor_lists[i] for i in runs])))):
            out[i] = value
    return out


def _distances(known, layers) -> list[float]:
    # the runs' layers, each (runs, a, b) or a list of the runs' (a, b) arrays of one shape (else
    # NumPy refuses to stack them: ValueError); padded layers give the same product
    P = np.asarray(layers[0], dtype=np.float64)
    for layer in layers[1:]:
        P = P @ np.asarray(layer, dtype=np.float64)
    D = (P - known[0]).reshape(len(P), -1)
    return (np.sqrt(np.einsum("ij,ij->i", D, D)) / known[1]).tolist()


def records(data, configs, device, rules, finals, seconds, starts, known) -> list[RunResult]:
    """The runs of a stack whose histories and outcomes `rules` holds, as RunResults in order
    (`finals`: each run's (factors, biases); `starts`: its initial factors; `known`: :func:`truth`
    of the data). Each history is a view of a column of ``rules.history``."""
    with np.errstate(all="ignore"):  # a run that diverged at its start may overflow its distance
        distance = distances(known, list(map(operator.itemgetter(0), finals)), getattr(finals, "layers", None))
    history, changes, name = rules.history.T, rules.lr_changes, data.name
    columns = zip(configs, rules.outcome, rules.message, rules.length.tolist(), rules.lrs.tolist(), finals,
                  rules.epochs_to_tol, np.asarray(seconds, dtype=np.float64).tolist(), distance, starts)
    return [
        RunResult(deferred_record(c, device, name), outcome, message, history[j, :n], n - 1, lr, *final, None,
                  to_tol, spent, far, list(start),  # float64 arrays of this call's own
                  {"lr_changes": changes[j]} if changes and changes.get(j) else {})
        for j, (c, outcome, message, n, lr, final, to_tol, spent, far, start) in enumerate(columns)
    ]
