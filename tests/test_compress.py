"""Condensing a trained network: the smallest width within tol, balanced, and `linlab compress`."""

import json

import numpy as np
import pytest
from conftest import run_cli

from linlab.compress import balanced_factors, compress
from linlab.models import end_to_end
from linlab.theory import balancedness, rank_floor


def wide_network(rng, d=6, h=12, k=3, rank=2, n=80):
    X = rng.standard_normal((n, d))
    W1, W2 = rng.standard_normal((d, h)), rng.standard_normal((h, rank)) @ rng.standard_normal((rank, k))
    return X, [W1, W2]


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_an_exact_low_rank_network_condenses_to_its_rank(rng, rank):
    X, factors = wide_network(rng, rank=rank)
    Y = X @ end_to_end(factors)
    c = compress(X, Y, factors, tol=1e-8)
    assert c.widths == (6, rank, 3) and c.loss <= 1e-8
    np.testing.assert_allclose(X @ end_to_end(c.factors), Y, rtol=1e-9, atol=1e-9)
    assert balancedness(c.factors) < 1e-9


def test_truncation_costs_the_tail_of_the_fitted_values_singular_values(rng):
    # fitted exactly by W, each truncation of rank r costs the squared singular values beyond r
    X, factors = wide_network(rng, rank=3)
    Y = X @ end_to_end(factors)
    c = compress(X, Y, factors, width=1)
    sv2 = c.singular_values ** 2
    np.testing.assert_allclose(c.losses, [sv2[1:].sum(), sv2[2:].sum(), 0.0], rtol=1e-9, atol=1e-9)
    assert c.loss == pytest.approx(rank_floor((X, Y), 1).loss, rel=1e-9)  # Eckart-Young's floor


def test_a_tolerance_picks_the_smallest_width_within_it(rng):
    X, factors = wide_network(rng, rank=3)
    Y = X @ end_to_end(factors)
    losses = compress(X, Y, factors, width=3).losses
    assert compress(X, Y, factors, tol=losses[0] * 1.001).width == 1
    assert compress(X, Y, factors, tol=losses[1] * 1.001).width == 2
    assert compress(X, Y, factors, tol=losses[1] * 0.999).width == 3


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_factors_multiply_back(rng, depth):
    W = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 4))
    factors = balanced_factors(W, depth, 2)
    np.testing.assert_allclose(end_to_end(factors), W, atol=1e-12)
    assert [f.shape for f in factors] == [(5, 2)] + [(2, 2)] * (depth - 2) + [(2, 4)]
    assert balancedness(factors) < 1e-10


def test_biases_fold_into_the_last_layer(rng):
    X, factors = wide_network(rng, rank=1)
    biases = [rng.standard_normal(12), rng.standard_normal(3)]
    Y = (X @ factors[0] + biases[0]) @ factors[1] + biases[1]
    c = compress(X, Y, factors, biases, tol=1e-8)
    np.testing.assert_allclose(X @ end_to_end(c.factors) + c.biases[-1], Y, atol=1e-8)


@pytest.mark.parametrize("kwargs, message", [
    ({"tol": 1e-4, "width": 1}, "exactly one of tol"),
    ({}, "exactly one of tol"),
    ({"width": 4}, "min(d, k) = 3"),
    ({"tol": -1.0}, "tol=-1.0"),
])
def test_bad_requests_name_the_problem(rng, kwargs, message):
    X, factors = wide_network(rng)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compress(X, X @ end_to_end(factors), factors, **kwargs)


def test_depth_one_and_diverged_networks_are_refused(rng):
    X, factors = wide_network(rng)
    with pytest.raises(ValueError, match="depth-1"):
        compress(X, X[:, :3], [np.ones((6, 3))], tol=1e-4)
    with pytest.raises(ValueError, match="inf or nan"):
        compress(X, X[:, :3], [factors[0], np.full((12, 3), np.nan)], tol=1e-4)


# ---- the command ----


@pytest.fixture(scope="module")
def wide_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compress")
    result = run_cli("train", "--data", "seed", "--widths", "10,20,2", "--seed", "1", "--lr", "3e-6",
                     "--epochs", "300", "--checkpoint", folder / "wide.ckpt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["outcome"] == "converged"
    np.savetxt(folder / "x.csv", np.random.default_rng(0).standard_normal((7, 10)), delimiter=",")
    return folder


def test_compress_writes_a_checkpoint_that_predict_uses(wide_checkpoint):
    folder = wide_checkpoint
    out = json.loads(run_cli("compress", folder / "wide.ckpt", "--tol", "1e-4", "--out", folder / "small.ckpt",
                             "--json").stdout)
    assert out["widths"] == [10, 2, 2] and out["loss"] <= out["original_loss"] + 1e-4
    for name in ("wide", "small"):
        result = run_cli("predict", "--checkpoint", folder / f"{name}.ckpt", "--input", folder / "x.csv",
                         "--output", folder / f"{name}.csv")
        assert result.exit_code == 0, result.output
    wide, small = (np.loadtxt(folder / f"{n}.csv", delimiter=",", skiprows=1) for n in ("wide", "small"))
    np.testing.assert_allclose(small, wide, rtol=1e-6, atol=1e-6)


def test_compress_to_width_one_lands_on_the_rank_floor(wide_checkpoint, seed_data):
    folder = wide_checkpoint
    result = run_cli("compress", folder / "wide.ckpt", "--width", "1", "--out", folder / "one.ckpt")
    assert result.exit_code == 0, result.output
    assert "(10, 20, 2) -> (10, 1, 2)" in result.output
    from linlab.checkpoint import checkpoint_params, load_checkpoint

    factors, _ = checkpoint_params(load_checkpoint(folder / "one.ckpt"))
    loss = float(np.square(seed_data.X @ end_to_end(factors) - seed_data.Y).sum())
    assert loss == pytest.approx(rank_floor(seed_data, 1).loss, rel=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--tol", "1e-4", "--width", "2"], "not both or neither"),
    (["--width", "3"], "min(d, k) = 2"),
    (["--tol", "1e-4", "--data", "synthetic:n=50,d=4,k=2"], "4 features"),
])
def test_compress_refuses_bad_requests_with_exit_code_2(wide_checkpoint, args, message):
    folder = wide_checkpoint
    result = run_cli("compress", folder / "wide.ckpt", *args, "--out", folder / "bad.ckpt")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (folder / "bad.ckpt").exists()


def test_compress_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    result = run_cli("compress", tmp_path / "none.ckpt", "--tol", "1e-4", "--out", tmp_path / "s.ckpt")
    assert result.exit_code == 2 and "Traceback" not in result.output
    (tmp_path / "foreign.ckpt").write_text("not a checkpoint")
    result = run_cli("compress", tmp_path / "foreign.ckpt", "--tol", "1e-4", "--out", tmp_path / "s.ckpt")
    assert result.exit_code == 2 and "Traceback" not in result.output
