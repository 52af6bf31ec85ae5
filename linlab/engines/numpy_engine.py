"""Engine ``numpy``: hand-derived backpropagation for any depth (the seed's steps 2-3)."""

from __future__ import annotations

import numpy as np

from .. import optim
from ..losses import loss_grad, loss_value
from .base import Engine


def forward(X, factors, biases=None) -> list[np.ndarray]:
    """Activations h_0 = X, h_j = h_{j-1} W_j (+ b_j); the last is the prediction."""
    hs = [X]
    for j, W in enumerate(factors):
        h = hs[-1].dot(W)
        if biases is not None:
            h = h + biases[j]
        hs.append(h)
    return hs


def backward(hs, G, factors, with_bias=False):
    r"""Gradients of the loss with respect to every factor (and bias).

    .. math::
        h_0 = X,\quad h_j = h_{j-1} W_j + b_j,\quad \hat Y = h_L,\quad
        G_L = \partial\ell/\partial\hat Y \ (= 2(\hat Y - Y) \text{ for summed squares})

        \partial\ell/\partial W_j = h_{j-1}^\top G_j,\quad
        \partial\ell/\partial b_j = \mathbf 1^\top G_j,\quad
        G_{j-1} = G_j W_j^\top

    For depth 2 this is the seed's ``grad_w2 = h.T.dot(grad_y_pred)``,
    ``grad_h = grad_y_pred.dot(w2.T)``, ``grad_w1 = x_train.T.dot(grad_h)``.
    """
    L = len(factors)
    grads_W, grads_b = [None] * L, [None] * L
    for j in reversed(range(L)):
        grads_W[j] = hs[j].T.dot(G)
        if with_bias:
            grads_b[j] = G.sum(axis=0)
        if j:
            G = G.dot(factors[j].T)
    return grads_W, (grads_b if with_bias else None)


class NumpyEngine(Engine):
    """Plain NumPy, CPU, float64 or float32; every optimizer via :mod:`linlab.optim`."""

    name = "numpy"

    def __init__(self, data, config, factors, biases=None, val=None):
        super().__init__(data, config, factors, biases, val)
        dt = np.dtype(config.dtype)
        self.X, self.Y = data.X.astype(dt), data.Y.astype(dt)
        self.val = None if val is None else (val.X.astype(dt), val.Y.astype(dt))
        self.factors = [np.array(W, dtype=dt) for W in factors]
        self.biases = None
        if config.bias:
            self.biases = [np.array(b, dtype=dt) for b in biases] if biases is not None else [
                np.zeros(w, dtype=dt) for w in config.widths[1:]
            ]
        self.opt_state = optim.init(config.optimizer, self._params())
        self._cache = None  # (activations, residual) of the current parameters, full batch

    def _params(self):
        return self.factors + (self.biases or [])

    def _loss_of(self, R) -> float:
        c = self.config
        return float(loss_value(R, c.loss, c.reduction, c.p, c.delta))

    def loss(self) -> float:
        with np.errstate(all="ignore"):
            hs = forward(self.X, self.factors, self.biases)
            R = hs[-1] - self.Y
            self._cache = (hs, R)
            return self._loss_of(R)

    def val_loss(self) -> float:
        X, Y = self.val
        with np.errstate(all="ignore"):
            return self._loss_of(forward(X, self.factors, self.biases)[-1] - Y)

    def _update(self, hs, R, lr):
        c = self.config
        G = loss_grad(R, c.loss, c.reduction, c.p, c.delta)
        gW, gb = backward(hs, G, self.factors, self.biases is not None)
        self.opt_state = optim.step(c.optimizer, self._params(), gW + (gb or []), self.opt_state, lr, c)

    def step(self, lr, batches=None):
        with np.errstate(all="ignore"):
            if batches is None:
                hs, R = self._cache if self._cache is not None else (None, None)
                if hs is None:
                    self.loss()
                    hs, R = self._cache
                self._update(hs, R, lr)
            else:
                for rows in batches:
                    hs = forward(self.X[rows], self.factors, self.biases)
                    self._update(hs, hs[-1] - self.Y[rows], lr)
        self._cache = None

    def params(self):
        f = [W.astype(np.float64) for W in self.factors]
        return f, None if self.biases is None else [b.astype(np.float64) for b in self.biases]

    def set_params(self, factors, biases=None):
        for W, new in zip(self.factors, factors, strict=True):
            W[...] = new
        if self.biases is not None and biases is not None:
            for b, new in zip(self.biases, biases, strict=True):
                b[...] = new
        self._cache = None

    def optimizer_state(self) -> dict:
        return optim.state_to_dict(self.opt_state)

    def load_optimizer_state(self, state: dict) -> None:
        dt = self.X.dtype
        self.opt_state = optim.state_from_dict(
            type(self.opt_state), state, lambda a: np.array(a, dtype=dt)
        )

