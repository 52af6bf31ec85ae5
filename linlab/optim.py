"""Optimizer updates written once, for NumPy arrays and torch tensors alike.

Each optimizer is a pair of functions in the style of optax: ``init(params)`` returns its
state (a NamedTuple, never hidden) and ``step(params, grads, state, lr)`` updates the
parameters in place (as the seed's ``w1 -= grad_w1 * learning_rate``) and returns the new
state. The arithmetic follows ``torch.optim``'s documented algorithms line by line, so the
numpy and autograd engines agree with the module engine (which uses ``torch.optim``).
Only operators are used, so `lr` may be a per-run array that broadcasts against stacked
parameters (the batched engine).
"""

from __future__ import annotations

from typing import NamedTuple


def _zeros_like(p):
    return p * 0


class SGDState(NamedTuple):
    momentum_buffers: list | None  # None until the first step (torch's convention)


class AdamState(NamedTuple):
    step: int
    exp_avg: list
    exp_avg_sq: list


class RMSpropState(NamedTuple):
    square_avg: list


class AdagradState(NamedTuple):
    step: int
    sum: list


def init(name: str, params):
    """Initial state of optimizer `name` for `params`."""
    if name == "sgd":
        return SGDState(None)
    if name in ("adam", "adamw"):
        return AdamState(0, [_zeros_like(p) for p in params], [_zeros_like(p) for p in params])
    if name == "rmsprop":
        return RMSpropState([_zeros_like(p) for p in params])
    if name == "adagrad":
        return AdagradState(0, [_zeros_like(p) for p in params])
    raise ValueError(f"optimizer={name!r} is not one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'.")


def sgd(params, grads, state: SGDState, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    r"""SGD with optional momentum and Nesterov.

    .. math::
        g \leftarrow g + \lambda p;\quad b \leftarrow \mu b + g \ (b_1 = g);\quad
        g \leftarrow g + \mu b \text{ (Nesterov) or } b;\quad p \leftarrow p - \eta g
    """
    bufs = state.momentum_buffers
    new_bufs = [] if momentum else None
    for i, (p, g) in enumerate(zip(params, grads)):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            b = g * 1 if bufs is None else bufs[i] * momentum + g
            new_bufs.append(b)
            g = g + momentum * b if nesterov else b
        p -= lr * g
    return SGDState(new_bufs)


def adam(params, grads, state: AdamState, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         decoupled=False):
    r"""Adam (Kingma & Ba 2015), or AdamW with ``decoupled=True``.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        p \leftarrow p - \frac{\eta}{1-\beta_1^t}\, \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Weight decay adds λp to g (Adam) or first scales p by 1 − ηλ (AdamW).
    """
    b1, b2 = betas
    t = state.step + 1
    for p, g, m, v in zip(params, grads, state.exp_avg, state.exp_avg_sq):
        if weight_decay and decoupled:
            p *= 1 - lr * weight_decay
        elif weight_decay:
            g = g + weight_decay * p
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = v**0.5 / (1 - b2**t) ** 0.5 + eps
        p -= (lr / (1 - b1**t)) * m / denom
    return AdamState(t, state.exp_avg, state.exp_avg_sq)


def rmsprop(params, grads, state: RMSpropState, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
    r"""RMSprop: :math:`v \leftarrow \alpha v + (1-\alpha) g^2,\ p \leftarrow p - \eta g/(\sqrt{v}+\epsilon)`."""
    for p, g, v in zip(params, grads, state.square_avg):
        if weight_decay:
            g = g + weight_decay * p
        v *= alpha
        v += (1 - alpha) * g * g
        p -= lr * g / (v**0.5 + eps)
    return state


def adagrad(params, grads, state: AdagradState, lr, eps=1e-10, weight_decay=0.0):
    r"""Adagrad: :math:`s \leftarrow s + g^2,\ p \leftarrow p - \eta g/(\sqrt{s}+\epsilon)`."""
    for p, g, s in zip(params, grads, state.sum):
        if weight_decay:
            g = g + weight_decay * p
        s += g * g
        p -= lr * g / (s**0.5 + eps)
    return AdagradState(state.step + 1, state.sum)


def step(name: str, params, grads, state, lr, config) -> object:
    """One update of optimizer `name` with hyper-parameters read from a `TrainConfig`."""
    wd = config.weight_decay
    if name == "sgd":
        return sgd(params, grads, state, lr, config.momentum, config.nesterov, wd)
    if name in ("adam", "adamw"):
        return adam(params, grads, state, lr, config.betas, config.eps, wd, decoupled=name == "adamw")
    if name == "rmsprop":
        return rmsprop(params, grads, state, lr, config.alpha, config.eps, wd)
    if name == "adagrad":
        return adagrad(params, grads, state, lr, 1e-10, wd)
    raise ValueError(f"optimizer={name!r} is not one of 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad'.")


def state_to_dict(state) -> dict:
    """A NamedTuple optimizer state as a plain dict (lists stay lists, None stays None)."""
    return {"type": type(state).__name__, **state._asdict()}


def state_from_dict(cls, state: dict, as_array):
    """Inverse of :func:`state_to_dict`; `as_array` converts each stored buffer."""
    if state.get("type") != cls.__name__:
        raise ValueError(
            f"optimizer state is for {state.get('type')!r} but this run uses {cls.__name__}; "
            "resume with the optimizer the run was started with."
        )
    return cls(**{
        key: [as_array(a) for a in state[key]] if isinstance(state[key], list) else state[key]
        for key in cls._fields
    })


def lr_at(config, epoch: int, base_lr: float) -> float:
    """The learning rate of epoch `epoch` (0-based) under ``config.schedule``.

    Closed forms of torch's ``StepLR``, ``ExponentialLR`` and ``CosineAnnealingLR``
    (with ``T_max = epochs``, ``eta_min = 0``), stepped once per epoch.

    Examples
    --------
    >>> from linlab.config import TrainConfig
    >>> lr_at(TrainConfig(schedule="step", step_size=10, gamma=0.5), 25, 1.0)
    0.25
    """
    import math

    if config.schedule == "constant":
        return base_lr
    if config.schedule == "step":
        return base_lr * config.gamma ** (epoch // config.step_size)
    if config.schedule == "exponential":
        return base_lr * config.gamma**epoch
    return base_lr * (1 + math.cos(math.pi * epoch / max(config.epochs, 1))) / 2  # cosine
