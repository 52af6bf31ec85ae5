"""Beyond one machine: the statistics and sweeps of linlab on a Dask cluster.

Needs the optional extra: ``pip install "linlab[dask]"``. Nothing else in linlab imports
Dask; these modules do, when a cluster is asked for.

- :func:`~linlab.distributed.cluster.connect`: a client of a scheduler at an address
  (``tcp://`` or ``tls://`` with Dask's ``Security``), or of a ``LocalCluster`` of N worker
  processes on 127.0.0.1 (``"local:N"``), each worker with one thread for torch and BLAS.
- :func:`~linlab.distributed.stats.cluster_stats`: `Stats` as a map-reduce, one task per
  shard or Parquet row group, added in a tree on the workers. ``--data 'shards/*.parquet'``
  uses it whenever a client is active.
- :func:`~linlab.distributed.sweep.cluster_chunks`: a sweep's chunks as tasks with retries;
  :func:`linlab.sweeps.sweep` saves each as it arrives.

Mini-batch SGD over data that no machine holds whole is not distributed: what runs from the
statistics (every squared-loss, full-batch experiment: train, advise, sweep) scales out.
"""

from .cluster import INSTALL_HINT, active_client, connect, require_dask

__all__ = ["INSTALL_HINT", "active_client", "connect", "require_dask"]
