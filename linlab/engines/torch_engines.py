"""Engines ``autograd`` (the seed's step 4) and ``module`` (steps 5-7), in torch."""

from __future__ import annotations

import numpy as np
import torch

from .. import optim
from .._module import DeepLinear
from ..losses import loss_value, torch_loss_fn
from .base import Engine

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def torch_device(name: str) -> torch.device:
    """The torch device for `name`, with a clear error when CUDA is asked for but absent."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available here; use device='cpu'.")
    return torch.device(name)


class _TorchEngine(Engine):
    def __init__(self, data, config, factors, biases=None, val=None):
        super().__init__(data, config, factors, biases, val)
        self.device, self.dtype = torch_device(config.device), DTYPES[config.dtype]
        self.X, self.Y = self._tensor(data.X), self._tensor(data.Y)
        self.val = None if val is None else (self._tensor(val.X), self._tensor(val.Y))
        self._cache = None  # loss tensor of the current parameters, with its graph

    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), device=self.device).to(self.dtype)

    def _rows(self, rows) -> torch.Tensor:
        return torch.as_tensor(rows, device=self.device)

    def loss(self) -> float:
        self._cache = self._loss(self.X, self.Y)
        return self._cache.item()

    @torch.no_grad()
    def val_loss(self) -> float:
        return self._loss(*self.val).item()

    def step(self, lr, batches=None):
        if batches is None:
            loss = self._cache if self._cache is not None else self._loss(self.X, self.Y)
            self._update(loss, lr)
        else:
            for rows in batches:
                rows = self._rows(rows)
                self._update(self._loss(self.X[rows], self.Y[rows]), lr)
        self._cache = None


class AutogradEngine(_TorchEngine):
    """Raw tensors with ``requires_grad``, ``backward()``, and a manual update under
    ``torch.no_grad()`` followed by zeroing the grads: the seed's step 4, any depth."""

    name = "autograd"

    def __init__(self, data, config, factors, biases=None, val=None):
        super().__init__(data, config, factors, biases, val)
        self.factors = [self._tensor(W).requires_grad_() for W in factors]
        self.biases = None
        if config.bias:
            init = biases if biases is not None else [np.zeros(w) for w in config.widths[1:]]
            self.biases = [self._tensor(b).requires_grad_() for b in init]
        with torch.no_grad():
            self.opt_state = optim.init(config.optimizer, self._params())

    def _params(self):
        return self.factors + (self.biases or [])

    def _loss(self, X, Y):
        h = X
        for j, W in enumerate(self.factors):
            h = h.mm(W)  # the hidden layer, then the prediction
            if self.biases is not None:
                h = h + self.biases[j]
        c = self.config
        return loss_value(h - Y, c.loss, c.reduction, c.p, c.delta)

    def _update(self, loss, lr):
        loss.backward()
        params = self._params()
        with torch.no_grad():
            self.opt_state = optim.step(
                self.config.optimizer, params, [p.grad for p in params], self.opt_state, lr, self.config
            )
            for p in params:
                p.grad.zero_()

    def params(self):
        f = [W.detach().cpu().double().numpy().copy() for W in self.factors]
        b = None if self.biases is None else [x.detach().cpu().double().numpy().copy() for x in self.biases]
        return f, b

    @torch.no_grad()
    def set_params(self, factors, biases=None):
        for W, new in zip(self.factors, factors, strict=True):
            W.copy_(self._tensor(new))
        if self.biases is not None and biases is not None:
            for b, new in zip(self.biases, biases, strict=True):
                b.copy_(self._tensor(new))
        self._cache = None

    def optimizer_state(self):
        return optim.state_to_dict(self.opt_state)

    def load_optimizer_state(self, state):
        self.opt_state = optim.state_from_dict(type(self.opt_state), state, self._tensor)


def make_optimizer(name: str, params, config, lr: float) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer that a config names."""
    wd = config.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=config.eps, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=config.betas, eps=config.eps, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.alpha, eps=config.eps, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer={name!r} is not one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'.")


class ModuleEngine(_TorchEngine):
    """:class:`~linlab.models.DeepLinear`, a torch loss module and ``torch.optim``: steps 5-7.

    The learning rate of each epoch is written into the optimizer's param groups, so
    schedules and ``lr="auto"`` act the same in every engine.
    """

    name = "module"

    def __init__(self, data, config, factors, biases=None, val=None):
        super().__init__(data, config, factors, biases, val)
        self.model = DeepLinear(config.widths, config.bias, factors, biases,
                                dtype=self.dtype, device=self.device)
        self.loss_fn = torch_loss_fn(config.loss, config.reduction, config.p, config.delta)
        lr = config.lr if isinstance(config.lr, float) else 1e-3  # set every epoch anyway
        self.optimizer = make_optimizer(config.optimizer, self.model.parameters(), config, lr)

    def _loss(self, X, Y):
        return self.loss_fn(self.model(X), Y)

    def _update(self, loss, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def params(self):
        f = [W.detach().cpu().double().numpy().copy() for W in self.model.factors()]
        b = None
        if self.config.bias:
            b = [layer.bias.detach().cpu().double().numpy().copy() for layer in self.model.layers]
        return f, b

    def set_params(self, factors, biases=None):
        self.model.set_factors(factors, biases if biases is not None else self.params()[1])
        self._cache = None

    def optimizer_state(self):
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state):
        self.optimizer.load_state_dict(state)
