"""Dataset validation, synthetic generators, sufficient statistics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linlab.data import Dataset, synthetic
from linlab.stats import Stats


@pytest.mark.parametrize(
    "X, Y, match",
    [
        (np.ones(3), np.ones((3, 1)), r"X .* has shape \(3,\); expected a 2-D array"),
        (np.ones((0, 2)), np.ones((0, 1)), "at least one row and one column"),
        (np.ones((3, 0)), np.ones((3, 1)), "at least one row and one column"),
        (np.array([["a", "b"]]), np.ones((1, 1)), "dtype <U1; expected a numeric array"),
        (np.array([[1.0, np.nan]]), np.ones((1, 1)), "non-finite .* nan at row 0, column 1"),
        (np.ones((2, 2)), np.array([[1.0], [np.inf]]), "Y .* inf at row 1, column 0"),
        (np.ones((2, 2)), np.ones((3, 1)), "X has 2 rows but Y has 3"),
        (np.ones((2, 2), dtype=complex), np.ones((2, 1)), "complex"),
        (np.array([[object()]]), np.ones((1, 1)), "dtype object"),
    ],
)
def test_dataset_rejects_bad_arrays(X, Y, match):
    with pytest.raises(ValueError, match=match):
        Dataset(X, Y, name="bad")


def test_dataset_checks_true_weights():
    with pytest.raises(ValueError, match=r"W_true has shape \(3, 1\) .* expected .* \(2, 1\)"):
        Dataset(np.ones((4, 2)), np.ones((4, 1)), W_true=np.ones((3, 1)))


@given(arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 5)),
              elements=st.floats(-1e6, 1e6)))
def test_any_finite_matrix_is_a_valid_dataset(X):
    ds = Dataset(X, X[:, :1])
    assert ds.n_samples == X.shape[0] and ds.n_features == X.shape[1] and ds.n_targets == 1


def test_split_is_a_seeded_partition():
    X = np.arange(40.0).reshape(20, 2)
    train, val = Dataset(X, X[:, :1]).split(0.25, seed=3)
    rows = np.concatenate([train.X[:, 0], val.X[:, 0]])
    assert sorted(rows) == sorted(X[:, 0]) and val.n_samples == 5
    again, _ = Dataset(X, X[:, :1]).split(0.25, seed=3)
    assert np.array_equal(again.X, train.X)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        Dataset(X, X[:, :1]).split(1.0)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 8), k=st.integers(1, 4), data=st.data())
def test_synthetic_has_the_requested_rank_and_shapes(d, k, data):
    rank = data.draw(st.integers(0, min(d, k)))
    ds = synthetic(n=50, d=d, k=k, rank=rank, seed=data.draw(st.integers(0, 99)))
    assert ds.X.shape == (50, d) and ds.Y.shape == (50, k)
    assert np.linalg.matrix_rank(ds.W_true) == rank
    assert np.allclose(ds.Y, ds.X @ ds.W_true)  # no noise by default


def test_synthetic_condition_number_and_noise():
    ds = synthetic(n=200_000, d=4, k=1, condition=100.0, seed=1)
    ev = np.linalg.eigvalsh(ds.X.T @ ds.X / ds.n_samples)
    assert 80 < ev.max() / ev.min() < 125
    noisy = synthetic(n=100_000, d=3, k=2, noise=0.5, seed=2)
    assert abs(np.std(noisy.Y - noisy.X @ noisy.W_true) - 0.5) < 0.01


def test_synthetic_is_reproducible_and_rejects_bad_settings():
    assert np.array_equal(synthetic(seed=4).X, synthetic(seed=4).X)
    for bad, match in [(dict(rank=3), "rank=3"), (dict(noise=-1.0), "noise=-1.0"),
                       (dict(condition=0.5), "condition=0.5"), (dict(n=0), "n=0"),
                       (dict(weights="cauchy"), "weights='cauchy'"), (dict(n=True), "n=True"),
                       (dict(d="5"), "d='5'"), (dict(k=float("nan")), "k=nan"), (dict(rank=1.5), "rank=1.5")]:
        with pytest.raises(ValueError, match=match):
            synthetic(**bad)
    whole = synthetic(n=20.0, d=3.0, k=2, rank=1.0, seed=4)  # integral floats, as a config file may give
    assert whole.X.shape == (20, 3) and whole.provenance["rank"] == 1
    assert np.array_equal(whole.X, synthetic(n=20, d=3, k=2, rank=1, seed=4).X)


@pytest.mark.parametrize("shapes", [((3, 2), (3,)), ((3,), (3, 1)), ((3, 2), (4, 1))])
def test_stats_refuse_rows_that_are_not_two_matching_tables(shapes):
    with pytest.raises(ValueError, match="expected \\(n, d\\) and \\(n, k\\) with the same n"):
        Stats.of(np.ones(shapes[0]), np.ones(shapes[1]))


def test_stats_merge_and_loss(rng):
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    whole = Stats.of(X, Y)
    parts = Stats.stream((X[i:i + 7], Y[i:i + 7]) for i in range(0, 30, 7))
    assert np.allclose(parts.A, whole.A) and np.allclose(parts.C, whole.C) and parts.n == 30
    W = rng.standard_normal((4, 2))
    assert np.isclose(whole.squared_loss(W), np.sum((X @ W - Y) ** 2))
    aug = whole.with_intercept()
    Xa = np.hstack([X, np.ones((30, 1))])
    assert np.allclose(aug.A, Xa.T @ Xa) and np.allclose(aug.C, Xa.T @ Y)
    with pytest.raises(ValueError, match="no chunks"):
        Stats.stream([])
