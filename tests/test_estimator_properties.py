"""Hypothesis properties of GDRegressor: errors, shapes, invariances, round trips."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from linlab.sklearn import GDRegressor  # noqa: E402

QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, elements):
    n, d = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    X = draw(hnp.arrays(np.float64, (n, d), elements=elements))
    y_shape = draw(st.sampled_from([(n,), (n, 1), (n, 2)]))
    return X, draw(hnp.arrays(np.float64, y_shape, elements=elements))


@st.composite
def well_posed(draw):
    """Moderate finite data: every fit on it must succeed."""
    X, y = draw(problems(st.floats(-100, 100, allow_subnormal=False)))
    assume(X.shape[0] >= 2)
    return X, y


def fitted(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected here
        return GDRegressor(**params).fit(X, y)


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


@QUICK
@given(problems(ANY_FLOAT), st.sampled_from([1, 2]), st.booleans(), st.booleans(), st.data())
def test_any_input_fits_or_raises_a_value_error(problem, depth, fit_intercept, partial, data):
    X, y = problem
    weights = data.draw(st.none() | hnp.arrays(np.float64, len(X), elements=ANY_FLOAT))
    est = GDRegressor(depth=depth, fit_intercept=fit_intercept, max_iter=30, lr=1e-3 if partial else "auto",
                      random_state=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (est.partial_fit if partial else est.fit)(X, y, sample_weight=weights)
    except ValueError as err:  # the documented error (DivergenceError is one)
        assert str(err)
        return
    assert np.isfinite(X).all() and np.isfinite(y).all()
    assert weights is None or (np.isfinite(weights).all() and (weights >= 0).all() and 0 < weights.sum() < np.inf)
    assert est.predict(X).shape == y.shape


@QUICK
@given(well_posed(), st.sampled_from([1, 2]))
def test_predictions_have_the_shape_of_y_and_dtype_float64(problem, depth):
    X, y = problem
    est = fitted(X, y, depth=depth, max_iter=30, random_state=0)
    pred = est.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert est.coef_.shape == ((X.shape[1],) if y.ndim == 1 else (y.shape[1], X.shape[1]))
    assert np.isfinite(pred).all()


@QUICK
@given(well_posed(), st.randoms(use_true_random=False))
def test_row_order_does_not_change_a_full_batch_fit(problem, random):
    X, y = problem
    order = list(range(X.shape[0]))
    random.shuffle(order)
    # tol=0 and 50 epochs, below the stall window: both runs take the same steps (unless
    # one of them meets the loss 0 exactly, where the other is within rounding of it)
    a = fitted(X, y, max_iter=50, tol=0.0, random_state=0)
    b = fitted(X[order], y[order], max_iter=50, tol=0.0, random_state=0)
    # the same iteration in another summation order: rounding, relative to the scale of
    # the coefficients and of y/x (‖coef‖ can be ~0 while each step moves ~‖y‖/‖x‖)
    scale = np.abs(a.coef_).max() + np.abs(y).max() / max(np.abs(X).max(), 1e-300)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=0, atol=1e-9 * scale)


@QUICK
@given(well_posed(), st.floats(1e-3, 1e3))
def test_scaling_x_by_c_scales_depth1_coefficients_by_one_over_c(problem, c):
    X, y = problem
    assume(np.ptp(X, axis=0).max() > 1e-3)  # something to fit
    a = fitted(X, y, max_iter=50, tol=0.0)
    b = fitted(c * X, y, max_iter=50, tol=0.0)
    # from zeros with lr="auto" (∝ 1/c²) every iterate is exactly coef/c: only rounding differs
    scale = np.abs(a.coef_).max() + np.abs(y).max() / np.abs(X).max()
    np.testing.assert_allclose(c * b.coef_, a.coef_, rtol=0, atol=1e-8 * scale)


@settings(QUICK, max_examples=10)  # each example writes a checkpoint file (fsync'd)
@given(problem=well_posed(), depth=st.sampled_from([1, 2]))
def test_pickle_and_checkpoint_round_trips_predict_identically(problem, depth, tmp_path_factory):
    X, y = problem
    est = fitted(X, y, depth=depth, max_iter=30, random_state=0)
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(X), est.predict(X))
    path = est.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")
    loaded = GDRegressor.load_checkpoint(path)
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert loaded.get_params() == est.get_params()
