"""Sweeps: grid expansion and ids, grid errors, tables that agree with single runs, resume,
atomic writes, FLOPs, and the best lr per architecture against the stability bound."""

import math
import os
import sys
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linlab.sweeps as sweep_module  # noqa: E402
from linlab import TrainConfig, fit
from linlab.data import synthetic
from linlab.models import n_params
from linlab.sweeps.grid import Grid, axis_values, expand, run_id
from linlab.sweeps.table import (
    SCHEMA,
    best_per_architecture,
    flops_per_epoch,
    histories_path,
    read_table,
    to_table,
    write_table,
)

SMALL = synthetic(n=60, d=4, k=2, seed=3)


def small_grid(**axes):
    axes = axes or {"widths": [[4, 2], [4, 3, 2]], "lr": [1e-3, 3e-3], "seed": [0, 1]}
    return Grid(fixed={"engine": "numpy", "epochs": 60, "tol": 1e-3}, axes=axes)


# ---------------------------------------------------------------- expansion and ids

@settings(max_examples=25, deadline=None)
@given(
    lrs=st.lists(st.floats(1e-6, 1e-2), min_size=1, max_size=4, unique=True),
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True),
    optimizers=st.lists(st.sampled_from(["sgd", "adam", "rmsprop"]), min_size=1, max_size=3, unique=True),
)
def test_expansion_is_the_cartesian_product_with_unique_stable_ids(lrs, seeds, optimizers):
    grid = Grid(fixed={"epochs": 5}, axes={"lr": lrs, "seed": seeds, "optimizer": optimizers})
    runs = expand(grid, SMALL)
    assert len(runs) == len(lrs) * len(seeds) * len(optimizers)
    assert len({r.run_id for r in runs}) == len(runs)
    assert [r.run_id for r in expand(grid, SMALL)] == [r.run_id for r in runs]
    assert {(r.config.lr, r.config.seed, r.config.optimizer) for r in runs} == {
        (lr, s, o) for lr in lrs for s in seeds for o in optimizers
    }
    assert all(r.run_id == run_id(r.config, SMALL) and len(r.run_id) == 16 for r in runs)


def test_ids_depend_on_every_field_and_on_the_data():
    base = TrainConfig(widths=(4, 2))
    ids = {run_id(base, SMALL)}
    for change in ({"seed": 1}, {"lr": 2e-5}, {"tol": 1e-5}, {"init": "scaled"}, {"engine": "autograd"}):
        ids.add(run_id(base.replace(**change), SMALL))
    ids.add(run_id(base, synthetic(n=60, d=4, k=2, seed=4)))  # same name, other provenance
    assert len(ids) == 7


def test_depth_times_width_keeps_depth_one_once():
    data = synthetic(n=20, d=6, k=3, seed=0)
    runs = expand(Grid(axes={"depth": [1, 2, 3], "width": [1, 5, 64]}), data)
    assert [r.config.widths for r in runs] == [
        (6, 3), (6, 1, 3), (6, 5, 3), (6, 64, 3), (6, 1, 1, 3), (6, 5, 5, 3), (6, 64, 64, 3)
    ]


def test_fixed_values_and_default_widths_come_from_the_data():
    (run,) = expand(Grid(fixed={"tol": 1e-6, "optimizer": "adam", "betas": [0.8, 0.9]}), SMALL)
    assert run.config.widths == (4, 2) and run.config.tol == 1e-6 and run.config.betas == (0.8, 0.9)


def test_optimizer_entries_carry_hyper_parameters():
    axes = {"optimizer": ["sgd", {"name": "sgd", "momentum": 0.9, "nesterov": True},
                          {"name": "adam", "betas": [0.5, 0.9]}]}
    configs = [r.config for r in expand(Grid(axes=axes), SMALL)]
    assert [(c.optimizer, c.momentum, c.nesterov, c.betas) for c in configs] == [
        ("sgd", 0.0, False, (0.9, 0.999)), ("sgd", 0.9, True, (0.9, 0.999)), ("adam", 0.0, False, (0.5, 0.9))
    ]


def test_axis_forms():
    lrs = axis_values("lr", {"log_range": [1e-6, 1e-3, 10]})
    assert len(lrs) == 10 and lrs[0] == 1e-6 and lrs[-1] == 1e-3
    np.testing.assert_allclose(np.diff(np.log10(lrs)), 1 / 3, rtol=1e-9)
    assert list(axis_values("width", {"range": [1, 64]})) == list(range(1, 65))
    assert axis_values("width", {"log_range": [1, 64, 7]}) == [1, 2, 4, 8, 16, 32, 64]
    assert axis_values("width", {"log_range": [1, 4, 10]}) == [1, 2, 3, 4]  # rounded, each once


def test_auto_multiples_scale_the_auto_lr():
    from linlab.models import init_factors
    from linlab.theory import auto_lr

    runs = expand(Grid(axes={"widths": [[4, 2], [4, 3, 2]], "lr": {"auto_multiples": [0.5, 2]}}), SMALL)
    assert len(runs) == 4
    for r in runs:
        c = r.config
        base = auto_lr(SMALL, c.replace(lr="auto"), init_factors(c.widths, c.init, c.init_scale, c.seed))
        assert c.lr == pytest.approx(c.extra["lr_auto_multiple"] * base, rel=1e-11)


def test_auto_multiples_without_theory_say_what_to_use(monkeypatch):
    monkeypatch.setitem(sys.modules, "linlab.theory", None)  # importing it now fails
    with pytest.raises(ValueError, match="auto_multiples.*log_range"):
        expand(Grid(axes={"lr": {"auto_multiples": [1]}}), SMALL)


def test_auto_multiples_use_linlab_theory(monkeypatch):
    calls = []

    def auto_lr(data, config, factors, biases=None):
        calls.append(config.widths)
        return 1e-3 * config.depth

    monkeypatch.setitem(sys.modules, "linlab.theory", types.SimpleNamespace(auto_lr=auto_lr))
    runs = expand(Grid(axes={"depth": [1, 2], "width": [3], "lr": {"auto_multiples": [0.5, 3]}}), SMALL)
    assert [r.config.lr for r in runs] == [5e-4, 3e-3, 1e-3, 6e-3] and len(calls) == 4


# ---------------------------------------------------------------- grid errors

@pytest.mark.parametrize("text, message", [
    ('data = "seed"\nlearning_rate = 1', "unknown key.*'learning_rate'.*valid keys are: data"),
    ("[fixed]\nepoch = 5", r"'epoch' in \[fixed\].*epochs"),
    ("[grid]\nlrs = [1e-3]", r"'lrs' in \[grid\].*depth, width, widths"),
    ("[fixed]\nlr = 1e-3\n[grid]\nlr = [1e-4]", r"lr appear\(s\) in both"),
    ("[grid]\ndepth = [1, 2]", "depth and grid.width go together"),
    ("[fixed]\nwidths = [10, 2]\n[grid]\ndepth = [2]\nwidth = [3]", "not both"),
    ("[grid]\nlr = 1e-3", r"not a list; write grid.lr = \[0.001\]"),
    ("[grid]\nlr = []", "empty"),
    ("[grid]\nlr = {log_range = [1e-3, 1e-6, 4]}", "low <= high"),
    ("[grid]\nlr = {linear = [1, 2]}", "unknown key.*'linear'.*range, log_range, auto_multiples"),
    ("[grid]\nwidth = {range = [5, 1]}\ndepth = [2]", "start <= stop"),
    ("[grid]\ninit_scale = {auto_multiples = [1]}", "lr only"),
    ("[grid]\nlr = {range = [1, 3]}", "integer axes"),
    ("[grid]\nwidths = [10, 5, 2]", r"a list of lists"),
    ('[grid]\noptimizer = [{name = "sgd", momentun = 0.9}]', "'momentun'.*momentum"),
    ("[grid]\nmomentum = [0.5, 2.0]", r"momentum=2.0 must lie in \[0, 1\).*in the run with momentum=2.0"),
    ("runs_per_batch = 0", "runs_per_batch=0 must be a positive integer"),
    ("[grid\nlr = [1]", "is not valid TOML"),
    ("[grid]\nextra = [{a = 1}, 5]", "extra = 5 is not a table"),
    ("[fixed]\nextra = 5", "extra = 5 is not a table"),
    ("[grid]\nwidths = [[4, 2], [4, 3, 3]]", r"widths=\(4, 3, 3\) run from 4 to 3, but .* has 4 features"),
])
def test_bad_grid_files_are_value_errors_that_name_the_problem(tmp_path, text, message):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        expand(Grid.from_toml(path), SMALL)


def test_a_grid_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_bytes(b"[fixed]\nepochs = 3 \xff\xfe\n")
    with pytest.raises(ValueError, match="sweep.toml is not UTF-8 text"):
        Grid.from_toml(path)


def test_a_relative_data_file_is_found_beside_the_grid_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rows.csv").write_text("a,b,y\n1,2,3\n4,5,6\n7,8,9\n")
    grid = Grid.from_toml(_write(tmp_path / "sub" / "sweep.toml", 'data = "rows.csv"\ntargets = "y"\n'))
    data = grid.load_data()
    assert (data.n_samples, data.n_features, data.n_targets) == (3, 2, 1)


def _write(path, text):
    path.write_text(text)
    return path


# ---------------------------------------------------------------- tables

@pytest.fixture(scope="module")
def small_table():
    return sweep_module.sweep(small_grid(), data=SMALL)


def test_rows_agree_with_single_runs(small_table):
    assert small_table.schema == SCHEMA and small_table.num_rows == 8
    runs = {r.run_id: r.config for r in expand(small_grid(), SMALL)}
    for row in small_table.to_pylist():
        config = runs[row["run_id"]]
        single = fit(SMALL, config)
        assert row["widths"] == ",".join(map(str, config.widths)) and row["seed"] == config.seed
        assert (row["lr"], row["epochs"], row["tol"], row["engine"]) == (config.lr, 60, 1e-3, "numpy")
        assert row["outcome"] == single.outcome and row["epochs_to_tol"] == single.epochs_to_tol
        assert row["final_loss"] == single.final_loss and row["best_loss"] == single.best_loss
        assert row["history"] == single.history.tolist() and row["epochs_done"] == single.epochs
        assert row["n_params"] == n_params(config.widths) and row["depth"] == config.depth
        assert row["flops_per_epoch"] == flops_per_epoch(config.widths, SMALL.n_samples)
        assert row["seconds"] > 0
        assert row["seconds_per_epoch"] == pytest.approx(row["seconds"] / row["epochs_done"])
        assert (row["seconds_to_tol"] is None) == (row["outcome"] != "converged")


def test_outcomes_differ_across_the_grid(small_table):
    # the grid is chosen so that the table is not uniform: both lrs and architectures matter
    assert len(set(small_table.column("final_loss").to_pylist())) == small_table.num_rows
    assert "converged" in small_table.column("outcome").to_pylist()


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_flops_formula_counts_the_matmuls_of_forward_and_backward(depth):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    widths = (7, 5, 4, 3)[: depth] + (2,)
    X = torch.randn(33, widths[0], dtype=torch.float64)
    Ws = [torch.randn(a, b, dtype=torch.float64, requires_grad=True) for a, b in zip(widths[:-1], widths[1:])]
    with FlopCounterMode(display=False) as counter:
        h = X
        for W in Ws:
            h = h @ W
        (h * h).sum().backward()
    assert flops_per_epoch(widths, 33) == counter.get_total_flops()


@pytest.mark.parametrize("csv", [False, True])
def test_tables_round_trip(tmp_path, small_table, csv):
    path = tmp_path / ("t.csv" if csv else "t.parquet")
    written = write_table(small_table, path, csv)
    assert written == ([histories_path(path), path] if csv else [path])
    back = read_table(path, csv)
    assert back.equals(small_table)


@pytest.mark.parametrize("csv", [False, True])
def test_an_interrupted_write_leaves_the_old_table_whole(tmp_path, small_table, monkeypatch, csv):
    import pyarrow.csv as pacsv

    path = tmp_path / ("t.csv" if csv else "t.parquet")
    old = small_table.slice(0, 3)
    write_table(old, path, csv)

    def torn(table, where, *args, **kwargs):  # a writer that dies halfway through
        where.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pacsv if csv else pq, "write_csv" if csv else "write_table", torn)
    with pytest.raises(KeyboardInterrupt):
        write_table(small_table, path, csv)
    monkeypatch.undo()
    assert read_table(path, csv).equals(old)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in ([histories_path(path)] if csv else []) + [path])


def test_a_foreign_table_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"run_id": ["a"], "loss": [1.0]}), path)
    with pytest.raises(ValueError, match="lacks the sweep column"):
        read_table(path)
    (tmp_path / "notes.csv").write_text("some text\n")
    for name, csv in [("other.parquet", True), ("notes.csv", False)]:
        with pytest.raises(ValueError, match=f"{name} is not a (CSV|Parquet) sweep table"):
            read_table(tmp_path / name, csv)


# ---------------------------------------------------------------- execution and resume

class Counter:
    def __init__(self):
        self.configs = []

    def __call__(self, data, config, **kwargs):
        self.configs.append(config)
        return fit(data, config, **kwargs)


def test_resume_runs_only_what_an_interrupted_sweep_left(tmp_path, monkeypatch, small_table):
    out, counter = tmp_path / "r.parquet", Counter()
    monkeypatch.setattr(sweep_module, "fit", counter)

    def stop_after_first_batch(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep_module.sweep(small_grid(), data=SMALL, out=out, runs_per_batch=3, progress=stop_after_first_batch)
    # the finished chunk is saved beside the table-to-be; the table is written at the end
    assert len(counter.configs) == 3 and not out.exists()
    assert sum(read_table(p).num_rows for p in sweep_module.parts_folder(out).iterdir()) == 3
    with pytest.raises(ValueError, match="exists; pass resume=True"):
        sweep_module.sweep(small_grid(), data=SMALL, out=out)
    seen = []
    table = sweep_module.sweep(small_grid(), data=SMALL, out=out, resume=True,
                               progress=lambda done, total: seen.append((done, total)))
    assert len(counter.configs) == 8 and seen == [(0, 5), (5, 5)]
    assert table.column("run_id").to_pylist() == small_table.column("run_id").to_pylist()
    assert table.column("final_loss").to_pylist() == small_table.column("final_loss").to_pylist()
    assert read_table(out).equals(table)
    again = sweep_module.sweep(small_grid(), data=SMALL, out=out, resume=True)
    assert len(counter.configs) == 8 and again.num_rows == 8


def test_resume_of_a_csv_table_with_a_larger_grid(tmp_path, monkeypatch):
    out, counter = tmp_path / "r.csv", Counter()
    monkeypatch.setattr(sweep_module, "fit", counter)
    sweep_module.sweep(small_grid(lr=[1e-3]), data=SMALL, out=out)
    table = sweep_module.sweep(small_grid(lr=[1e-3, 2e-3, 4e-3]), data=SMALL, out=out, resume=True)
    assert len(counter.configs) == 3 and table.num_rows == 3
    assert read_table(out, csv=True).column("history").to_pylist() == table.column("history").to_pylist()


def test_sweep_reads_toml_and_dicts(tmp_path):
    text = ('data = "synthetic:n=40,d=3,k=1,seed=2"\n'
            '[fixed]\nengine = "numpy"\nepochs = 20\n[grid]\nlr = [1e-3, 1e-2]\n')
    path = _write(tmp_path / "g.toml", text)
    from_file = sweep_module.sweep(path)
    import tomllib

    from_dict = sweep_module.sweep(tomllib.loads(text))
    assert from_file.column("run_id").to_pylist() == from_dict.column("run_id").to_pylist()
    assert from_file.column("data").to_pylist() == ["synthetic(n=40,d=3,k=1)"] * 2
    with pytest.raises(ValueError, match="grid_or_path=3"):
        sweep_module.sweep(3)


def test_the_batched_engine_agrees_with_single_runs():
    grid = small_grid()
    batched = sweep_module.sweep(Grid(fixed={**grid.fixed, "engine": "batched"}, axes=grid.axes), data=SMALL)
    single = sweep_module.sweep(grid, data=SMALL)
    assert batched.column("outcome").to_pylist() == single.column("outcome").to_pylist()
    np.testing.assert_allclose(batched.column("final_loss").to_numpy(), single.column("final_loss").to_numpy(),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- the fair comparison

def test_best_lr_on_seed_data_respects_the_stability_bound(seed_data):
    # depth 1, summed squares: the Hessian is 2XᵀX, so GD is stable iff lr < 1/λmax(XᵀX),
    # and it contracts fastest near lr = 1/(λmin + λmax); on the seed data λmin/λmax ≈ 0.6
    X = seed_data.X.astype(np.float64)
    eig = np.linalg.eigvalsh(X.T @ X)
    bound = 1 / eig[-1]
    multiples = [0.25, 0.6, 0.95, 1.05, 1.5]
    grid = Grid(fixed={"engine": "numpy", "epochs": 400, "tol": 1e-6},
                axes={"lr": [m * bound for m in multiples], "seed": [0, 1]})
    table = sweep_module.sweep(grid, data=seed_data)
    outcomes = dict(zip(table.column("lr").to_pylist(), table.column("outcome").to_pylist()))
    for m in multiples:
        assert (outcomes[m * bound] == "diverged") == (m > 1)
    (best,) = best_per_architecture(table).to_pylist()
    assert best["lr"] == 0.6 * bound and best["converged"] == best["runs"] == 2
    assert 1 / (eig[0] + eig[-1]) == pytest.approx(0.6 * bound, rel=0.1)
    # the epochs to tol follow the contraction rate ρ = max|1 − 2·lr·λ|: loss(t) <= ρ^{2t} loss(0)
    rho = max(abs(1 - 2 * 0.6 * bound * eig[0]), abs(1 - 2 * 0.6 * bound * eig[-1]))
    first_loss = max(h[0] for h in table.column("history").to_pylist())  # the larger start of the seeds
    predicted = math.log(1e-6 / first_loss) / math.log(rho**2)
    assert predicted / 2 < best["epochs_to_tol"] <= predicted + 2


def _row(template, **changes):
    return {**template, **changes}


def test_best_lr_ranking_rules(small_table):
    t = small_table.to_pylist()[0]
    rows = [
        # architecture A: lr 1 always converges in 30, lr 2 in 10 but one seed diverges,
        # lr 3 always converges in 20 -> lr 3
        _row(t, widths="4,2", lr=1.0, seed=0, outcome="converged", epochs_to_tol=30, seconds_to_tol=3.0),
        _row(t, widths="4,2", lr=1.0, seed=1, outcome="converged", epochs_to_tol=30, seconds_to_tol=3.0),
        _row(t, widths="4,2", lr=2.0, seed=0, outcome="converged", epochs_to_tol=10, seconds_to_tol=1.0),
        _row(t, widths="4,2", lr=2.0, seed=1, outcome="diverged", epochs_to_tol=None, final_loss=9.0),
        _row(t, widths="4,2", lr=3.0, seed=0, outcome="converged", epochs_to_tol=20, seconds_to_tol=2.0),
        _row(t, widths="4,2", lr=3.0, seed=1, outcome="converged", epochs_to_tol=22, seconds_to_tol=2.2),
        # architecture B: none converge; the diverged lr has the lowest final loss but loses
        _row(t, widths="4,3,2", lr=1.0, seed=0, outcome="stalled", epochs_to_tol=None, final_loss=5.0),
        _row(t, widths="4,3,2", lr=2.0, seed=0, outcome="max_epochs", epochs_to_tol=None, final_loss=4.0),
        _row(t, widths="4,3,2", lr=3.0, seed=0, outcome="diverged", epochs_to_tol=None, final_loss=1.0),
    ]
    best = best_per_architecture(to_table(rows)).to_pylist()
    assert [(b["widths"], b["lr"], b["epochs_to_tol"], b["seconds_to_tol"]) for b in best] == [
        ("4,2", 3.0, 21.0, 2.1), ("4,3,2", 2.0, None, None)
    ]
    assert [b["lrs_tried"] for b in best] == [3, 3]


def test_best_groups_by_every_varying_setting_but_lr_and_seed(small_table):
    t = small_table.to_pylist()[0]
    rows = [_row(t, optimizer=o, lr=lr, final_loss=lr) for o in ("sgd", "adam") for lr in (1.0, 2.0)]
    best = best_per_architecture(to_table(rows))
    assert best.column_names[:2] == ["widths", "optimizer"] and best.num_rows == 2
    assert best_per_architecture(to_table(rows), by=("widths",)).num_rows == 1
