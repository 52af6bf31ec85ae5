"""``linlab sweep`` in a temporary folder: Parquet, CSV, JSON, resume, bad grid files."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from linlab.cli import main
from linlab.sweeps.grid import Grid, expand
from linlab.sweeps.table import read_table

GRID = """
data = "synthetic:n=50,d=3,k=2,seed=1"
[fixed]
engine = "numpy"
epochs = 80
tol = 1e-3
[grid]
depth = [1, 2]
width = [2, 4]
lr = {log_range = [1e-3, 1e-2, 3]}
seed = [0, 1]
"""
N_RUNS = 3 * 3 * 2  # widths (3,2), (3,2,2), (3,4,2) x 3 lrs x 2 seeds
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep.toml"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sweep.toml").write_text(GRID)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, ["sweep", "--config", "sweep.toml", *args])


def test_sweep_writes_parquet_and_prints_the_best_lr_per_architecture(folder):
    result = invoke()
    assert result.exit_code == 0, result.output
    table = read_table(folder / "results.parquet")
    assert table.num_rows == N_RUNS
    assert set(table.column("widths").to_pylist()) == {"3,2", "3,2,2", "3,4,2"}
    assert "best lr" in result.stdout and "3,4,2" in result.stdout
    assert f"{N_RUNS} runs ({N_RUNS} run now, 0 from before)" in result.stdout


def test_csv_keeps_histories_beside_the_table(folder):
    result = invoke("--csv")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["results.csv", "results.histories.csv", "sweep.toml"]
    header = (folder / "results.csv").read_text().splitlines()[0]
    assert "history" not in header and '"flops_per_epoch"' in header
    table = read_table(folder / "results.csv", csv=True)
    lengths = [len(h) for h in table.column("history").to_pylist()]
    assert lengths == [e + 1 for e in table.column("epochs_done").to_pylist()]


def test_json_and_resume(folder):
    first = invoke("--json", "--out", "sub/r.parquet")
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert (record["runs"], record["ran"], record["skipped"]) == (N_RUNS, N_RUNS, 0)
    assert record["files"] == ["sub/r.parquet"] and sum(record["outcomes"].values()) == N_RUNS
    assert [b["widths"] for b in record["best"]] == ["3,2", "3,2,2", "3,4,2"]
    assert all(b["lrs_tried"] == 3 and b["runs"] == 2 for b in record["best"])

    again = invoke("--json", "--out", "sub/r.parquet")
    assert again.exit_code == 2 and "--resume" in again.output and "Traceback" not in again.output

    Path("sweep.toml").write_text(GRID.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    resumed = invoke("--json", "--out", "sub/r.parquet", "--resume")
    record = json.loads(resumed.stdout)
    assert (record["runs"], record["ran"], record["skipped"]) == (N_RUNS * 3 // 2, N_RUNS // 2, N_RUNS)


@pytest.mark.parametrize("text, message", [
    (GRID + "momentum = [0.5]\nlearning_rate = [1]\n", "unknown key(s) 'learning_rate' in [grid]"),
    (GRID.replace('engine = "numpy"', 'engine = "numpy"\noptimiser = "adam"'), "'optimiser' in [fixed]"),
    (GRID.replace("depth = [1, 2]\n", ""), "grid.depth and grid.width go together"),
    (GRID.replace("1e-2, 3]", "1e-2]"), "must be [low, high, count]"),
    (GRID.replace("epochs = 80", "epochs = -1"), "epochs=-1 must be an integer >= 0"),
    (GRID.replace('"synthetic:', '"synthetik:'), "no such file"),
])
def test_bad_grid_files_exit_2_with_the_reason(folder, text, message):
    Path("sweep.toml").write_text(text)
    result = invoke()
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not Path("results.parquet").exists()


def test_bad_outputs_are_refused_before_any_run(folder):
    Path("notes.txt").write_text("keep me")
    for args, message in [(["--out", "notes.txt/r.parquet"], "lies under 'notes.txt', which is a file"),
                          (["--out", "sweep.toml", "--resume"], "is the --config file"),
                          (["--out", "notes.txt", "--resume"], "notes.txt is not a Parquet sweep table")]:
        result = invoke(*args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output and "━" not in result.output  # no progress bar: no run
    assert Path("notes.txt").read_text() == "keep me" and Path("sweep.toml").read_text() == GRID


def test_compile_switch(folder, monkeypatch):
    from linlab import sweeps

    seen = []
    original = sweeps.run_batch
    monkeypatch.setattr(sweeps, "run_batch", lambda *a, **kw: seen.append(kw["compile"]) or original(*a, **kw))
    assert invoke("--compile", "off", "--out", "off.parquet").exit_code == 0
    assert seen and set(seen) == {False}
    bad = invoke("--compile", "sometimes")
    assert bad.exit_code == 2 and "'sometimes' is not one of 'auto', 'on', 'off'" in bad.output


def test_a_missing_grid_file_is_a_usage_error(folder):
    result = CliRunner().invoke(main, ["sweep", "--config", "nowhere.toml"])
    assert result.exit_code == 2 and "nowhere.toml" in result.output


def test_the_example_asks_the_seeds_width_question(seed_data):
    runs = expand(Grid.from_toml(EXAMPLE), seed_data)
    assert len(runs) == 64 * 5 * 3
    assert sorted({r.config.widths for r in runs}) == sorted((10, h, 2) for h in range(1, 65))
    assert {r.config.lr for r in runs} == {1e-6, 3.16227766017e-06, 1e-5, 3.16227766017e-05, 1e-4}
