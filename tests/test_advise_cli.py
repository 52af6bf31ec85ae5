"""`linlab advise`: the seed's width-1 floor explained, an lr that beats the seed's 1e-5, bad input."""

import functools

import pytest
from conftest import cli_json, run_cli

import linlab
from linlab import TrainConfig, fit
from linlab.cli.advise import _table
from linlab.theory import advise

run = run_cli


run_json = functools.partial(cli_json, "advise")


def test_listed_in_help():
    result = run("--help")
    assert result.exit_code == 0 and "advise" in result.output


def test_seed_text_explains_the_width1_floor():
    result = run("advise", "--data", "seed", "--widths", "10,1,2", "--tol", "1e-4", "--lr", "1e-5")
    assert result.exit_code == 0, result.output
    out = result.output
    lines = dict(line.split(maxsplit=1) for line in out.splitlines()[1:] if line.startswith(("floor.", "fore")))
    assert lines["floor.floor_loss"] == "248785" and lines["forecast.epochs_to_tol"] == "never"
    assert "Narrowest width 1 < rank 2 of the fitted values" in out and "Hidden widths >= 2" in out
    assert "reaches tol=0.0001 in 6 epochs at lr 0.000495, against 619 at lr 1e-05" in out
    assert "┃" not in out  # plain text off a terminal


def test_seed_json_numbers_hold_in_training(seed_data):
    a = run_json("--data", "seed", "--widths", "10,1,2", "--lr", "1e-5")
    floor, bounds, fc = a["floor"], a["bounds"], a["forecast"]
    assert floor["floor_loss"] == pytest.approx(248784.91, abs=0.01) and floor["width_needed"] == 2
    assert floor["binding"] is True and fc["epochs_to_tol"] == "never"
    assert 1643.8 <= bounds["lam_min"] and bounds["lam_max"] < 2396.9
    assert fc["compare_epochs"] == 619 and fc["plain_epochs"] <= 619 // 50  # as train: the seed's own weights
    for lr, epochs in ((fc["plain_lr"], fc["plain_epochs"]), (1e-5, fc["compare_epochs"])):
        trained = linlab.train(seed_data, widths=(10, 2), lr=lr, epochs=1000)  # the same start as advise
        assert trained.epochs_to_tol == epochs
    stalled = fit(seed_data, TrainConfig(widths=(10, 1, 2), lr=a["lr"]["recommended"], epochs=1000))
    assert stalled.outcome == "stalled" and stalled.final_loss == pytest.approx(floor["floor_loss"], rel=1e-9)


def test_plain_regression_default_widths():
    data = "synthetic:n=200,d=5,k=3,noise=0.1,condition=30,seed=2"
    a = run_json("--data", data, "--reduction", "mean", "--tol", "0.02")
    assert a["widths"] == [5, 3] and a["floor"]["binding"] is False and a["floor"]["ls_loss"] < 0.02
    assert a["lr"]["recommended"] == a["bounds"]["optimal_lr"] == a["forecast"]["plain_lr"]
    assert a["forecast"]["epochs_to_tol"] == a["forecast"]["plain_epochs"] > 0
    noisy = run_json("--data", data, "--reduction", "mean")  # tol 1e-4 is below the noise: L* ≈ 0.01
    assert noisy["forecast"]["epochs_to_tol"] == "never"
    assert any("above tol" in note for note in noisy["notes"])


def test_a_data_file_is_read_as_train_reads_it(tmp_path, monkeypatch):
    import numpy as np

    from linlab.data import load_file

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    rows = np.hstack([rng.normal(size=(40, 1)) * 50 + 7, rng.normal(size=(40, 2)) * [1.0, 300.0]])
    (tmp_path / "h.csv").write_text("y,a,b\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    a = run_json("--data", "h.csv", "--targets", "y", "--standardize")
    expected = advise(load_file("h.csv", targets="y", standardize=True), (2, 1)).to_dict()
    assert a["data"]["n_features"] == 2 and a["data"]["n_targets"] == 1
    assert a["bounds"]["lam_max"] == pytest.approx(expected["bounds"]["lam_max"], rel=1e-12)
    assert a["bounds"]["lam_max"] < 1e3  # standardized: not the 300² scale of column b (~1e7)


@pytest.mark.parametrize("loss", ["huber", "lp"])
def test_other_losses(loss):
    a = run_json("--widths", "10,2", "--loss", loss)
    assert a["floor"] is None and a["forecast"]["epochs_to_tol"] is None
    assert a["lr"]["recommended"] > 0 and any("squared loss only" in note for note in a["notes"])


def test_terminal_gets_a_table(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "140")
    result = run("advise", "--widths", "10,5,2")
    assert result.exit_code == 0 and "┃" in result.output and "recommended" in result.output


def test_table_has_a_row_per_quantity(seed_data):
    advice = advise(seed_data, (10, 5, 2))
    assert _table(advice).row_count == len(advice.rows()) > 20


@pytest.mark.parametrize("args, message", [
    (("--widths", "10,1,3"), "need 10 features and 3 targets"),
    (("--widths", "10,x"), "widths"),
    (("--lr", "fast"), "--lr='fast' is not a number"),
    (("--lr", "-1"), "must be a number > 0"),
    (("--tol", "0"), "--tol 0.0 must be > 0"),
    (("--data", "no/such/file.csv"), "no such file"),
    (("--loss", "cubic"), "Invalid value for '--loss'"),
    (("--seed", "-1"), "-1 is not in the range x>=0"),
])
def test_bad_input_exits_2(args, message):
    result = run("advise", *args)
    assert result.exit_code == 2 and message in result.output
