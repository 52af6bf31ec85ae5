"""Statistics and sweeps on a Dask LocalCluster of 2 worker processes on 127.0.0.1.

One cluster serves the module: its workers import torch once. The kill tests wait for
evidence of progress (a finished chunk) before they kill, never for a fixed time.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_shards_and_store import assert_stats_close, write_shards

from linlab.data import file_stats
from linlab.data.shards import load_shards
from linlab.data.spec import load_data
from linlab.sweeps import Grid, parts_folder, read_table, sweep

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow  # a cluster's workers each import torch: tens of seconds on a busy machine

GRID = {
    "data": "synthetic:n=200,d=4,k=2,seed=5",
    "fixed": {"engine": "batched", "epochs": 300, "tol": 1e-3},
    "grid": {"widths": [[4, 2], [4, 3, 2]], "lr": {"log_range": [1e-4, 3e-3, 6]}, "seed": list(range(20))},
}
N_RUNS = 2 * 6 * 20
CHUNK = 10
WAIT = 300  # seconds: the longest any test waits for a sign of progress


@pytest.fixture(scope="module")
def client():
    from linlab.distributed import connect

    with connect("local:2") as client:
        client.run(lambda: __import__("torch"))  # both workers pay torch's import now, together
        yield client


@pytest.fixture(scope="module")
def local_table():
    return sweep(Grid.from_dict(GRID), runs_per_batch=CHUNK)


def assert_same_table(table, expected):
    assert table.num_rows == N_RUNS and len(set(table.column("run_id").to_pylist())) == N_RUNS
    for name in ("run_id", "outcome", "epochs_done", "epochs_to_tol"):
        assert table.column(name).to_pylist() == expected.column(name).to_pylist(), name
    for name in ("final_loss", "best_loss"):
        np.testing.assert_allclose(table.column(name).to_numpy(), expected.column(name).to_numpy(), rtol=1e-12)
    for a, b in zip(table.column("history").to_pylist(), expected.column("history").to_pylist()):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_local_cluster_binds_to_loopback_with_one_thread_per_worker(client):
    info = client.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:") and len(info["workers"]) == 2
    assert all(address.startswith("tcp://127.0.0.1:") for address in info["workers"])
    assert set(client.run(lambda: __import__("torch").get_num_threads()).values()) == {1}
    assert set(client.run(lambda: os.environ["OMP_NUM_THREADS"]).values()) == {"1"}


def test_statistics_over_8_shards_equal_the_single_pass(client, tmp_path, rng):
    whole = write_shards(tmp_path / "shards", rng)
    single = file_stats(whole, targets="y0,y1")
    on_cluster = load_shards(str(tmp_path / "shards" / "*.parquet"), targets="y0,y1", client=client)
    assert on_cluster.provenance["pieces"] == 24  # 8 shards of 3 row groups: 24 tasks
    assert_stats_close(on_cluster.stats, single)
    # the active client is used by any --data spec of shards
    assert_stats_close(load_data(str(tmp_path / "shards"), targets="y0,y1").stats, single)


def test_a_sweep_on_the_cluster_gives_the_local_table(client, local_table, tmp_path):
    table = sweep(Grid.from_dict(GRID), client=client, runs_per_batch=CHUNK, out=tmp_path / "r.parquet")
    assert_same_table(table, local_table)
    assert_same_table(read_table(tmp_path / "r.parquet"), local_table)


def test_a_worker_killed_mid_sweep_costs_no_result_and_duplicates_none(client, local_table, tmp_path):
    killed = []

    def kill_a_busy_worker(done, total):
        if done and not killed:  # a chunk is in: the others are running or waiting
            busy = [w for w, tasks in client.processing().items() if tasks] or list(client.processing())
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, done))

    table = sweep(Grid.from_dict(GRID), client=client, runs_per_batch=CHUNK, out=tmp_path / "r.parquet",
                  progress=kill_a_busy_worker)
    assert killed and killed[0][1] < N_RUNS
    assert_same_table(table, local_table)
    client.wait_for_workers(2, timeout=WAIT)  # the nanny restarts the killed worker


CLIENT_SCRIPT = """
import sys
from linlab.sweeps import Grid, sweep

if __name__ == "__main__":
    from distributed import Client

    with Client(sys.argv[1]) as client:
        sweep(Grid.from_dict({grid!r}), client=client, runs_per_batch={chunk}, out=sys.argv[2])
"""


def test_a_sweep_whose_client_is_killed_resumes_with_nothing_lost_or_repeated(client, local_table, tmp_path):
    out = tmp_path / "r.parquet"
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT_SCRIPT.format(grid=GRID, chunk=CHUNK)))
    process = subprocess.Popen([sys.executable, str(script), client.cluster.scheduler_address, str(out)])
    deadline = time.monotonic() + WAIT
    while not list(parts_folder(out).glob("chunk-*.parquet")) and time.monotonic() < deadline:
        assert process.poll() is None, "the client ended before saving a chunk"
        time.sleep(0.02)
    assert process.poll() is None, "the sweep finished before it could be killed; give it more runs"
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sum(read_table(p).num_rows for p in parts_folder(out).glob("chunk-*.parquet"))
    assert 0 < saved < N_RUNS and not out.exists()
    totals = []
    table = sweep(Grid.from_dict(GRID), client=client, runs_per_batch=CHUNK, out=out, resume=True,
                  progress=lambda done, total: totals.append(total))
    assert totals[0] == N_RUNS - saved  # only the runs the killed client had not saved
    assert_same_table(table, local_table)
    assert_same_table(read_table(out), local_table)
    assert not parts_folder(out).exists()


def test_train_on_shards_summarised_on_the_cluster_never_reads_a_row(client, tmp_path, rng, monkeypatch):
    from conftest import cli_json

    from linlab.data.shards import ShardedDataset

    whole = write_shards(tmp_path / "shards", rng)
    run = ("--targets", "y0,y1", "--depth", "2", "--width", "3", "--lr", "auto", "--epochs", "100")
    expected = cli_json("train", "--data", whole, *run)["summary"]
    monkeypatch.setattr(ShardedDataset, "_read", lambda self: pytest.fail("the rows were read"))
    got = cli_json("train", "--data", tmp_path / "shards", *run, "--cluster", client.scheduler.address)["summary"]
    assert (got["outcome"], got["epochs"]) == (expected["outcome"], expected["epochs"])
    assert got["final_loss"] == pytest.approx(expected["final_loss"], rel=1e-9)  # rounding_rtol: 8e-11 here
