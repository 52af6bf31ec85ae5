"""``linlab train`` on sharded data: a run trained from the statistics, never from the rows.

Sharded ``--data`` (a glob or a folder, see :mod:`linlab.data.shards`) is known by its
statistics XᵀX, XᵀY, ‖Y‖², Σx, Σy and n. A squared-loss full-batch run without biases
depends on the rows through them alone, so train runs it on the batched engine's statistics
path (:mod:`linlab.engines.batched.objective_stats`) inside the usual loop: the same log
lines, stop rules, checkpoints and ``--resume``, at a cost per epoch that does not grow with
the rows. Whatever needs the rows every epoch is refused with what works instead.
"""

from __future__ import annotations

STATS_ENGINE = "batched"  # the single-run engine whose full-batch squared loss runs from the statistics
ON_ONE_FILE = "or train on one file (its rows are then read)"


def is_known_by_stats(data) -> bool:
    """Whether `data` is summarised by its statistics instead of held as rows (sharded data)."""
    from ..data.shards import ShardedDataset

    return isinstance(data, ShardedDataset)


def stats_settings(settings: dict, data, engine_given: bool) -> dict:
    """`settings` for a run trained from `data`'s statistics, or a ValueError naming the fix.

    Parameters
    ----------
    settings : dict
        The parsed ``linlab train`` settings.
    data : ShardedDataset
    engine_given : bool
        Whether ``--engine`` was set (on the command line or in ``--config``).

    Returns
    -------
    dict
        `settings` with ``engine`` set to the batched engine, which trains from the statistics.
    """
    spec = f"--data {data.name!r}"
    batch = settings.get("batch_size")
    refusals = [
        (batch is not None and batch < data.n_samples,
         f"--batch-size {batch}: mini-batches read the rows every epoch, and {spec} is sharded; leave out "
         "--batch-size to train full batch from the shards' statistics"),
        (settings.get("loss", "squared") != "squared",
         f"--loss {settings.get('loss')} needs the rows every epoch, and {spec} is sharded; use --loss "
         "squared (the default), which trains from the shards' statistics"),
        (bool(settings.get("bias")),
         f"--bias: the statistics path trains without biases, and {spec} is sharded; leave out --bias "
         "(write the shards with centred columns to fit an intercept)"),
        (settings.get("val_fraction") is not None,
         f"--val-fraction holds out rows, and {spec} is sharded and trained from the statistics of all "
         "of them; leave out --val-fraction"),
        (engine_given and settings.get("engine") != STATS_ENGINE,
         f"--engine {settings.get('engine')} computes X·W from the rows every epoch, and {spec} is sharded; "
         "leave out --engine to train from the shards' statistics (the batched engine, the same run to "
         "rounding)"),
    ]
    for refused, message in refusals:
        if refused:
            raise ValueError(f"{message}, {ON_ONE_FILE}.")
    return {**settings, "engine": STATS_ENGINE}
