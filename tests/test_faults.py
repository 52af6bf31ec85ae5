"""Faults and hostile inputs: edited checkpoints, a full disk, grids and sizes past any machine,
and the messages that must name the real problem."""


import errno
import io
import itertools
import os
import re

import numpy as np
import pytest
import torch
from conftest import cli_json, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab import atomic
from linlab import checkpoint as ck
from linlab.checkpoint import CheckpointCallback, CheckpointError, load_checkpoint
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit
from linlab.sweeps.grid import Grid, count_runs, expand, iter_runs


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    cb = CheckpointCallback(path)
    data = synthetic(n=30, d=4, k=2, noise=0.1, seed=5)
    cb.final(fit(data, TrainConfig(widths=(4, 3, 2), optimizer="adam", lr=1e-2, epochs=4), callbacks=[cb]))
    return path


def _edited(path, tmp_path, weight=None, **change):
    obj = torch.load(path, weights_only=True)
    if weight is not None:
        obj["state_dict"] = {**obj["state_dict"], "layers.0.weight": weight(obj["state_dict"]["layers.0.weight"])}
    out = tmp_path / "edited.pt"
    torch.save({**obj, **change}, out)
    return out


def _poisoned(T):
    T = T.clone()
    T[0, 0] = float("inf")
    return T


@pytest.mark.parametrize("weight, change, message", [
    (None, dict(lr=-1.0), r"lr=-1.0 is not a finite number > 0"),
    (None, dict(lr=float("nan")), r"lr=nan is not a finite number > 0"),
    (None, dict(lr=0.0), r"lr=0.0 is not a finite number > 0"),
    (None, dict(epoch=2**70), r"epoch=1180591620717411303424 is past its history of 5 losses"),
    (_poisoned, {}, r"state_dict\['layers.0.weight'\] \(1 of 12 entries\) is not finite"),
    (lambda T: T.to(torch.complex128), {}, r"holds complex128 values, not real floats"),
    (lambda T: T.to(torch.int64), {}, r"holds int64 values, not real floats"),
])
def test_an_edited_checkpoint_is_refused_by_name(checkpoint_file, tmp_path, weight, change, message):
    edited = _edited(checkpoint_file, tmp_path, weight, **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(edited)
    load_checkpoint(checkpoint_file)  # the untouched one still loads


def test_non_finite_optimizer_buffers_are_refused(checkpoint_file, tmp_path):
    obj = torch.load(checkpoint_file, weights_only=True)
    key = next(k for k, v in obj["optimizer"].items() if isinstance(v, (list, dict, torch.Tensor)))
    obj["optimizer"][key] = ck._encode(_nan_like(ck._to_numpy(obj["optimizer"][key])), "x")
    torch.save(obj, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match=r"optimizer\[.*is not finite"):
        load_checkpoint(tmp_path / "edited.pt")


def _nan_like(value):
    if isinstance(value, np.ndarray):
        return np.full_like(value, np.nan) if value.dtype.kind == "f" else value
    if isinstance(value, dict):
        return {k: _nan_like(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_nan_like(v) for v in value)
    return value


def test_predict_never_prints_nan_rows_from_a_poisoned_model(checkpoint_file, in_tmp):
    edited = _edited(checkpoint_file, in_tmp, _poisoned)
    (in_tmp / "new.csv").write_text("a,b,c,d\n1,2,3,4\n")
    result = run_cli("predict", "--checkpoint", edited, "--input", "new.csv")
    assert result.exit_code == 2 and "nan" not in result.stdout.lower()
    assert "is not finite" in result.output


# ---------------------------------------------------------------- a full disk

SMALL_GRID = """
data = "synthetic:n=40,d=3,k=1,seed=1"
[fixed]
epochs = 20
[grid]
lr = [1e-3, 1e-2]
seed = [0, 1]
"""


def _fill_the_disk(monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)


@pytest.mark.parametrize("before, command, written", [
    ([], ["train", "--data", "seed", "--epochs", "30", "--checkpoint", "run.pt"], "run.pt"),
    (["sweep", "--config", "grid.toml", "--out", "runs.parquet"],
     ["sweep", "--config", "more.toml", "--out", "runs.parquet", "--resume"], "runs.parquet.parts/chunk-"),
    (["sweep", "--config", "grid.toml", "--out", "runs.csv"],
     ["sweep", "--config", "more.toml", "--out", "runs.csv", "--resume"], "runs.csv.parts/chunk-"),
    (["predict", "--checkpoint", "run.pt", "--input", "new.csv", "--output", "pred.csv"],
     ["predict", "--checkpoint", "run.pt", "--input", "new.csv", "--output", "pred.csv"], "pred.csv"),
])
def test_a_full_disk_is_a_clear_error_and_the_old_file_survives(in_tmp, monkeypatch, before, command, written):
    (in_tmp / "grid.toml").write_text(SMALL_GRID)
    (in_tmp / "more.toml").write_text(SMALL_GRID.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    (in_tmp / "new.csv").write_text(",".join(f"x{i}" for i in range(10)) + "\n" + ",".join("1" * 10) + "\n")
    assert run_cli("train", "--data", "seed", "--epochs", "20", "--checkpoint", "run.pt").exit_code == 0
    assert not before or run_cli(*before).exit_code == 0
    kept = {p.name: p.read_bytes() for p in in_tmp.iterdir()}
    _fill_the_disk(monkeypatch)
    result = run_cli(*command)
    assert result.exit_code == 2, result.output
    assert f"could not write {written}" in result.output and "its disk is full" in result.output
    assert "unchanged" in result.output or "was not created" in result.output
    assert "Traceback" not in result.output
    # nothing lost, nothing half-written left; a sweep's parts folder keeps only whole chunks, for --resume
    assert {p.name: p.read_bytes() for p in in_tmp.iterdir() if p.is_file()} == kept
    for part in in_tmp.glob("*.parts/*"):
        assert part.name.startswith("chunk-") and part.suffix == ".parquet", part.name


def test_a_full_disk_keeps_errno_for_callers(tmp_path, monkeypatch):
    _fill_the_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        atomic.atomic_write(tmp_path / "new.bin", lambda f: f.write(b"x"))
    assert caught.value.errno == errno.ENOSPC and "was not created" in str(caught.value)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- sizes past any machine


@pytest.mark.parametrize("change, message", [
    (dict(seed=2**64), r"seed=18446744073709551616 must be an integer >= 0 \(and <= 2\*\*63 - 1\)"),
    (dict(epochs=1e12), r"epochs=1,000,000,000,000 would keep loss histories of .* GiB"),
    (dict(epochs=float("inf")), r"epochs=inf must be an integer"),
    (dict(epochs=float("nan")), r"epochs=nan must be an integer"),
    (dict(batch_size=2**70), r"batch_size=.* must be a positive integer"),
    (dict(widths=(10, 100_000_000, 2)), r"1,200,000,000 parameters: .* past the 2 GiB a run may use"),
])
def test_configs_no_machine_could_run_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_the_largest_configs_still_allowed():
    TrainConfig(widths=(8192, 8192), epochs=2**27 - 1)
    TrainConfig(widths=(8192, 16384), dtype="float32", seed=2**63 - 1)


@pytest.mark.parametrize("command", [
    ["train", "--epochs", "1000000000000"],
    ["train", "--widths", "10,100000000,2"],
    ["train", "--seed", str(2**64)],
])
def test_train_refuses_sizes_past_the_budget(in_tmp, command):
    result = run_cli(*command)
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "Traceback" not in result.output


@pytest.mark.parametrize("axis", ["seed = [18446744073709551616]", "epochs = [1e12]", "epochs = [inf]"])
def test_a_grid_with_an_impossible_value_is_refused_before_any_run(in_tmp, axis):
    (in_tmp / "grid.toml").write_text(f'data = "synthetic:n=40,d=3,k=1,seed=1"\n[grid]\nlr = [1e-3]\n{axis}\n')
    result = run_cli("sweep", "--config", "grid.toml", "--out", "runs.parquet")
    assert result.exit_code == 2 and "(in the run with" in result.output, result.output
    assert not (in_tmp / "runs.parquet").exists()


# ---------------------------------------------------------------- grids past any machine

BIG_GRID = 'data = "synthetic:n=40,d=3,k=1,seed=1"\n[fixed]\nepochs = 5\n[grid]\nlr = [1e-3]\n'


def test_grid_axes_stay_lazy_and_the_runs_are_counted_without_expanding():
    grid = Grid(axes={"depth": [1, 2, 3], "width": {"range": [1, 10**12]}, "seed": {"range": [0, 10**12]}})
    assert count_runs(grid) == (1 + 2 * 10**12) * (10**12 + 1)
    runs = iter_runs(grid, synthetic(n=20, d=3, k=1, seed=0))
    assert [next(runs).config.seed for _ in range(3)] == [0, 1, 2]


@given(depths=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       widths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       seeds=st.lists(st.integers(0, 3), min_size=1, max_size=3))
@settings(max_examples=25, deadline=None)
def test_lazy_expansion_is_the_cartesian_product_in_order(depths, widths, seeds):
    grid = Grid(axes={"depth": depths, "width": widths, "seed": seeds})
    data = synthetic(n=10, d=3, k=1, seed=0)
    shapes = sorted({(3, *[w] * (L - 1), 1) for L in depths for w in widths}, key=lambda s: (len(s), s))
    product = list(dict.fromkeys((s, seed) for s, seed in itertools.product(shapes, seeds)))
    assert [(r.config.widths, r.config.seed) for r in expand(grid, data)] == product
    assert count_runs(grid) == len(shapes) * len(seeds) >= len(product)


@pytest.mark.parametrize("axis, message", [
    ("seed = {range = [0, 9999999]}", r"makes 10,000,000 runs, more than --max-runs 100,000"),
    ("lr = {log_range = [1e-6, 1e-3, 1e12]}", r"asks for 1,000,000,000,000 values; a log_range gives at most"),
    ("depth = {range = [1, 1000000000]}\nwidth = [2]", r"grid.depth=1000000000 is more than the 10,000 layers"),
])
def test_a_huge_grid_is_refused_at_once_with_its_size(in_tmp, axis, message):
    (in_tmp / "grid.toml").write_text(BIG_GRID.replace("lr = [1e-3]", axis))
    result = run_cli("sweep", "--config", "grid.toml", "--out", "runs.parquet")
    assert result.exit_code == 2 and re.search(message, result.output), result.output
    assert not (in_tmp / "runs.parquet").exists()


def test_max_runs_and_yes_confirm_a_large_grid(in_tmp):
    (in_tmp / "grid.toml").write_text(BIG_GRID.replace("lr = [1e-3]", "seed = {range = [0, 4]}"))
    refused = run_cli("sweep", "--config", "grid.toml", "--max-runs", "4")
    assert refused.exit_code == 2 and "confirm with --max-runs 5 (or --yes)" in refused.output
    assert run_cli("sweep", "--config", "grid.toml", "--max-runs", "5", "--json").exit_code == 0
    result = run_cli("sweep", "--config", "grid.toml", "--max-runs", "1", "--yes", "--out", "again.parquet")
    assert result.exit_code == 0 and "sweep: 5 runs in grid.toml" in result.output


def test_train_refuses_a_depth_no_run_could_have(in_tmp):
    result = run_cli("train", "--depth", "1000000000", "--width", "1")
    assert result.exit_code == 2 and "more than the 10,000 layers" in result.output


# ---------------------------------------------------------------- data larger than any machine


def test_an_npy_header_whose_size_overflows_is_refused(in_tmp):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32)})
    (in_tmp / "huge.npy").write_bytes(header.getvalue().ljust(128, b"\0"))
    result = run_cli("train", "--data", "huge.npy")
    assert result.exit_code == 2 and "huge.npy is truncated" in result.output
    assert "147573952589676413056 bytes" in result.output  # 2**64 * 8 + 128, not wrapped around


@pytest.mark.parametrize("spec, message", [
    ("synthetic:n=1e11", r"n=100,000,000,000, d=10, k=2 needs about .* GiB, more than this machine's"),
    ("synthetic:d=100000000", r"more than this machine's .*; use d <= "),
    ("synthetic:n=1.5", r"n='1.5' is not a valid integer"),
])
def test_synthetic_data_past_the_machines_memory_is_refused(in_tmp, spec, message):
    result = run_cli("train", "--data", spec)
    assert result.exit_code == 2 and re.search(message, result.output), result.output


def test_synthetic_sizes_may_be_written_as_floats(in_tmp):
    assert cli_json("train", "--data", "synthetic:n=2e2,d=3,k=1", "--epochs", "2")["config"]["widths"] == [3, 1]


# ---------------------------------------------------------------- messages that name the real problem

ROWS = "a,b,y\n1,2,3\n2,3,5\n4,1,5\n5,5,10\n"


def test_a_fifo_or_a_device_is_named_for_what_it_is(in_tmp):
    os.mkfifo(in_tmp / "pipe.csv")
    for path, what in (("pipe.csv", "a named pipe (FIFO)"), ("/dev/zero", "a character device")):
        result = run_cli("train", "--data", path)
        assert result.exit_code == 2 and f"{path} is {what}, not a regular file" in result.output
        assert "does not exist" not in result.output


@pytest.mark.parametrize("encoding, named", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_text_is_named(in_tmp, encoding, named):
    (in_tmp / "wide.csv").write_bytes(ROWS.encode(encoding))
    result = run_cli("train", "--data", "wide.csv")
    assert result.exit_code == 2 and f"wide.csv is {named} text" in result.output
    assert f"iconv -f {named} -t UTF-8" in result.output


def test_binary_data_is_not_taken_for_text(in_tmp):
    (in_tmp / "blob.csv").write_bytes(bytes(range(256)) * 4)
    result = run_cli("train", "--data", "blob.csv")
    assert result.exit_code == 2 and "binary data, not delimited text" in result.output


def test_parquet_integers_past_2_to_53_round_like_csv(in_tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = 2**53 + 1
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "y": [big, 2, 3, 4]}), in_tmp / "big.parquet")
    (in_tmp / "big.csv").write_text(f"a,y\n1,{big}\n2,2\n3,3\n4,4\n")
    from linlab.data.files import load_file

    assert load_file(in_tmp / "big.parquet").Y[0, 0] == load_file(in_tmp / "big.csv").Y[0, 0] == float(big)
    assert run_cli("train", "--data", "big.parquet", "--epochs", "2").exit_code == 0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # XᵀX overflows, as it should
def test_overflowing_data_is_not_called_all_zeros(in_tmp):
    (in_tmp / "huge.csv").write_text("a,b,y\n1e300,2e300,1\n3e300,1e300,2\n2e300,2e300,3\n")
    for command in (["advise"], ["train", "--lr", "auto"]):
        result = run_cli(*command, "--data", "huge.csv")
        assert result.exit_code == 2 and "XᵀX overflows float64" in result.output
        assert "all zeros" not in result.output


@pytest.mark.parametrize("fraction, blamed", [
    ("0.9", "puts all 3 in validation and leaves none for training; use val_fraction < 0.833"),
    ("0.1", "leaves no row for validation; use val_fraction >= 0.167"),
])
def test_val_fraction_names_the_part_left_empty(in_tmp, fraction, blamed):
    (in_tmp / "three.csv").write_text("a,b,y\n1,2,3\n2,3,5\n4,1,5\n")
    result = run_cli("train", "--data", "three.csv", "--val-fraction", fraction)
    assert result.exit_code == 2 and blamed in result.output


def test_predict_reads_the_csv_a_model_with_repeated_column_names_was_trained_on(in_tmp):
    (in_tmp / "dup.csv").write_text("a,a,y\n1,2,3\n2,3,5\n4,1,5\n5,5,10\n6,1,7\n")
    assert run_cli("train", "--data", "dup.csv", "--epochs", "3", "--checkpoint", "dup.pt").exit_code == 0
    result = run_cli("predict", "--checkpoint", "dup.pt", "--input", "dup.csv", "--output", "pred.npy")
    assert result.exit_code == 0, result.output
    factors, _ = ck.checkpoint_params("dup.pt")
    X = np.loadtxt(in_tmp / "dup.csv", delimiter=",", skiprows=1)[:, :2]
    np.testing.assert_allclose(np.load(in_tmp / "pred.npy"), X @ factors[0], rtol=1e-12)
    swapped = (in_tmp / "swap.csv")
    swapped.write_text("y,a,a\n3,1,2\n")  # the same names elsewhere: matched by name, repeats in order
    assert run_cli("predict", "--checkpoint", "dup.pt", "--input", "swap.csv", "--output", "p2.npy").exit_code == 0
    np.testing.assert_allclose(np.load(in_tmp / "p2.npy"), X[:1] @ factors[0], rtol=1e-12)


# ---------------------------------------------------------------- long epochs show their progress


def test_fit_reports_progress_within_an_epoch_and_the_run_is_unchanged():
    data = synthetic(n=1000, d=3, k=1, seed=2)
    config = TrainConfig(widths=(3, 1), lr=1e-3, epochs=3, batch_size=1, tol=0.0)
    seen = []
    reported = fit(data, config, on_batch=lambda done, total: seen.append((done, total)))
    assert np.array_equal(reported.history, fit(data, config).history)
    assert len(seen) == 3 * 200 and all(total == 1000 for _, total in seen)
    assert [done for done, _ in seen[:200]] == list(range(5, 1001, 5)) == [done for done, _ in seen[-200:]]


def test_the_cli_shows_a_bar_through_the_batches_of_a_long_epoch(monkeypatch):
    from rich.console import Console

    from linlab.cli import output

    monkeypatch.setattr(output, "PROGRESS_AFTER_S", -1.0)  # every epoch counts as long
    for terminal, shown in ((True, True), (False, False)):
        out = io.StringIO()
        with output.RunDisplay(Console(file=out, force_terminal=terminal, width=100), epochs=2) as show:
            for done in range(1, 11):
                show.batch(done, 10)
        assert ("batches" in out.getvalue() and "10/10" in out.getvalue()) is shown


# ---------------------------------------------------------------- concurrent writers


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "run.pt"
    live = tmp_path / f".run.pt.tmp-{os.getpid()}-abc"
    dead = tmp_path / ".run.pt.tmp-999999999-abc"  # past any pid_max
    old = tmp_path / ".run.pt.tmp-xyz"  # named no process
    for p in (live, dead, old):
        p.write_bytes(b"partial")
    assert sorted(p.name for p in atomic.clean_temp_files(target)) == sorted([dead.name, old.name])
    assert live.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_concurrent_checkpoint_writers_never_fail_or_corrupt(tmp_path):
    import warnings

    data = synthetic(n=40, d=3, k=1, seed=1)
    states = []
    fit(data, TrainConfig(widths=(3, 2, 1), lr=1e-2, epochs=3), callbacks=[lambda e: states.append(e.state())])
    path = tmp_path / "shared.pt"
    ck.save_checkpoint(path, states[0])
    children = []
    for state in states:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for _ in range(10):
                    ck.save_checkpoint(path, state)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    epochs = {load_checkpoint(path)["epoch"] for _ in range(20)}  # while they write: one whole file or another
    assert all(os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 0 for pid in children)  # no save failed
    assert load_checkpoint(path)["epoch"] in {1, 2, 3} and epochs <= {1, 2, 3}
    assert not list(tmp_path.glob(".shared.pt.tmp-*"))


def test_an_npy_header_cut_mid_dictionary_is_refused(in_tmp):
    text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,\n".ljust(118, b" ")[:117] + b"\n"
    (in_tmp / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(48))
    result = run_cli("train", "--data", "cut.npy")
    assert result.exit_code == 2 and "cut.npy is not a readable NPY file" in result.output, result.output


def test_a_confirmed_huge_sweep_makes_its_runs_a_chunk_at_a_time(monkeypatch):
    from linlab import sweeps
    from linlab.sweeps import grid as grid_module

    made = []
    real_config = grid_module._config
    monkeypatch.setattr(grid_module, "_config", lambda base, combo: made.append(1) or real_config(base, combo))

    class FirstChunkDone(Exception):
        pass

    def first_chunk(data, configs, **options):
        raise FirstChunkDone(len(configs))

    monkeypatch.setattr(sweeps, "run_batch", first_chunk)
    huge = {"data": "synthetic:n=40,d=3,k=1,seed=1", "fixed": {"epochs": 5, "engine": "batched"},
            "grid": {"seed": {"range": [0, 10**7 - 1]}, "lr": [1e-3, 1e-2]}}
    with pytest.raises(FirstChunkDone) as first:
        sweeps.sweep(huge, runs_per_batch=10)
    assert first.value.args == (10,)
    assert len(made) < 100  # the checks of each axis's values and one chunk, not 2 * 10**7 runs


@pytest.mark.parametrize("axes", [
    {"seed": [0, 1, 2]},
    {"engine": ["batched", "numpy"], "epochs": [3, 7], "seed": {"range": [0, 4]}},
    {"optimizer": ["sgd", {"name": "adam", "eps": 1e-7}], "epochs": [2, 4], "lr": [1e-3, 1e-2]},
    {"epochs": [2, 4], "optimizer": ["sgd", {"name": "adam", "eps": 1e-7}], "depth": [1, 2], "width": [2, 3]},
])
def test_grid_totals_count_what_expanding_makes(axes):
    from linlab.data import synthetic
    from linlab.sweeps.grid import Grid, expand, grid_totals

    grid = Grid(fixed={} if "epochs" in axes else {"epochs": 5}, axes=axes)
    runs = [r.config for r in expand(grid, synthetic(n=20, d=3, k=2, seed=0), "batched")]
    totals = grid_totals(grid, "batched")
    batched = [c for c in runs if c.engine == "batched"]
    assert (totals.runs, totals.batched_runs) == (len(runs), len(batched))
    assert totals.batched_epochs == sum(c.epochs for c in batched) and totals.batched_on_cpu
