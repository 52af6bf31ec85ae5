"""`linlab train --config run.toml`: every flag is a key, flags override the file, bad files say why."""

import json

import click
import pytest
from conftest import cli_json, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linlab.cli.options import file_keys, parse_betas, parse_extra, parse_lr, read_config_file, resolve_widths
from linlab.cli.train import train as train_command

SYNTH = "synthetic:n=40,d=3,k=2,noise=0.1,seed=2"


pytestmark = pytest.mark.usefixtures("in_tmp")


run = run_cli


def config_of(*args) -> dict:
    return cli_json("train", *args)["config"]


def test_file_sets_the_run(in_tmp):
    (in_tmp / "run.toml").write_text(
        f'data = "{SYNTH}"\n'
        "widths = [3, 4, 2]\n"
        'optimizer = "adam"\n'
        "lr = 0.01\n"
        "epochs = 15\n"
        "betas = [0.8, 0.95]\n"
        "log-every = 5\n"
        "nesterov = false\n"
        "bias = true\n"
        "[extra]\n"
        'group = "baseline"\n'
        "rep = 3\n"
    )
    config = config_of("--config", "run.toml")
    assert config["widths"] == [3, 4, 2] and config["optimizer"] == "adam" and config["lr"] == 0.01
    assert config["epochs"] == 15 and config["betas"] == [0.8, 0.95] and config["log_every"] == 5
    assert config["bias"] is True and config["extra"] == {"group": "baseline", "rep": 3}


def test_flags_override_the_file(in_tmp):
    (in_tmp / "run.toml").write_text(f'data = "{SYNTH}"\nepochs = 15\nlr = 0.01\nbias = true\n')
    config = config_of("--config", "run.toml", "--epochs", 4, "--no-bias")
    assert config["epochs"] == 4 and config["lr"] == 0.01 and config["bias"] is False


def test_depth_and_width_flags_replace_the_files_widths_and_back(in_tmp):
    (in_tmp / "a.toml").write_text(f'data = "{SYNTH}"\nwidths = "3,4,2"\nepochs = 3\n')
    assert config_of("--config", "a.toml", "--depth", 3, "--width", 2)["widths"] == [3, 2, 2, 2]
    (in_tmp / "b.toml").write_text(f'data = "{SYNTH}"\ndepth = 3\nwidth = 5\nepochs = 3\n')
    assert config_of("--config", "b.toml")["widths"] == [3, 5, 5, 2]
    assert config_of("--config", "b.toml", "--widths", "3,2")["widths"] == [3, 2]


def test_output_keys_work_too(in_tmp):
    (in_tmp / "q.toml").write_text(f'data = "{SYNTH}"\nepochs = 3\nquiet = true\n')
    result = run("train", "--config", "q.toml")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1
    (in_tmp / "j.toml").write_text(f'data = "{SYNTH}"\nepochs = 3\njson = true\n')
    assert json.loads(run("train", "--config", "j.toml").stdout)["config"]["epochs"] == 3


# a TOML value and the flag that says the same thing
EQUIVALENT = {
    "widths": ([3, 2, 2], ["--widths", "3,2,2"]),
    "bias": (True, ["--bias"]),
    "init": ("orthogonal", ["--init", "orthogonal"]),
    "init_scale": (0.5, ["--init-scale", "0.5"]),
    "optimizer": ("rmsprop", ["--optimizer", "rmsprop"]),
    "lr": ("auto", ["--lr", "auto"]),
    "momentum": (0.3, ["--momentum", "0.3"]),
    "weight_decay": (0.01, ["--weight-decay", "0.01"]),
    "schedule": ("exponential", ["--schedule", "exponential"]),
    "gamma": (0.9, ["--gamma", "0.9"]),
    "loss": ("huber", ["--loss", "huber"]),
    "reduction": ("mean", ["--reduction", "mean"]),
    "batch_size": (16, ["--batch-size", "16"]),
    "shuffle": (False, ["--no-shuffle"]),
    "tol": (0.0, ["--tol", "0"]),
    "dtype": ("float32", ["--dtype", "float32"]),
    "seed": (5, ["--seed", "5"]),
    "val_fraction": (0.25, ["--val-fraction", "0.25"]),
}


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from(sorted(EQUIVALENT)), min_size=1, max_size=6))
def test_a_file_and_the_same_flags_give_the_same_run(in_tmp, keys):
    lines = [f'data = "{SYNTH}"', "epochs = 6"] + [f"{k} = {_toml(EQUIVALENT[k][0])}" for k in sorted(keys)]
    (in_tmp / "h.toml").write_text("\n".join(lines) + "\n")
    flags = [a for k in sorted(keys) for a in EQUIVALENT[k][1]]
    file_run = run("train", "--config", "h.toml", "--json")
    flag_run = run("train", "--data", SYNTH, "--epochs", 6, *flags, "--json")
    assert (file_run.exit_code, file_run.stderr) == (flag_run.exit_code, flag_run.stderr)
    if flag_run.exit_code:  # e.g. lr="auto" with an adaptive optimizer: the same refusal either way
        assert flag_run.exit_code == 2 and "Error:" in flag_run.stderr
        return
    from_file, from_flags = json.loads(file_run.stdout), json.loads(flag_run.stdout)
    assert from_file["config"] == from_flags["config"]
    assert from_file["summary"]["final_loss"] == from_flags["summary"]["final_loss"]


def test_every_flag_is_a_key():
    keys = file_keys(train_command)
    flags = {opt[2:].replace("-", "_") for p in train_command.params for opt in p.opts if opt.startswith("--")}
    assert flags - {"config", "help"} == set(keys)


@pytest.mark.parametrize(("text", "message"), [
    ("epochz = 3\n", "unknown key 'epochz'; valid keys are: alpha, batch_size"),
    ("epochs = \n", "is not valid TOML"),
    ("[model\nwidths = 2\n", "is not valid TOML"),
    ('epochs = "ten"\n', "'ten' is not a valid integer"),
    ('optimizer = "sgdd"\n', "'sgdd' is not one of"),
    ("lr = 0\n", "lr=0.0 must be a finite number > 0"),
    ("widths = [[1], [2]]\n", "nested lists"),
    ("[seed]\nx = 1\n", "holds a table"),
    ("bias = 3\n", "bias = 3 is not valid: write true or false"),
    ("epochs = 1.5\n", "epochs = 1.5 is not valid: '1.5' is not a valid integer"),
    ("extra = 5\n", "extra = 5 is not a table"),
])
def test_bad_files_are_one_message_and_exit_code_2(in_tmp, text, message):
    (in_tmp / "bad.toml").write_text(text)
    result = run("train", "--config", "bad.toml")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output, result.stderr


def test_bad_toml_names_the_file_and_line(in_tmp):
    (in_tmp / "bad.toml").write_text('epochs = 3\noptimizer = adam\n')
    result = run("train", "--config", "bad.toml")
    assert result.exit_code == 2
    assert "--config 'bad.toml' is not valid TOML" in result.stderr and "line 2" in result.stderr


def test_a_whole_float_is_a_count(in_tmp):
    (in_tmp / "run.toml").write_text(f'data = "{SYNTH}"\nepochs = 1e1\n')
    assert config_of("--config", "run.toml")["epochs"] == 10


def test_a_folder_is_not_a_config_file(in_tmp):
    (in_tmp / "runs").mkdir()
    result = run("train", "--config", "runs")
    assert result.exit_code == 2 and "--config 'runs' is a folder" in result.stderr


def test_a_file_that_is_not_utf8(in_tmp):
    (in_tmp / "bad.toml").write_bytes(b"epochs = 3 \xff\xfe\n")
    result = run("train", "--config", "bad.toml")
    assert result.exit_code == 2 and "UTF-8" in result.stderr


def test_read_config_file_accepts_dashes_and_underscores(in_tmp):
    (in_tmp / "c.toml").write_text("log-every = 2\nstep_size = 7\n")
    keys = {"log_every": "log_every", "step_size": "step_size"}
    assert read_config_file(in_tmp / "c.toml", keys) == {"log_every": 2, "step_size": 7}


@given(d=st.integers(1, 50), k=st.integers(1, 50), depth=st.integers(1, 6), width=st.integers(1, 50))
def test_depth_and_width_give_depth_plus_one_widths(d, k, depth, width):
    widths = resolve_widths(None, depth, None if depth == 1 else width, d, k)
    assert len(widths) == depth + 1 and widths[0] == d and widths[-1] == k
    assert all(w == width for w in widths[1:-1])


@given(st.lists(st.integers(1, 30), min_size=2, max_size=6))
def test_explicit_widths_must_match_the_data_at_both_ends(widths):
    text = ",".join(map(str, widths))
    assert resolve_widths(text, None, None, widths[0], widths[-1]) == tuple(widths)
    with pytest.raises(ValueError, match="the data has"):
        resolve_widths(text, None, None, widths[0] + 1, widths[-1])


def test_value_parsers():
    assert parse_lr(" AUTO ") == "auto" and parse_lr(0.5) == 0.5
    assert parse_betas([0.9, 0.99]) == (0.9, 0.99)
    assert parse_extra(["a=[1, 2]", "b=x=y"]) == {"a": [1, 2], "b": "x=y"}
    with pytest.raises(ValueError, match="--betas"):
        parse_betas("0.9,x")


def test_config_keys_come_from_the_command_options():
    cmd = click.Command("c", params=[click.Option(["--a-b"]), click.Option(["--config", "config_file"])])
    assert file_keys(cmd) == {"a_b": "a_b"}
