"""What runs on the workers: the one-thread plugin and the tasks of statistics and sweeps."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from .cluster import one_thread


class OneThreadPerWorker(WorkerPlugin):
    """Torch and BLAS use one thread in every worker process, so workers do not fight over cores."""

    name = "linlab-one-thread"

    def setup(self, worker):
        one_thread()


def add(a, b):
    """The reduction step of a tree sum (`Stats` merge by addition)."""
    return a + b


def piece_stats(piece):
    """`Stats` of one shard or row group."""
    from ..data.shards import piece_stats

    return piece_stats(piece)


def sweep_chunk(data, chunk, options: dict):
    """One chunk of a sweep as a table, on one thread."""
    from ..sweeps.chunks import run_chunk

    one_thread()
    return run_chunk(data, chunk, **options)
