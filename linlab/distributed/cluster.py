"""Clients of Dask clusters: a scheduler at an address, or a LocalCluster on loopback.

Examples
--------
Connect to a real scheduler over TLS (certificates from your cluster's administrator)::

    from distributed import Client
    from distributed.security import Security
    import linlab

    security = Security(tls_ca_file="ca.pem", tls_client_cert="client.pem",
                        tls_client_key="client-key.pem", require_encryption=True)
    with Client("tls://scheduler.example.org:8786", security=security) as client:
        table = linlab.sweep("sweep.toml", out="results.parquet", client=client)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re

INSTALL_HINT = 'pip install "linlab[dask]"'
# one thread per worker process for BLAS and OpenMP: workers share the machine's cores
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def require_dask():
    """Import ``distributed``, or say which extra installs it."""
    try:
        import distributed
    except ImportError:
        raise ModuleNotFoundError(f"a Dask cluster needs the dask extra: {INSTALL_HINT}") from None
    return distributed


def active_client():
    """The Dask client this process made last, or None."""
    distributed = require_dask()
    try:
        return distributed.default_client()
    except ValueError:
        return None


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """``("local", N)`` for ``local:N``, ``("address", spec)`` for a scheduler address.

    Examples
    --------
    >>> parse_cluster("local:2"), parse_cluster("tls://10.0.0.5:8786")
    (('local', 2), ('address', 'tls://10.0.0.5:8786'))
    """
    spec = str(spec).strip()
    if spec.startswith("local"):
        match = re.fullmatch(r"local:(\d+)", spec)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"--cluster {spec!r}: write local:N with N >= 1 worker processes, e.g. local:2.")
        return "local", int(match.group(1))
    if not re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+|[\w.\-\[\]:]+:\d+", spec):
        raise ValueError(f"--cluster {spec!r} is neither local:N nor a scheduler address such as "
                         "tcp://10.0.0.5:8786 or tls://scheduler:8786.")
    return "address", spec


def one_thread() -> None:
    """Limit this process to one thread for BLAS, OpenMP and (when loaded) torch."""
    import sys

    for var in THREAD_VARIABLES:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # the environment variables still reach pools started later
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@contextlib.contextmanager
def connect(cluster: str, *, dashboard: bool = False, security=None, timeout: float = 30):
    """A Dask client for the length of a ``with`` block.

    Parameters
    ----------
    cluster : str
        ``local:N``: start a ``LocalCluster`` of N worker processes, one thread each, bound to
        127.0.0.1. Otherwise a scheduler address (``tcp://host:8786``, ``tls://host:8786``).
    dashboard : bool
        Serve the local cluster's dashboard on 127.0.0.1 (off by default); the address is
        ``client.dashboard_link``.
    security : distributed.security.Security, optional
        TLS for a remote scheduler; by default what Dask's configuration says.
    timeout : float
        Seconds to wait for the scheduler.

    Notes
    -----
    A script that starts a local cluster needs the ``if __name__ == "__main__":`` guard:
    worker processes are spawned and re-import the script.
    """
    kind, value = parse_cluster(cluster)
    distributed = require_dask()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            nanny_log = logging.getLogger("distributed.nanny")
            stack.callback(nanny_log.setLevel, nanny_log.level)  # restored once the cluster is closed
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=value, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0" if dashboard else None,
                env={var: "1" for var in THREAD_VARIABLES},
            ))
            client = stack.enter_context(distributed.Client(local, timeout=timeout))
            # on closing, a worker slow to stop is killed: no news worth a warning
            stack.callback(nanny_log.setLevel, logging.ERROR)
        else:
            try:
                client = stack.enter_context(distributed.Client(value, security=security, timeout=timeout))
            except OSError as e:
                raise ValueError(f"--cluster {value!r}: no scheduler answered ({e}). Check the address and that "
                                 "the scheduler runs (dask scheduler); TLS needs its certificates.") from None
        _register(client)
        yield client


def _register(client) -> None:
    from .worker import OneThreadPerWorker

    client.register_plugin(OneThreadPerWorker(), name=OneThreadPerWorker.name)
