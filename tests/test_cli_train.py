"""`linlab train` from the command line: sources, flags, outputs, checkpoints and bad input."""

import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_json, run_cli
from rich.console import Console

import linlab
from linlab import TrainConfig, fit, seed_dataset, seed_factors, synthetic
from linlab.cli import output as output_module
from linlab.cli.options import file_keys
from linlab.cli.output import RunDisplay
from linlab.cli.train import CONFIG_KEYS
from linlab.cli.train import train as train_command

SYNTH = "synthetic:n=60,d=4,k=2,noise=0.1,seed=3"


pytestmark = pytest.mark.usefixtures("in_tmp")


run = run_cli


run_json = functools.partial(cli_json, "train")


def test_seed_run_prints_the_seeds_own_log_lines():
    result = run("train", "--data", "seed", "--widths", "10,2", "--epochs", 30)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # the seed's step 2 prints exactly this at epoch 10
    assert lines[0] == "Epoch [10/30], Loss: 1149920.9260"
    assert lines[1] == "Epoch [20/30], Loss: 767938.5695"
    assert "max_epochs: reached the epoch limit 30" in result.stdout
    assert "final loss" in result.stdout and "widths (10, 2), 20 parameters" in result.stdout


def test_seed_run_agrees_with_the_library():
    record = run_json("--data", "seed", "--widths", "10,5,2", "--epochs", 15)
    direct = fit(seed_dataset(), TrainConfig(widths=(10, 5, 2), epochs=15), factors=seed_factors((10, 5, 2)))
    assert record["summary"]["final_loss"] == direct.final_loss
    assert record["config"]["extra"] == {"factors": "seed"}


def test_an_explicit_seed_draws_linlabs_own_initial_factors():
    record = run_json("--data", "seed", "--epochs", 5, "--seed", 7)
    direct = fit(seed_dataset(), TrainConfig(widths=(10, 2), epochs=5, seed=7))
    assert record["summary"]["final_loss"] == direct.final_loss
    assert record["config"]["extra"] == {}


def test_synthetic_with_depth_and_width_builds_the_widths_from_the_data():
    record = run_json("--data", SYNTH, "--depth", 3, "--width", 5, "--lr", "4e-5", "--epochs", 40)
    assert record["config"]["widths"] == [4, 5, 5, 2]
    direct = fit(synthetic(n=60, d=4, k=2, noise=0.1, seed=3),
                 TrainConfig(widths=(4, 5, 5, 2), lr=4e-5, epochs=40))
    assert record["summary"]["final_loss"] == pytest.approx(direct.final_loss, rel=1e-12)
    assert record["data"]["n_samples"] == 60 and record["summary"]["outcome"] == direct.outcome


def test_json_is_one_object_and_nothing_else():
    result = run("train", "--data", SYNTH, "--epochs", 25, "--json")
    assert result.exit_code == 0
    record = json.loads(result.stdout)  # fails on any extra line
    assert set(record) >= {"config", "summary", "diagnosis"}
    assert record["summary"]["epochs"] == 25 and "Epoch [" not in result.stdout


def test_every_config_field_has_a_flag():
    keys = set(file_keys(train_command).values())
    assert set(CONFIG_KEYS) <= keys


def test_flags_reach_the_config():
    record = run_json(
        "--data", SYNTH, "--widths", "4,3,2", "--bias", "--init", "orthogonal", "--init-scale", 0.5,
        "--engine", "numpy", "--optimizer", "sgd", "--lr", "2e-3", "--momentum", 0.5, "--nesterov",
        "--weight-decay", 0.01, "--betas", "0.8,0.9", "--eps", 1e-7, "--alpha", 0.9, "--schedule", "step",
        "--step-size", 5, "--gamma", 0.5, "--loss", "huber", "--reduction", "mean", "--p", 3, "--delta", 2,
        "--epochs", 12, "--batch-size", 16, "--no-shuffle", "--tol", 0, "--stall-window", 7,
        "--stall-rtol", 1e-9, "--diverge-factor", 1e3, "--dtype", "float32", "--device", "cpu",
        "--seed", 4, "--log-every", 3, "--extra", "group=a", "--extra", "rep=2",
    )
    expected = TrainConfig(
        widths=(4, 3, 2), bias=True, init="orthogonal", init_scale=0.5, lr=2e-3, momentum=0.5, nesterov=True,
        weight_decay=0.01, betas=(0.8, 0.9), eps=1e-7, alpha=0.9, schedule="step", step_size=5, gamma=0.5,
        loss="huber", reduction="mean", p=3.0, delta=2.0, epochs=12, batch_size=16, shuffle=False, tol=0.0,
        stall_window=7, stall_rtol=1e-9, diverge_factor=1e3, dtype="float32", seed=4, log_every=3,
        extra={"group": "a", "rep": 2},
    )
    assert record["config"] == {**expected.to_dict(), "data": record["data"]["name"]}
    direct = fit(synthetic(n=60, d=4, k=2, noise=0.1, seed=3), expected)
    assert record["summary"]["final_loss"] == pytest.approx(direct.final_loss, rel=1e-6)


def test_torch_engine_agrees_with_numpy_through_the_cli():
    numpy_run = run_json("--data", SYNTH, "--widths", "4,3,2", "--lr", "1e-3", "--epochs", 20)
    module_run = run_json("--data", SYNTH, "--widths", "4,3,2", "--lr", "1e-3", "--epochs", 20,
                          "--engine", "module")
    assert module_run["summary"]["final_loss"] == pytest.approx(numpy_run["summary"]["final_loss"], rel=1e-9)


def test_validation_fraction_records_a_validation_loss():
    record = run_json("--data", SYNTH, "--val-fraction", 0.25, "--split-seed", 5, "--lr", "1e-3", "--epochs", 20)
    data = synthetic(n=60, d=4, k=2, noise=0.1, seed=3)
    train_rows, val_rows = data.split(0.25, 5)
    direct = fit(train_rows, TrainConfig(widths=(4, 2), lr=1e-3, epochs=20), val=val_rows)
    assert record["summary"]["final_val_loss"] == pytest.approx(float(direct.val_history[-1]), rel=1e-12)
    assert record["summary"]["final_loss"] == pytest.approx(direct.final_loss, rel=1e-12)


def test_quiet_prints_only_the_outcome():
    result = run("train", "--data", SYNTH, "--epochs", 20, "--quiet")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["max_epochs: reached the epoch limit 20 at loss " +
                                          result.stdout.split("at loss ")[1].strip()]


def test_diverging_run_says_so_saves_the_last_finite_state_and_exits_1():
    result = run("train", "--data", "seed", "--widths", "10,1,2", "--lr", "0.01", "--epochs", 50,
                 "--checkpoint", "d.ckpt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "diverged: diverged at epoch" in result.stdout
    from linlab.checkpoint import load_checkpoint

    saved = load_checkpoint("d.ckpt")
    assert saved["epoch"] == 0 and all(np.isfinite(W.numpy()).all() for W in saved["state_dict"].values())


def test_zero_epochs_is_refused():
    result = run("train", "--data", "seed", "--epochs", 0)
    assert result.exit_code == 2 and "--epochs 0 trains nothing" in result.output


def test_a_resumed_run_saves_where_it_resumed_from():
    assert run("train", "--data", SYNTH, "--epochs", 5, "--checkpoint", "r.ckpt", "-q").exit_code == 0
    assert run("train", "--data", SYNTH, "--resume", "r.ckpt", "--epochs", 9, "-q").exit_code == 0
    from linlab.checkpoint import load_checkpoint

    assert load_checkpoint("r.ckpt")["epoch"] == 9


def test_training_and_validation_fit_in_target_units(in_tmp):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2)) * [10.0, 0.1]
    y = X @ [3.0, 40.0] + 1000.0 + rng.normal(size=80)  # noise std 1, in the target's units
    (in_tmp / "p.csv").write_text("a,b,y\n" + "".join(f"{a},{b},{t}\n" for (a, b), t in zip(X, y)))
    record = run_json("--data", "p.csv", "--targets", "y", "--standardize", "--bias", "--lr", "auto",
                      "--val-fraction", 0.25, "--epochs", 300)
    fit, val = record["metrics"]["train"], record["metrics"]["validation"]
    assert (fit["rows"], val["rows"]) == (60, 20)
    assert 0.6 < fit["rmse"] < 1.4 and 0.4 < val["rmse"] < 2.0  # the noise, not the standardized units
    assert fit["r2"] > 0.99 and val["r2"] > 0.99
    assert fit["mean_loss"] == pytest.approx(record["summary"]["final_loss"] / 60, rel=1e-3)


def test_one_rule_for_initial_factors_in_train_advise_library_and_sweeps():
    from linlab.sweeps import run_batch

    cli = run_json("--data", "seed", "--widths", "10,5,2", "--epochs", 100)["summary"]["epochs_to_tol"]
    library = linlab.train(seed_dataset(), widths=(10, 5, 2), epochs=100).epochs_to_tol
    batched = run_batch(seed_dataset(), [TrainConfig(widths=(10, 5, 2), epochs=100, engine="batched")])
    assert cli == library == batched[0].epochs_to_tol == 36
    advised = cli_json("advise", "--data", "seed", "--lr", "1e-5")["forecast"]["compare_epochs"]
    assert advised == linlab.train(seed_dataset(), widths=(10, 2), epochs=750).epochs_to_tol == 619


def test_checkpoint_then_resume_equals_one_uninterrupted_run():
    args = ("--data", SYNTH, "--widths", "4,3,2", "--optimizer", "adam", "--lr", "1e-2", "--tol", 0)
    whole = run_json(*args, "--epochs", 30)
    first = run_json(*args, "--epochs", 12, "--checkpoint", "run.ckpt", "--checkpoint-every", 5)
    assert first["checkpoint"] == "run.ckpt"
    resumed = run_json("--data", SYNTH, "--resume", "run.ckpt", "--epochs", 30)  # the rest from the file
    assert resumed["config"]["optimizer"] == "adam" and resumed["config"]["widths"] == [4, 3, 2]
    assert resumed["summary"]["final_loss"] == whole["summary"]["final_loss"]
    assert resumed["summary"]["epochs"] == 30


def test_resume_takes_the_data_file_its_columns_scaling_and_split_from_the_checkpoint(in_tmp):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * [100.0, 2.0, 30.0] + [1000.0, 3.0, 50.0]
    rows = np.hstack([X, X @ [[0.5], [10.0], [2.0]] + rng.normal(size=(50, 1))])
    (in_tmp / "h.csv").write_text("price,a,b,c\n" + "".join(f"{r[3]},{r[0]},{r[1]},{r[2]}\n" for r in rows))
    args = ("--data", "h.csv", "--targets", "price", "--standardize", "--val-fraction", 0.2, "--split-seed", 4)
    whole = run_json(*args, "--epochs", 40)
    assert run("train", *args, "--epochs", 15, "--checkpoint", "h.ckpt", "-q").exit_code == 0
    resumed = run_json("--resume", "h.ckpt", "--epochs", 40)  # as the README writes it: no data flags
    assert resumed["summary"]["final_loss"] == whole["summary"]["final_loss"]
    assert resumed["summary"]["final_val_loss"] == whole["summary"]["final_val_loss"]
    for flags, message in [(["--no-standardize"], "was trained with standardize True"),
                           (["--targets", "a"], "was trained with targets ['price']"),
                           (["--val-fraction", 0.3], "was trained with --val-fraction 0.2, not 0.3"),
                           (["--split-seed", 5], "was trained with --split-seed 4, not 5")]:
        result = run("train", "--resume", "h.ckpt", "--epochs", 40, *flags)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_checkpoint_every_writes_during_the_run(in_tmp):
    from linlab.checkpoint import load_checkpoint

    result = run("train", "--data", SYNTH, "--epochs", 7, "--checkpoint", "out/run.ckpt", "--checkpoint-every", 3,
                 "--quiet")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(in_tmp / "out" / "run.ckpt")
    assert ckpt["epoch"] == 7 and len(ckpt["history"]) == 8
    assert ckpt["data"]["name"].startswith("synthetic")


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and "linlab" in result.stdout and "0." in result.stdout


def test_importing_the_cli_and_asking_for_help_do_not_import_torch():
    code = (
        "import sys\n"
        "import linlab.cli\n"
        "assert 'torch' not in sys.modules, 'import linlab.cli'\n"
        "from linlab.cli import main\n"
        "for args in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
        "    main(args, standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'help'\n"
    )
    root = str(Path(linlab.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr


def test_progress_bar_appears_on_a_terminal_once_a_run_is_slow(monkeypatch):
    monkeypatch.setattr(output_module, "PROGRESS_AFTER_S", 0.0)
    seen = {}
    for terminal in (True, False):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=100)
        with RunDisplay(console, epochs=30) as show:
            fit(synthetic(n=30, d=3, k=1), TrainConfig(widths=(3, 1), lr=1e-3, epochs=30),
                log=show.line, callbacks=[show])
            seen[terminal] = show.progress is not None
        assert "Epoch [10/30], Loss:" in out.getvalue()
    assert seen == {True: True, False: False}


def test_no_progress_bar_for_a_quick_run():
    console = Console(file=io.StringIO(), force_terminal=True)
    with RunDisplay(console, epochs=5) as show:
        fit(synthetic(n=30, d=3, k=1), TrainConfig(widths=(3, 1), lr=1e-3, epochs=5), callbacks=[show])
        assert show.progress is None


BAD_INPUTS = [
    (["--widths", "10,a,2"], "not a list of integers"),
    (["--widths", "5,2"], "the data has 10 features and 2 targets"),
    (["--widths", "10,5,2", "--depth", "2"], "either --widths or --depth"),
    (["--depth", "3"], "needs --width"),
    (["--width", "4"], None),  # depth 2 by default: valid
    (["--optimizer", "sgdd"], "'sgdd' is not one of"),
    (["--lr", "0"], "lr=0.0 must be a finite number > 0"),
    (["--lr", "fast"], "--lr 'fast' is not a number"),
    (["--momentum", "1.5"], "momentum=1.5 must lie in [0, 1)"),
    (["--nesterov"], "nesterov=True needs momentum > 0"),
    (["--epochs", "-1"], "epochs=-1 must be an integer >= 0"),
    (["--seed", "-1"], "seed=-1 must be an integer >= 0"),
    (["--val-fraction", "0.2", "--split-seed", "-1"], "-1 is not in the range x>=0"),
    (["--data", "missing.csv"], "--data 'missing.csv': no such file"),
    (["--data", "synthetic:n=10,q=2"], "'q=2' is not KEY=VALUE with a KEY among"),
    (["--data", "synthetic:n=ten"], "n='ten' is not a valid int"),
    (["--features", "a,b"], "apply to data files only"),
    (["--val-fraction", "1.5"], "val_fraction=1.5 must lie strictly between 0 and 1"),
    (["--checkpoint-every", "5"], "needs --checkpoint PATH"),
    (["--extra", "novalue"], "is not KEY=VALUE"),
    (["--betas", "0.9"], "must be two numbers"),
    (["--resume", "nowhere.ckpt"], "does not exist"),
    (["--config", "nowhere.toml"], "--config 'nowhere.toml': no such file"),
    (["--engine", "numpy", "--device", "cuda"], "runs on the CPU only"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_message_and_exit_code_2(args, message):
    result = run("train", "--data", "seed", "--epochs", 3, *args)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_resume_with_other_settings_is_refused():
    assert run("train", "--data", SYNTH, "--epochs", 5, "--checkpoint", "a.ckpt", "-q").exit_code == 0
    for args, message in [
        (["--widths", "4,3,2"], "widths=[4, 2] there, [4, 3, 2] here"),
        (["--optimizer", "adam"], "optimizer='sgd' there, 'adam' here"),
        (["--data", "seed"], "was trained on data"),
        (["--epochs", "5"], "has already done 5 epochs"),
    ]:
        result = run("train", "--data", SYNTH, "--epochs", 10, "--resume", "a.ckpt", *args)
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_a_file_that_is_not_a_checkpoint_is_refused(in_tmp):
    (in_tmp / "notes.ckpt").write_text("hello")
    result = run("train", "--resume", "notes.ckpt")
    assert result.exit_code == 2 and "not a readable torch checkpoint" in result.stderr


def test_seed_torch_module_engine_follows_the_seeds_step_5():
    record = run_json("--data", "seed-torch", "--init", "torch", "--widths", "10,5,2", "--engine", "module",
                      "--epochs", 10, "--dtype", "float32")
    direct = fit(seed_dataset("torch"), TrainConfig(widths=(10, 5, 2), init="torch", engine="module",
                                                    epochs=10, dtype="float32"),
                 factors=seed_factors((10, 5, 2), "torch", "torch"))
    assert np.isclose(record["summary"]["final_loss"], direct.final_loss, rtol=1e-6)


def test_tensorboard_gets_the_loss_history(in_tmp):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run("train", "--data", SYNTH, "--lr", "1e-3", "--epochs", 8, "--tensorboard", "tb", "-q")
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(in_tmp / "tb"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("loss")]
    direct = fit(synthetic(n=60, d=4, k=2, noise=0.1, seed=3), TrainConfig(widths=(4, 2), lr=1e-3, epochs=8))
    assert [step for step, _ in logged] == list(range(9))
    np.testing.assert_allclose([v for _, v in logged], direct.history, rtol=1e-6)  # stored as float32


def test_output_paths_of_the_wrong_kind_are_refused_before_training(in_tmp):
    (in_tmp / "tb").write_text("a file")
    (in_tmp / "folder").mkdir()
    for args, message in [(["--tensorboard", "tb"], "--tensorboard 'tb' is a file"),
                          (["--checkpoint", "folder"], "--checkpoint 'folder' is a folder"),
                          (["--checkpoint", "tb/run.ckpt"], "lies under 'tb', which is a file")]:
        result = run("train", "--data", SYNTH, "--epochs", 2, *args)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_an_unwritable_output_folder_is_refused_before_training(in_tmp, monkeypatch):
    import tempfile

    (in_tmp / "locked").mkdir()
    make = tempfile.TemporaryFile

    def refuse_locked(*args, dir=None, **kwargs):  # a folder this user may not write in, even as root
        if dir is not None and Path(dir).resolve() == (in_tmp / "locked").resolve():
            raise PermissionError(13, "Permission denied")
        return make(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse_locked)
    for args in (["--checkpoint", "locked/run.ckpt"], ["--checkpoint", "locked/sub/run.ckpt"],
                 ["--tensorboard", "locked/tb"]):
        result = run("train", "--data", SYNTH, "--epochs", 2, "--log-every", 1, *args)
        assert result.exit_code == 2, result.output
        assert "'locked' refuses new files (Permission denied)" in result.stderr and "Epoch" not in result.output
    assert list((in_tmp / "locked").iterdir()) == []


def test_an_overflowing_start_is_a_clear_error():
    result = run("train", "--data", "seed", "--widths", "10,5,2", "--init", "scaled", "--init-scale", "1e200")
    assert result.exit_code == 2
    assert "the loss at the initial factors is inf" in result.output and "Traceback" not in result.output
