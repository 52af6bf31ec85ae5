"""`GDRegressor`: linlab's gradient descent as a scikit-learn regressor.

Needs scikit-learn (``pip install "linlab[sklearn]"``); nothing else in linlab imports it.
Training goes through :func:`linlab.fit`; the stability bound, the rank floor and the
verdict in ``diagnosis_`` come from :mod:`linlab.theory` and :func:`linlab.diagnose`.

How the data reaches linlab (squared loss, as scikit-learn's ``LinearRegression`` does):

- ``fit_intercept=True``: X and Y are centred by their weighted means x̄, ȳ, the network
  fits the centred rows without biases and ``intercept_ = ȳ − x̄ · coef_ᵀ``.
  ``partial_fit`` keeps running weighted means over every batch seen so far.
- ``sample_weight``: weights are normalised to mean 1 and every centred row is multiplied
  by √w, so the training loss is Σ w_i ‖ŷ_i − y_i‖² / (Σ w_i · n_targets): a weight of 2
  is the same objective as a repeated row, a weight of 0 as a removed one.
- The huber and ℓp losses have no closed-form offset: X is centred the same way and the
  network learns biases (linlab's ``bias=True``) on top of ȳ.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .config import TrainConfig
from .data import Dataset
from .engines import fit as linlab_fit
from .losses import loss_value
from .models import end_to_end, end_to_end_bias, init_factors

STALL_WINDOW = 100  # epochs over which the loss must improve by more than tol (relative)


class DivergenceError(ValueError):
    """Training diverged; the message gives the stability bound and a learning rate that works."""


class RankFloorWarning(UserWarning):
    """A hidden layer narrower than the rank of the fitted values holds the loss at its floor."""


class GDRegressor(RegressorMixin, BaseEstimator):
    """Linear regression or a deep linear network, trained by linlab's gradient descent.

    Predictions are ``X @ coef_.T + intercept_`` with ``coef_`` the end-to-end product
    W1 ⋯ WL of the trained factors (transposed to scikit-learn's layout).

    Parameters
    ----------
    widths : tuple of int, optional
        Hidden widths, e.g. ``(5, 3)`` for the network (n_features, 5, 3, n_targets);
        ``()`` is plain linear regression. When given, `depth` and `width` must be left
        at their defaults.
    depth : int, default=1
        Number of factors (layers); used when `widths` is None.
    width : int, optional
        Width of every hidden layer when `depth` > 1; None: n_features.
    fit_intercept : bool, default=True
    init : {"zeros", "balanced", "scaled", "orthogonal", "normal", "torch"}, optional
        Initial factors (:func:`linlab.init_factors`). None: "zeros" at depth 1 and
        "balanced" deeper (all-zero factors are a saddle a deep network never leaves).
    init_scale : float, default=0.1
        Scale of `init` (see :func:`linlab.init_factors`).
    optimizer : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}, default="sgd"
    lr : float or "auto", default="auto"
        ``"auto"`` (plain SGD, with or without momentum) picks the rate from the curvature
        (:func:`linlab.theory.auto_lr`): 2/(λmin + λmax) at depth 1 full batch, a bound
        that holds for every mini-batch with `batch_size`, half the stability bound
        2/sharpness deeper.
    momentum : float, default=0.0
        Heavy-ball momentum of "sgd".
    loss : {"squared", "huber", "lp"}, default="squared"
    max_iter : int, default=2000
        The most epochs (passes over the data) one ``fit`` makes.
    tol : float, default=1e-5
        Training stops when the loss is at most ``tol`` times its value at the start (for
        the zero initial model: R² >= 1 − tol on the training data), or when the best loss
        improved by less than ``tol`` (relative) over the last 100 epochs.
    batch_size : int, optional
        Rows per update; None: full batch.
    engine : {"numpy", "autograd", "module", "batched"}, default="numpy"
    dtype : {"float64", "float32"}, default="float64"
        The arithmetic of training; ``coef_`` and predictions are float64.
    random_state : int, RandomState instance or None
        Seeds the initial factors and the mini-batch order.
    verbose : int, default=0
        > 0 prints linlab's progress line every 10 epochs.
    warm_start : bool, default=False
        ``fit`` starts from the factors of the previous fit instead of `init`.
    compute_diagnosis : bool, default=True
        Compare each ``fit`` with theory in ``diagnosis_`` (and warn about a rank floor).
        It costs a few passes over the data (least squares, rank floor, Hessian spectrum),
        often more than the training itself on large data; False skips it.

    Attributes
    ----------
    coef_ : ndarray of shape (n_targets, n_features) or (n_features,)
        The end-to-end weights; 1-D when ``y`` was 1-D (as in ``LinearRegression``).
    intercept_ : float or ndarray of shape (n_targets,)
    factors_ : list of ndarray
        W1..WL, W_j of shape (widths[j-1], widths[j]), in linlab's order
        (predictions = X̃ @ W1 @ … @ WL on the centred rows X̃).
    n_iter_ : int
        Epochs run (summed over ``partial_fit`` calls).
    loss_curve_ : ndarray
        The training loss before each epoch and at the end (mean over samples and targets,
        weighted, on the centred rows).
    outcome_ : str
        How linlab's loop stopped: "converged", "stalled" (tol on the improvement),
        "max_epochs".
    diagnosis_ : linlab.diagnose.Diagnosis or None
        What happened in the last ``fit``, compared with theory (least-squares optimum,
        rank floor, bounds); None after ``partial_fit`` (one epoch on one batch) and with
        ``compute_diagnosis=False``.
    lr_ : float
        The learning rate used (``"auto"`` resolved).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined only when X has feature names that are all strings.

    Raises
    ------
    ValueError
        For invalid hyperparameters or data (scikit-learn's messages for X and y).
    DivergenceError
        A ValueError raised by ``fit`` and ``partial_fit`` when the loss blows up; it names
        the stability bound. The estimator keeps its previous state.

    Warns
    -----
    ConvergenceWarning
        When ``fit`` stops at `max_iter` with the loss still falling.
    RankFloorWarning
        When a hidden layer narrower than the rank of the fitted values holds the loss at
        the reduced-rank floor (:func:`linlab.theory.rank_floor`).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2) ** 0.5
    >>> y = X @ np.array([2.0, -1.0]) + 3.0
    >>> reg = GDRegressor(tol=1e-12).fit(X, y)
    >>> np.round(reg.coef_, 4).tolist(), round(float(reg.intercept_), 4)
    ([2.0, -1.0], 3.0)
    """

    def __init__(self, widths=None, *, depth=1, width=None, fit_intercept=True, init=None, init_scale=0.1,
                 optimizer="sgd", lr="auto", momentum=0.0, loss="squared", max_iter=2000, tol=1e-5,
                 batch_size=None, engine="numpy", dtype="float64", random_state=None, verbose=0,
                 warm_start=False, compute_diagnosis=True):
        self.widths = widths
        self.depth = depth
        self.width = width
        self.fit_intercept = fit_intercept
        self.init = init
        self.init_scale = init_scale
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.loss = loss
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.engine = engine
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.compute_diagnosis = compute_diagnosis

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = False
        return tags

    # ------------------------------------------------------------ the public methods

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) from the initial factors (or the previous ones with `warm_start`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative; a weight of 2 counts as a repeated row.

        Returns
        -------
        self
        """
        X, Y, w, one_d = self._validate(X, y, sample_weight, reset=True)
        x_off, y_off = self._offsets(X, Y, w)
        data = self._dataset(X, Y, w, x_off, y_off)
        config = self._config(data, epochs=self._int("max_iter", self.max_iter, low=1))
        warm = self.warm_start and hasattr(self, "factors_") and self._same_shape(config)
        factors = self.factors_ if warm else self._initial_factors(config)
        biases = self._biases if warm else None
        result, _ = self._run(data, config, factors, biases, warm_lr=None)
        self._store(result, data, config, x_off, y_off, one_d, diagnosis=bool(self.compute_diagnosis))
        self.n_iter_ = result.epochs
        self.loss_curve_ = np.asarray(result.history, dtype=np.float64)
        self._state, self._sums = None, self._weighted_sums(X, Y, w)
        self._warn(result, config)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on (X, y), continuing from the current factors and optimizer state.

        ``lr="auto"`` is resolved on the first batch and kept; with ``fit_intercept`` the
        rows are centred by running weighted means over all batches seen so far.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        first = not hasattr(self, "factors_")
        X, Y, w, one_d = self._validate(X, y, sample_weight, reset=first)
        if not first and Y.shape[1] != self.factors_[-1].shape[1]:
            raise ValueError(
                f"y has {Y.shape[1]} target(s) but the model was fitted with "
                f"{self.factors_[-1].shape[1]}; partial_fit keeps the number of targets."
            )
        sums = self._weighted_sums(X, Y, w)
        if not first and self._sums is not None:
            sums = tuple(a + b for a, b in zip(sums, self._sums))
        x_off, y_off = (sums[0] / sums[2], sums[1] / sums[2]) if self.fit_intercept else self._offsets(X, Y, w)
        data = self._dataset(X, Y, w, x_off, y_off)
        config = self._config(data, epochs=1)
        factors = self._initial_factors(config) if first else self.factors_
        state = None if first else self._state
        if state is not None:
            state = {**state, "factors": self.factors_, "biases": self._biases, "history": [],
                     "val_history": None}
        result, state = self._run(data, config, factors, None if first else self._biases,
                                  warm_lr=None if first else self.lr_, resume=state)
        self._store(result, data, config, x_off, y_off, one_d, diagnosis=False)
        self.n_iter_ = (0 if first else self.n_iter_) + result.epochs
        curve = np.asarray(result.history, dtype=np.float64)
        self.loss_curve_ = curve if first else np.concatenate([self.loss_curve_, curve[-1:]])
        self._state, self._sums = state, sums
        return self

    def predict(self, X):
        """Predictions ``X @ coef_.T + intercept_``, float64.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path):
        """Write the fitted model to `path` in linlab's checkpoint format.

        The file is a :func:`linlab.checkpoint.save_checkpoint` checkpoint of the last
        run (factors, config, loss history) with the estimator's parameters, offsets and
        feature names in ``extra["estimator"]``; :meth:`load_checkpoint` reads it back.

        Returns
        -------
        pathlib.Path
        """
        from .checkpoint import save_checkpoint

        check_is_fitted(self)
        state = {"epoch": self.n_iter_, "factors": self.factors_, "biases": self._biases,
                 "optimizer": None, "history": self.loss_curve_, "val_history": None,
                 "rng": None, "lr": self.lr_}
        fitted = {"x_offset": self._x_offset, "y_offset": self._y_offset, "one_d": self._one_d,
                  "n_features_in": self.n_features_in_, "outcome": self.outcome_,
                  # as computed, not recomputed: a product of factors in another memory layout
                  # may round differently, and predictions must stay bit for bit the same
                  "coef": self.coef_, "intercept": np.asarray(self.intercept_)}
        if self._sums is not None:  # partial_fit's running means go on from them
            fitted["sums"] = list(self._sums)
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in"] = [str(s) for s in self.feature_names_in_]
        params = {k: v for k, v in self.get_params().items() if k != "random_state"
                  or isinstance(v, (int, type(None)))}
        return save_checkpoint(path, state, config=self._config_used,
                               extra={"estimator": {"params": params, "fitted": fitted}})

    @classmethod
    def load_checkpoint(cls, path):
        """The estimator saved by :meth:`save_checkpoint`, ready to predict.

        Raises
        ------
        linlab.checkpoint.CheckpointError
            A ValueError, for a missing, corrupt or foreign file, or a checkpoint not
            written by :meth:`save_checkpoint`.
        """
        from .checkpoint import CheckpointError, _to_numpy, checkpoint_config, checkpoint_params, load_checkpoint

        ckpt = load_checkpoint(path)
        saved = _to_numpy(ckpt.get("extra", {})).get("estimator")
        if not isinstance(saved, dict):
            raise CheckpointError(f"{path} is a linlab checkpoint but not a GDRegressor's; "
                                  "use linlab.checkpoint.load_checkpoint for training runs.")
        params, fitted = saved["params"], saved["fitted"]
        if isinstance(params.get("widths"), list):
            params["widths"] = tuple(params["widths"])
        est = cls(**params)
        est._config_used = checkpoint_config(ckpt)
        factors, biases = checkpoint_params(ckpt)
        factors = [np.ascontiguousarray(W) for W in factors]
        est._biases = None if biases is None else [np.ascontiguousarray(b) for b in biases]
        est.factors_, est._x_offset, est._y_offset = factors, fitted["x_offset"], fitted["y_offset"]
        est._one_d, est.n_features_in_, est.outcome_ = bool(fitted["one_d"]), int(fitted["n_features_in"]), \
            str(fitted["outcome"])
        if "feature_names_in" in fitted:
            est.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
        est.n_iter_, est.lr_ = int(ckpt["epoch"]), float(ckpt["lr"])
        est.loss_curve_ = ckpt["history"].numpy()
        est.coef_ = np.array(fitted["coef"], dtype=np.float64)
        est.intercept_ = float(fitted["intercept"]) if est._one_d else np.array(fitted["intercept"])
        est._state, est.diagnosis_ = None, None
        est._sums = tuple(fitted["sums"]) if "sums" in fitted else None
        return est

    # ------------------------------------------------------------ data

    def _validate(self, X, y, sample_weight, reset):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True, dtype=np.float64)
        one_d = y.ndim == 1
        Y = y.reshape(-1, 1) if one_d else y
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        with np.errstate(over="ignore"):
            total = float(w.sum())
        if not 0 < total < np.inf:
            raise ValueError(f"sample_weight sums to {total}; it needs a positive, finite sum: give at least "
                             "one sample a positive weight, and scale huge weights down (only ratios matter).")
        return X, np.asarray(Y, dtype=np.float64), w, one_d

    def _offsets(self, X, Y, w):
        if not self.fit_intercept:
            return np.zeros(X.shape[1]), np.zeros(Y.shape[1])
        return tuple(self._checked(np.average(a, axis=0, weights=w), "the mean of " + name)
                     for a, name in ((X, "X"), (Y, "y")))

    @staticmethod
    def _weighted_sums(X, Y, w):
        with np.errstate(all="ignore"):
            return w @ X, w @ Y, float(w.sum())

    @staticmethod
    def _checked(a, what):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{what} overflows float64; rescale the data (e.g. with StandardScaler).")
        return a

    def _dataset(self, X, Y, w, x_off, y_off) -> Dataset:
        """The centred rows, each times √w with w normalised to mean 1."""
        with np.errstate(all="ignore"):
            root = 1.0 if np.all(w == w[0]) else np.sqrt(w * (len(w) / w.sum()))[:, None]  # equal: a no-op
            Xc = X - x_off
            # a constant column leaves only the mean's rounding (<= n·eps·max|x|): make it 0
            Xc[:, np.abs(Xc).max(axis=0) <= len(X) * np.finfo(np.float64).eps * np.abs(X).max(axis=0)] = 0.0
            Xs = self._checked(Xc * root, "X after centring")
            Ys = self._checked((Y - y_off) * root, "y after centring")
            if self.loss == "squared" and np.any(Xs) and not np.all(np.isfinite(Xs.T @ Xs)):
                raise ValueError("XᵀX overflows float64; rescale X (e.g. with StandardScaler).")
        return Dataset(Xs, Ys, name="GDRegressor")

    # ------------------------------------------------------------ configuration

    def _int(self, name, value, low):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
        return int(value)

    def _hidden(self, d: int) -> tuple[int, ...]:
        if self.widths is not None:
            if self.depth != 1 or self.width is not None:
                raise ValueError(f"widths={self.widths!r} fixes the architecture; leave depth=1 and "
                                 "width=None, or give depth and width instead of widths.")
            hidden = (self.widths,) if isinstance(self.widths, numbers.Integral) else tuple(self.widths)
            for h in hidden:
                self._int("widths entries", h, low=1)
            return tuple(int(h) for h in hidden)
        depth = self._int("depth", self.depth, low=1)
        width = d if self.width is None else self._int("width", self.width, low=1)
        return (width,) * (depth - 1)

    def _config(self, data: Dataset, epochs: int) -> TrainConfig:
        widths = (data.n_features, *self._hidden(data.n_features), data.n_targets)
        if not (isinstance(self.tol, numbers.Real) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol={self.tol!r} must be a finite number >= 0.")
        if self.batch_size is not None:
            self._int("batch_size", self.batch_size, low=1)
        depth = len(widths) - 1
        init = self.init if self.init is not None else ("zeros" if depth == 1 else "balanced")
        if init == "zeros" and depth > 1:
            raise ValueError(f"init='zeros' with depth {depth} is a saddle gradient descent never leaves; "
                             "use init='balanced' (the default) or 'scaled'.")
        return TrainConfig(
            widths=widths, bias=bool(self.fit_intercept) and self.loss != "squared", init=init,
            init_scale=self.init_scale, seed=self._seed(), engine=self.engine,
            optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, loss=self.loss,
            reduction="mean", epochs=epochs, batch_size=self.batch_size, tol=0.0,
            stall_window=STALL_WINDOW, stall_rtol=float(self.tol), dtype=self.dtype, log_every=10,
        )

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _initial_factors(self, config):
        return init_factors(config.widths, config.init, config.init_scale, config.seed)

    def _same_shape(self, config) -> bool:
        return [W.shape for W in self.factors_] == list(zip(config.widths[:-1], config.widths[1:]))

    # ------------------------------------------------------------ training

    def _run(self, data, config, factors, biases, warm_lr, resume=None):
        """linlab.fit with tol scaled to the starting loss; the final state for partial_fit."""
        start = self._start_loss(data, config, factors, biases)
        config = config.replace(tol=float(self.tol) * start)
        if warm_lr is not None:
            config = config.replace(lr=warm_lr)
        elif config.lr == "auto" and _flat(data):  # no variation in X: every gradient is zero
            config = config.replace(lr=1.0)
        last = []  # partial_fit: the final epoch, whose state() carries the optimizer on

        def keep(epoch):
            last[:] = [epoch]

        log = print if self.verbose else None
        if resume is not None:
            resume = {**resume, "lr": config.lr}
        result = linlab_fit(data, config, factors=factors, biases=biases, log=log,
                            callbacks=(keep,) if config.epochs == 1 else (), resume=resume)
        if result.outcome == "diverged":  # before any attribute changes: the model stays as it was
            raise DivergenceError(self._divergence_message(result, data))
        self._config_used = config
        return result, (last[0].state() if last else None)

    def _start_loss(self, data, config, factors, biases) -> float:
        with np.errstate(all="ignore"):
            R = data.X @ end_to_end(factors) - data.Y
            if biases is not None:
                R = R + end_to_end_bias(factors, biases)
            zero = float(loss_value(data.Y, config.loss, "mean"))
            return max(float(loss_value(R, config.loss, "mean")), zero)

    def _divergence_message(self, result, data) -> str:
        from .diagnose import diagnose

        d = diagnose(result, data)  # names the stability bound 2/λmax when theory gives one
        how = result.message[:1].upper() + result.message[1:]
        return f"training diverged: {d.message} {how} {' '.join(d.advice)}"

    def _store(self, result, data, config, x_off, y_off, one_d, diagnosis=True):
        from .diagnose import diagnose

        self.factors_ = [np.asarray(W, dtype=np.float64) for W in result.factors]
        self._biases = result.biases
        self._x_offset, self._y_offset, self._one_d = x_off, y_off, one_d
        self.lr_, self.outcome_ = float(result.lr), result.outcome
        self._set_coef()
        self.diagnosis_ = diagnose(result, data) if diagnosis else None  # one epoch on one batch: no verdict

    def _set_coef(self):
        W = end_to_end(self.factors_)  # (d, k)
        b = self._y_offset - self._x_offset @ W
        if self._biases is not None:
            b = b + end_to_end_bias(self.factors_, self._biases)
        self.coef_ = W[:, 0].copy() if self._one_d else W.T.copy()
        self.intercept_ = float(b[0]) if self._one_d else b

    def _warn(self, result, config):
        d = self.diagnosis_
        if d is None:
            if result.outcome == "max_epochs":
                warnings.warn(f"GDRegressor stopped at max_iter={config.epochs} before the loss settled "
                              f"({result.message}) Consider increasing max_iter.", ConvergenceWarning,
                              stacklevel=3)
            return
        if d.verdict in ("stalled_floor", "converged_floor"):
            n = d.numbers
            warnings.warn(
                f"the narrowest hidden width {n['narrowest_width']} is below the rank {n['fitted_rank']} of "
                f"the least-squares fit, so the loss cannot go below the rank floor {n['floor_loss']:.6g} "
                f"(least squares: {n['ls_loss']:.6g}). Make every hidden layer at least "
                f"{n['fitted_rank']} wide to reach it.", RankFloorWarning, stacklevel=3)
        elif result.outcome == "max_epochs":
            warnings.warn(
                f"GDRegressor stopped at max_iter={config.epochs} before the loss settled "
                f"({d.verdict}: {d.message}) {' '.join(d.advice)} Consider increasing max_iter.",
                ConvergenceWarning, stacklevel=3)


def _flat(data: Dataset) -> bool:
    """True when XᵀX is zero (X is constant, or its variation underflows): nothing to fit.

    Every product x_i·x_j is at most m·m in size, m = max|x|, and m·m itself sits on XᵀX's
    diagonal: XᵀX = 0 exactly when m·m rounds to 0.
    """
    m = float(np.abs(data.X).max())
    return not m * m > 0
