"""GDRegressor's behaviour: against closed forms, in pipelines, and when training goes wrong."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import linlab  # noqa: E402
from linlab.sklearn import DivergenceError, GDRegressor, RankFloorWarning  # noqa: E402


@pytest.fixture
def problem(rng):
    X = rng.normal(size=(120, 4)) * [1.0, 2.0, 0.5, 3.0] + [1.0, -2.0, 0.0, 5.0]
    W = rng.normal(size=(4, 3))
    Y = X @ W + [1.0, -1.0, 2.0] + 0.1 * rng.normal(size=(120, 3))
    return X, Y


def ls_fit(X, Y, sample_weight=None):
    return LinearRegression().fit(X, Y, sample_weight=sample_weight)


def test_importable_from_linlab_without_sklearn_at_import():
    import subprocess
    import sys

    assert linlab.GDRegressor is GDRegressor
    code = ("import sys, linlab; assert 'sklearn' not in sys.modules; "
            "linlab.GDRegressor; assert 'sklearn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("multi", [False, True])
def test_reaches_the_least_squares_fit_in_sklearns_layout(problem, depth, multi):
    X, Y = problem
    y = Y if multi else Y[:, 0]
    est = GDRegressor(depth=depth, tol=1e-10, max_iter=20000, random_state=0).fit(X, y)
    ref = ls_fit(X, y)
    assert est.coef_.shape == ref.coef_.shape and np.shape(est.intercept_) == np.shape(ref.intercept_)
    # loss within 1e-10 (relative) of L*: coefficients within ~sqrt of it in the Hessian's norm
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, atol=1e-3)
    assert est.predict(X).shape == y.shape
    assert est.diagnosis_.verdict == "converged_optimum"
    assert len(est.factors_) == depth and est.loss_curve_.shape == (est.n_iter_ + 1,)


def test_sample_weight_is_weighted_least_squares(problem, rng):
    X, Y = problem
    w = rng.integers(0, 4, size=len(X)).astype(float)
    est = GDRegressor(tol=1e-12, max_iter=20000).fit(X, Y, sample_weight=w)
    np.testing.assert_allclose(est.coef_, ls_fit(X, Y, w).coef_, atol=1e-5)
    repeated = GDRegressor(tol=1e-12, max_iter=20000).fit(np.repeat(X, w.astype(int), 0),
                                                         np.repeat(Y, w.astype(int), 0))
    np.testing.assert_allclose(est.coef_, repeated.coef_, rtol=1e-9, atol=1e-9)


def test_huber_loss_learns_the_intercept(problem):
    X, Y = problem
    est = GDRegressor(loss="huber", tol=1e-12, max_iter=20000).fit(X, Y[:, 0])
    ref = ls_fit(X, Y[:, 0])  # residuals are small (|r| < delta): huber is least squares here
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, atol=1e-3)


def test_partial_fit_converges_over_passes_and_keeps_adams_state(problem):
    X, Y = problem
    est = GDRegressor(optimizer="adam", lr=0.1, random_state=0)
    for _ in range(100):
        for rows in np.array_split(np.arange(len(X)), 2):
            est.partial_fit(X[rows], Y[rows])
    assert est.n_iter_ == 200 and est.diagnosis_ is None
    np.testing.assert_allclose(est.coef_, ls_fit(X, Y).coef_, atol=0.05)
    np.testing.assert_allclose(est.intercept_, ls_fit(X, Y).intercept_, atol=0.05)
    with pytest.raises(ValueError, match="3 features|features"):
        est.partial_fit(X[:, :3], Y)


def test_partial_fit_carries_the_optimizer_state_between_calls(problem):
    X, Y = problem
    est = GDRegressor(optimizer="adam", lr=0.1, random_state=0)
    est.partial_fit(X, Y).partial_fit(X, Y)
    with pytest.warns(ConvergenceWarning):
        two_epochs = GDRegressor(optimizer="adam", lr=0.1, max_iter=2, tol=0.0, random_state=0).fit(X, Y)
    for a, b in zip(est.factors_, two_epochs.factors_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_warm_start_continues_from_the_previous_factors(problem):
    X, Y = problem
    cold = GDRegressor(tol=1e-8, max_iter=20000, random_state=0).fit(X, Y)
    warm = GDRegressor(tol=1e-8, max_iter=20000, warm_start=True, random_state=0).fit(X, Y)
    first, end = warm.n_iter_, warm.loss_curve_[-1]
    warm.fit(X, Y)
    assert warm.n_iter_ < first == cold.n_iter_
    assert warm.loss_curve_[0] == pytest.approx(end, rel=1e-12)  # where the first fit ended


@pytest.mark.parametrize("compute_diagnosis", [True, False])
def test_max_iter_warns_with_the_diagnosis(problem, compute_diagnosis):
    X, Y = problem
    with pytest.warns(ConvergenceWarning, match="max_iter=5.*Consider increasing max_iter"):
        est = GDRegressor(max_iter=5, compute_diagnosis=compute_diagnosis).fit(X, Y)
    assert est.outcome_ == "max_epochs" and est.n_iter_ == 5
    if compute_diagnosis:
        assert est.diagnosis_.verdict == "still_improving"
    else:
        assert est.diagnosis_ is None


def test_divergence_names_the_stability_bound(problem):
    X, Y = problem
    with pytest.raises(DivergenceError, match=r"the stability bound .* Use lr < .*lr=\"auto\""):
        GDRegressor(lr=10.0).fit(X, Y)
    assert issubclass(DivergenceError, ValueError)


def test_divergence_in_partial_fit_leaves_the_model_as_it_was(problem):
    X, Y = problem
    est = GDRegressor(lr=0.01).partial_fit(X, Y)
    before = [W.copy() for W in est.factors_]
    with pytest.raises(DivergenceError):
        est.set_params(lr=1e4).partial_fit(100 * X, Y)
    assert all(np.array_equal(a, b) for a, b in zip(before, est.factors_))


def test_a_bottleneck_warns_with_the_rank_floor(problem):
    X, Y = problem
    with pytest.warns(RankFloorWarning, match=r"below the rank 3 .* rank floor") as record:
        est = GDRegressor(widths=(1,), random_state=0).fit(X, Y)
    assert not any(issubclass(r.category, ConvergenceWarning) for r in record)
    assert est.diagnosis_.verdict in ("stalled_floor", "converged_floor")
    assert est.diagnosis_.numbers["narrowest_width"] == 1


def test_widths_and_depth_are_exclusive(problem):
    X, Y = problem
    with pytest.raises(ValueError, match="widths=.*fixes the architecture"):
        GDRegressor(widths=(2,), depth=3).fit(X, Y)
    with pytest.raises(ValueError, match='lr="auto" applies to optimizer="sgd"'):
        GDRegressor(optimizer="adam").fit(X, Y)


def test_partial_fit_goes_on_after_a_checkpoint_round_trip(problem, tmp_path):
    X, Y = problem
    est = GDRegressor(lr=0.01, random_state=0).partial_fit(X[:60], Y[:60])
    loaded = GDRegressor.load_checkpoint(est.save_checkpoint(tmp_path / "model.pt"))
    est.partial_fit(X[60:], Y[60:])
    loaded.partial_fit(X[60:], Y[60:])  # a fresh optimizer state: plain SGD has none
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_feature_names_from_a_table_are_kept_and_checked(problem, tmp_path):
    pa = pytest.importorskip("pyarrow")
    X, Y = problem
    table = pa.table({name: X[:, j] for j, name in enumerate("abcd")})
    est = GDRegressor().fit(table, Y[:, 0])
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    loaded = GDRegressor.load_checkpoint(est.save_checkpoint(tmp_path / "model.pt"))
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(table), est.predict(table))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(table.select(["b", "a", "c", "d"]))


def test_checkpoint_refuses_a_training_checkpoint(tmp_path):
    from linlab.checkpoint import CheckpointError, save_checkpoint

    result = linlab.train(linlab.seed_dataset(), widths=(10, 2), lr=1e-5, epochs=2)
    state = {"epoch": 2, "factors": result.factors, "biases": None, "optimizer": None,
             "history": result.history, "rng": None, "lr": result.lr}
    path = save_checkpoint(tmp_path / "run.pt", state, config=linlab.TrainConfig(widths=(10, 2)))
    with pytest.raises(CheckpointError, match="not a GDRegressor's"):
        GDRegressor.load_checkpoint(path)


def test_pipeline_and_grid_search_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), GDRegressor(depth=2, random_state=0))
    grid = GridSearchCV(pipe, {"gdregressor__width": [1, 4], "gdregressor__lr": ["auto", 1e-3]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lr=1e-3 is slow by design
        grid.fit(X, y)
    ref = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y).score(X, y)
    assert grid.best_params_["gdregressor__lr"] == "auto"
    assert grid.best_estimator_.score(X, y) == pytest.approx(ref, abs=0.01)
    assert set(grid.cv_results_["params"][0]) == {"gdregressor__width", "gdregressor__lr"}
