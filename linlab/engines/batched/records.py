"""Records: a finished run of a stack as the :class:`~linlab.results.RunResult` that
:func:`linlab.engines.fit` would have returned."""

from __future__ import annotations

import copy
import dataclasses
import operator

import numpy as np

from ...config import TrainConfig
from ...models import end_to_end
from ...results import RunResult

FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
GET_FIELDS = operator.attrgetter(*FIELDS)


def config_record(config: TrainConfig, device: str, data_name: str) -> dict:
    """``config.to_dict()`` with engine and device as run, built without dataclasses.asdict's
    deep copies (a tenth of a millisecond a run, more than a sweep's epochs)."""
    record = dict(zip(FIELDS, GET_FIELDS(config)))
    record.update(widths=list(config.widths), betas=list(config.betas), engine="batched", device=device,
                  extra=copy.deepcopy(config.extra) if config.extra else {}, data=data_name)
    return record


def truth(data) -> tuple[np.ndarray, float] | None:
    # W_true in float64 and the norm distances are divided by (1 when W_true = 0), or None
    if data.W_true is None:
        return None
    W_true = np.asarray(data.W_true, dtype=np.float64)
    return W_true, float(np.linalg.norm(W_true)) or 1.0


def distance(known, factors) -> float | None:
    # ‖W1⋯WL − W_true‖_F / ‖W_true‖_F, with the Frobenius norm as np.linalg.norm computes it
    if known is None:
        return None
    x = (end_to_end(factors) - known[0]).ravel()
    return float(np.sqrt(x.dot(x)) / known[1])


def record(data, config, device, rules, j, final, seconds, start, known) -> RunResult:
    """Run `j` of a stack whose histories and outcomes `rules` holds, as a RunResult
    (`known`: :func:`truth` of the data)."""
    n = int(rules.length[j])
    factors, biases = final
    distance_ = distance(known, factors)
    return RunResult(
        config=config_record(config, device, data.name), outcome=rules.outcome[j], message=rules.message[j],
        history=rules.history[:n, j].copy(), epochs=n - 1, lr=float(rules.lrs[j]), factors=factors,
        biases=biases, epochs_to_tol=rules.epochs_to_tol[j], seconds=float(seconds),
        distance_to_true=distance_, initial_factors=list(start),  # float64 arrays of this call's own
        extra={"lr_changes": rules.lr_changes[j]} if rules.lr_changes.get(j) else {},
    )
