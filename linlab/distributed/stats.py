"""`Stats` of sharded data as a map-reduce on a Dask cluster."""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import Stats
from . import worker


def cluster_stats(client, pieces: Sequence) -> Stats:
    """One task per piece (a shard or a Parquet row group), added pairwise in a tree.

    The tree is :func:`linlab.data.shards.tree_sum`'s, level by level on the workers, so
    the result is the single-process pass's to rounding (the same bits when both read the
    same pieces). A task that fails, or whose worker dies, is retried.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from linlab.data.shards import pieces
    >>> from linlab.distributed import connect
    >>> folder = tempfile.mkdtemp()
    >>> for i in range(4):
    ...     np.save(os.path.join(folder, f"part{i}.npy"), np.full((5, 3), float(i)))
    >>> with connect("local:1") as client:  # doctest: +SKIP
    ...     cluster_stats(client, pieces(folder)[0]).n
    20
    """
    if not pieces:
        raise ValueError("no pieces to summarise; a dataset needs at least one row.")
    level = client.map(worker.piece_stats, list(pieces), retries=3, pure=False)
    while len(level) > 1:
        pairs = [level[i:i + 2] for i in range(0, len(level), 2)]
        level = [client.submit(worker.add, *p, retries=3, pure=False) if len(p) == 2 else p[0] for p in pairs]
    return level[0].result()
