"""One chunk of a sweep: runs trained together, returned as rows of the sweep table."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa

from ..data import Dataset
from .grid import Run


def run_chunk(data: Dataset, chunk: Sequence[Run], **options) -> pa.Table:
    """Train the runs of `chunk` on `data` (:func:`linlab.sweeps.run_batch`, `options` passed
    on) and return their rows, in order."""
    from . import result_row, run_batch, to_table  # through the package: the names tests replace

    results = run_batch(data, [r.config for r in chunk], **options)
    return to_table([result_row(r.run_id, r.config, result, data) for r, result in zip(chunk, results)])


def local_chunks(data: Dataset, chunks: Sequence[Sequence[Run]], options: dict) -> Iterator[tuple[int, pa.Table]]:
    """``(index, table)`` of each chunk, run here one after another."""
    for i, chunk in enumerate(chunks):
        yield i, run_chunk(data, chunk, **options)


def executor(client) -> Callable:
    """How chunks run: here, or as tasks on `client`'s Dask cluster."""
    if client is None:
        return local_chunks
    from ..distributed.sweep import cluster_chunks

    return lambda data, chunks, options: cluster_chunks(client, data, chunks, options)
