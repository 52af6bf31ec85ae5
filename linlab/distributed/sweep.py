"""A sweep's chunks as Dask tasks: submitted with retries, yielded as they finish."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from . import worker

RETRIES = 3  # a chunk that raises, or whose worker dies, runs again up to this many times


def cluster_chunks(client, data, chunks: Sequence[Sequence], options: dict,
                   retries: int = RETRIES) -> Iterator[tuple[int, object]]:
    """Run each chunk of runs as one task; yield ``(index, table)`` in the order they finish.

    The dataset goes to every worker once (a sharded one as its statistics only). Each
    chunk's table is yielded once, whatever retries or lost workers happened, so the
    caller saves every run exactly once.
    """
    from distributed import as_completed

    shared = client.scatter(data, broadcast=True, hash=False)
    futures = {
        client.submit(worker.sweep_chunk, shared, list(chunk), options, retries=retries, pure=False): i
        for i, chunk in enumerate(chunks)
    }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
            future.release()
    finally:
        client.cancel(list(futures))
