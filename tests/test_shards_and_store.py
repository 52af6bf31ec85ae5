"""Sharded --data without a cluster, the sweep's chunk files, its lock, and life without Dask."""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from linlab.data import file_stats
from linlab.data.shards import ShardedDataset, load_shards, tree_sum
from linlab.data.spec import load_data
from linlab.sweeps import Grid, parts_folder, read_table, sweep
from linlab.sweeps.store import FileStore

GRID = """
data = "{data}"
targets = "y0,y1"
[fixed]
engine = "batched"
epochs = 60
[grid]
lr = [1e-4, 1e-3]
seed = [0, 1, 2]
"""


def write_shards(folder, rng, n_shards=8, rows=250, row_group_size=100):
    """8 Parquet shards of one regression problem (row groups of 100), and the whole table."""
    X = rng.standard_normal((n_shards * rows, 4)) * [1.0, 10.0, 0.1, 3.0] + 5.0
    Y = X @ rng.standard_normal((4, 2)) + 0.1 * rng.standard_normal((len(X), 2))
    table = pa.table({**{f"x{j}": X[:, j] for j in range(4)}, "y0": Y[:, 0], "y1": Y[:, 1]})
    folder.mkdir(exist_ok=True)
    for i in range(n_shards):
        pq.write_table(table.slice(i * rows, rows), folder / f"part-{i:02d}.parquet",
                       row_group_size=row_group_size)
    pq.write_table(table, folder.parent / "whole.parquet")
    return folder.parent / "whole.parquet"


def assert_stats_close(a, b, rtol=1e-12):
    for name in ("A", "C", "sum_x", "sum_y"):
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=0, atol=rtol * np.abs(y).max())
    assert a.n == b.n and a.yy == pytest.approx(b.yy, rel=rtol)


def test_shards_as_a_glob_or_a_folder_give_the_single_pass_statistics(tmp_path, rng):
    whole = write_shards(tmp_path / "shards", rng)
    single = file_stats(whole, targets="y0,y1")
    for spec in (str(tmp_path / "shards" / "*.parquet"), str(tmp_path / "shards")):
        data = load_data(spec, targets="y0,y1")
        assert isinstance(data, ShardedDataset) and data.provenance["pieces"] == 8 * 3  # row groups
        assert (data.n_samples, data.n_features, data.n_targets) == (2000, 4, 2)
        assert_stats_close(data.stats, single)
    assert data._rows is None  # nothing read the rows


def test_the_rows_of_shards_are_read_only_on_demand_and_in_order(tmp_path, rng):
    whole = write_shards(tmp_path / "shards", rng, n_shards=3)
    data = load_shards(str(tmp_path / "shards"), targets=["y0", "y1"])
    expected = np.column_stack([c.to_numpy() for c in pq.read_table(whole).columns])
    np.testing.assert_array_equal(np.hstack([data.X, data.Y]), expected)


def test_npy_and_csv_shards(tmp_path):
    (tmp_path / "npy").mkdir()
    (tmp_path / "csv").mkdir()
    blocks = [np.arange(12.0).reshape(4, 3) + i for i in range(3)]
    for i, b in enumerate(blocks):
        np.save(tmp_path / "npy" / f"{i}.npy", b)
        np.savetxt(tmp_path / "csv" / f"{i}.csv", b, delimiter=",", header="a,b,y", comments="")
    rows = np.vstack(blocks)
    for folder in ("npy", "csv"):
        s = load_data(str(tmp_path / folder)).stats
        np.testing.assert_allclose(s.A, rows[:, :2].T @ rows[:, :2], rtol=1e-15)
        np.testing.assert_allclose(s.C, rows[:, :2].T @ rows[:, 2:], rtol=1e-15)


def test_bad_shards_are_refused_with_the_fix(tmp_path, rng):
    write_shards(tmp_path / "shards", rng, n_shards=2)
    with pytest.raises(FileNotFoundError, match="matches no data files"):
        load_data(str(tmp_path / "nothing" / "*.parquet"))
    pq.write_table(pa.table({"x0": [1.0], "other": [2.0]}), tmp_path / "shards" / "part-99.parquet")
    with pytest.raises(ValueError, match="every shard of one dataset needs the same columns"):
        load_data(str(tmp_path / "shards"), targets="y0,y1")
    with pytest.raises(ValueError, match="--standardize is not available for sharded data"):
        load_data(str(tmp_path / "shards" / "part-0*.parquet"), standardize=True)


def test_tree_sum_adds_in_a_fixed_tree():
    assert tree_sum(["a", "b", "c", "d", "e"]) == "abcde"
    with pytest.raises(ValueError, match="at least one row"):
        tree_sum([])


def test_a_sweep_on_shards_trains_from_the_statistics(tmp_path, rng, monkeypatch):
    write_shards(tmp_path / "shards", rng)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text(GRID.format(data="shards/*.parquet"))
    monkeypatch.setattr(ShardedDataset, "_read", lambda self: pytest.fail("the rows were read"))
    result = run_cli("sweep", "--config", "sweep.toml", "--out", "r.parquet")
    assert result.exit_code == 0, result.output
    assert read_table(tmp_path / "r.parquet").num_rows == 6
    assert not parts_folder(tmp_path / "r.parquet").exists()


def test_a_second_sweep_on_the_same_output_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = GRID.format(data="synthetic:n=40,d=4,k=2").replace('targets = "y0,y1"\n', "")
    (tmp_path / "sweep.toml").write_text(grid)
    with FileStore(tmp_path / "r.parquet"):  # another sweep writing r.parquet
        result = run_cli("sweep", "--config", "sweep.toml", "--out", "r.parquet")
    assert result.exit_code == 2 and "being written by another linlab sweep" in result.output
    assert not (tmp_path / "r.parquet").exists() and not list(tmp_path.glob(".r.parquet.lock"))
    result = run_cli("sweep", "--config", "sweep.toml", "--out", "r.parquet", "--json")
    assert result.exit_code == 0, result.output


def test_temporary_files_of_a_killed_sweep_are_removed(tmp_path):
    out = tmp_path / "r.parquet"
    grid = Grid(fixed={"engine": "batched", "epochs": 30}, axes={"lr": [1e-4, 1e-3]},
                data="synthetic:n=40,d=3,k=1")
    stale = [tmp_path / ".r.parquet.tmp-abc", parts_folder(out) / ".chunk-000000000000.parquet.tmp-x"]
    parts_folder(out).mkdir()
    for path in stale:
        path.write_bytes(b"half a file")
    table = sweep(grid, out=out, runs_per_batch=1)
    assert table.num_rows == 2 and not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_without_dask_nothing_imports_it_and_a_cluster_names_the_extra(tmp_path, rng, monkeypatch):
    for name in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # `import distributed` now raises ImportError
    write_shards(tmp_path / "shards", rng, n_shards=2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.toml").write_text(GRID.format(data="shards"))
    result = run_cli("sweep", "--config", "sweep.toml", "--out", "r.parquet")
    assert result.exit_code == 0, result.output
    for command in (["sweep", "--config", "sweep.toml", "--out", "s.parquet"], ["train", "--data", "shards"],
                    ["advise", "--data", "shards"]):
        result = run_cli(*command, "--cluster", "local:2")
        assert result.exit_code == 2 and 'pip install "linlab[dask]"' in result.output, result.output
    assert run_cli("train", "--cluster", "local:0").exit_code == 2
    assert "needs --cluster" in run_cli("advise", "--dashboard").output


def test_advise_on_shards_runs_from_the_statistics(tmp_path, rng, monkeypatch):
    write_shards(tmp_path / "shards", rng)
    monkeypatch.setattr(ShardedDataset, "_read", lambda self: pytest.fail("the rows were read"))
    result = run_cli("advise", "--data", tmp_path / "shards", "--targets", "y0,y1", "--widths", "4,3,2", "--json")
    assert result.exit_code == 0, result.output
