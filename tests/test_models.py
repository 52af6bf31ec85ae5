"""Architectures, initial factors and the nn.Module form."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab import DeepLinear, TrainConfig, end_to_end, fit, init_factors, n_params, synthetic

widths_st = st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple)


@settings(max_examples=30, deadline=None)
@given(widths=widths_st, init=st.sampled_from(["normal", "scaled", "orthogonal", "balanced", "zeros", "torch"]))
def test_factors_have_the_architecture_shapes(widths, init):
    factors = init_factors(widths, init, scale=0.3, seed=1)
    assert [W.shape for W in factors] == list(zip(widths[:-1], widths[1:]))
    assert all(W.dtype == np.float64 and np.isfinite(W).all() for W in factors)


@settings(max_examples=30, deadline=None)
@given(widths=widths_st.filter(lambda w: len(w) > 2), seed=st.integers(0, 1000))
def test_balanced_init_is_balanced(widths, seed):
    factors = init_factors(widths, "balanced", scale=0.5, seed=seed)
    for Wj, Wn in zip(factors[:-1], factors[1:]):
        assert np.allclose(Wj.T @ Wj, Wn @ Wn.T, atol=1e-10)


def test_orthogonal_and_scaled_and_torch_inits():
    Q = init_factors((6, 4), "orthogonal", scale=2.0, seed=0)[0]
    assert np.allclose(Q.T @ Q, 4.0 * np.eye(4))
    W = init_factors((400, 300), "scaled", scale=0.1, seed=0)[0]
    assert abs(W.std() - 0.1) < 0.002
    U = init_factors((25, 40), "torch", seed=0)[0]
    assert np.abs(U).max() <= 1 / 5 and np.abs(U).max() > 0.19
    assert np.array_equal(init_factors((3, 2), seed=5)[0], init_factors((3, 2), seed=5)[0])


def test_zero_init_is_a_saddle_gd_never_leaves():
    data = synthetic(n=40, d=4, k=2, seed=0)
    r = fit(data, TrainConfig(widths=(4, 3, 2), init="zeros", lr=1e-3, epochs=300, stall_window=50))
    assert r.outcome == "stalled" and np.ptp(r.history) == 0.0
    assert all(not W.any() for W in r.factors)


def test_parameter_counts_match_the_seed():
    assert n_params((10, 2)) == 20 and n_params((10, 1, 2)) == 12 and n_params((10, 5, 2)) == 60
    assert n_params((10, 5, 2), bias=True) == 67


def test_deep_linear_matches_numpy_product(rng):
    factors = init_factors((4, 3, 5, 2), seed=2)
    net = DeepLinear((4, 3, 5, 2), factors=factors)
    X = rng.standard_normal((7, 4))
    assert np.allclose(net(torch.as_tensor(X)).detach().numpy(), X @ end_to_end(factors))
    assert np.allclose(net.end_to_end().detach().numpy(), end_to_end(factors))
    assert [tuple(W.shape) for W in net.factors()] == [(4, 3), (3, 5), (5, 2)]


def test_deep_linear_with_bias_and_state_dict_round_trip():
    net = DeepLinear((3, 2, 1), bias=True, seed=0)
    assert set(net.state_dict()) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    other = DeepLinear((3, 2, 1), bias=True, seed=1)
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.end_to_end(), net.end_to_end())


@pytest.mark.parametrize("kwargs, match", [
    ({"factors": [np.ones((2, 3))]}, r"factors have shapes \[\(2, 3\)\]; widths=\(3, 2\) need \[\(3, 2\)\]"),
    ({"factors": [np.ones((3, 2)), np.ones((2, 1))]}, "factors have shapes"),
    ({"biases": [np.ones(2)]}, "bias=False"),
    ({"bias": True, "biases": [np.ones(3)]}, r"biases have shapes \[\(3,\)\]"),
])
def test_deep_linear_names_parameters_of_the_wrong_shape(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepLinear((3, 2), **kwargs)


def test_bad_widths_and_init_are_named():
    with pytest.raises(ValueError, match="widths=.*at least two positive integers"):
        init_factors((3,))
    with pytest.raises(ValueError, match="widths='10,a,2' is not a list of integers"):
        TrainConfig(widths="10,a,2")
    with pytest.raises(ValueError, match="init='xavier' is not one of"):
        init_factors((3, 2), "xavier")
