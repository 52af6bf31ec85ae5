"""``linlab train`` on sharded data: trained from the statistics, the rows never read."""

import re

import numpy as np
import pytest
from conftest import cli_json, run_cli, same_history
from test_shards_and_store import write_shards

from linlab.checkpoint import load_checkpoint, resume_state
from linlab.data.shards import ShardedDataset

RUN = ("--targets", "y0,y1", "--depth", "3", "--width", "3", "--lr", "auto", "--seed", "1")


@pytest.fixture
def shards(tmp_path, rng):
    """8 Parquet shards and the same rows in one file."""
    whole = write_shards(tmp_path / "shards", rng)
    return tmp_path / "shards", whole


@pytest.fixture
def rows_fail(monkeypatch):
    monkeypatch.setattr(ShardedDataset, "_read", lambda self: pytest.fail("the rows were read"))


def _history(path) -> np.ndarray:
    return np.asarray(resume_state(load_checkpoint(path))["history"])


def _log(output: str) -> list[tuple[int, float]]:
    return [(int(e), float(v)) for e, v in re.findall(r"Epoch \[(\d+)/\d+\], Loss: (\S+)", output)]


def test_train_on_shards_runs_from_the_statistics_as_on_one_file(shards, tmp_path, rows_fail):
    folder, whole = shards
    runs = {}
    for name, data in (("shards", f"{folder}/*.parquet"), ("whole", whole)):
        ckpt = tmp_path / f"{name}.ckpt"
        runs[name] = cli_json("train", "--data", data, *RUN, "--epochs", "150", "--checkpoint", ckpt)
        runs[name]["history"] = _history(ckpt)
    a, b = runs["whole"], runs["shards"]
    assert b["config"]["engine"] == "batched" and a["config"]["engine"] == "numpy"
    rtol = same_history(a["history"], b["history"], rows=2000)
    assert b["summary"]["outcome"] == a["summary"]["outcome"] and b["summary"]["epochs"] == a["summary"]["epochs"]
    assert b["summary"]["lr"] == pytest.approx(a["summary"]["lr"], rel=1e-9)
    for key in ("mean_loss", "rmse", "r2"):
        assert b["metrics"]["train"][key] == pytest.approx(a["metrics"]["train"][key], rel=max(rtol, 1e-9))
    assert b["diagnosis"]["verdict"] == a["diagnosis"]["verdict"]
    for key in ("ls_loss", "condition_number", "condition_number_standardized", "stable_lr", "grad_norm"):
        assert b["diagnosis"]["numbers"][key] == pytest.approx(a["diagnosis"]["numbers"][key], rel=1e-6), key
    assert b["data"]["n_samples"] == 2000


def test_the_report_on_shards_prints_the_same_log_lines(shards, rows_fail):
    folder, whole = shards
    outputs = [run_cli("train", "--data", data, *RUN, "--epochs", "60") for data in (folder, whole)]
    assert [r.exit_code for r in outputs] == [0, 0], outputs[0].output
    ours, theirs = (_log(r.output) for r in outputs)
    assert [e for e, _ in ours] == [e for e, _ in theirs] == list(range(10, 61, 10))
    for (_, x), (_, y) in zip(ours, theirs):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-4)  # printed to 4 decimals
    assert "R²" in outputs[0].output and "batched engine" in outputs[0].output


def test_a_checkpointed_run_on_shards_resumes_where_it_stopped(shards, tmp_path, rows_fail):
    folder, _ = shards
    straight = cli_json("train", "--data", folder, *RUN, "--epochs", "40")
    ckpt = tmp_path / "run.ckpt"
    cli_json("train", "--data", folder, *RUN, "--epochs", "20", "--checkpoint", ckpt)
    resumed = cli_json("train", "--data", folder, "--resume", ckpt, "--epochs", "40")
    assert resumed["summary"]["epochs"] == 40 and resumed["config"]["engine"] == "batched"
    assert resumed["summary"]["final_loss"] == pytest.approx(straight["summary"]["final_loss"], rel=1e-12)
    assert len(_history(ckpt)) == 40  # the loss before each of the 40 updates


@pytest.mark.parametrize("args, says", [
    (["--batch-size", "100"], "leave out --batch-size"),
    (["--loss", "huber"], "use --loss squared"),
    (["--bias"], "leave out --bias"),
    (["--val-fraction", "0.2"], "leave out --val-fraction"),
    (["--engine", "numpy"], "leave out --engine"),
    (["--standardize"], "--standardize is not available for sharded data"),
])
def test_options_that_need_the_rows_are_refused_on_shards(shards, rows_fail, args, says):
    folder, _ = shards
    result = run_cli("train", "--data", folder, "--targets", "y0,y1", "--epochs", "5", *args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert "Traceback" not in result.output


def test_a_batch_of_every_row_is_full_batch_on_shards(shards, rows_fail):
    folder, _ = shards
    out = cli_json("train", "--data", folder, "--targets", "y0,y1", "--lr", "auto", "--epochs", "5",
                   "--batch-size", "2000")
    assert out["summary"]["epochs"] == 5


def test_the_diagnosis_on_shards_advises_only_what_shards_allow(shards, rows_fail):
    folder, _ = shards
    result = run_cli("train", "--data", folder, "--targets", "y0,y1", "--lr", "auto", "--epochs", "50")
    assert result.exit_code == 0, result.output
    assert "write the shards standardized" in result.output and "--standardize" not in result.output


def test_a_checkpoint_may_not_overwrite_a_shard(shards, rows_fail):
    folder, _ = shards
    shard = folder / "part-03.parquet"
    before = shard.read_bytes()
    result = run_cli("train", "--data", folder, "--targets", "y0,y1", "--epochs", "5", "--checkpoint", shard)
    assert result.exit_code == 2 and "would overwrite" in result.output, result.output
    assert shard.read_bytes() == before
