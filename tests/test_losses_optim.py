"""Losses against torch autograd; optimizers on problems with a known optimum; schedules vs torch."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linlab import TrainConfig, fit, synthetic
from linlab.losses import loss_grad, loss_value, torch_loss_fn
from linlab.optim import lr_at

LOSSES = [dict(loss="squared"), dict(loss="lp", p=4.0), dict(loss="lp", p=1.5), dict(loss="huber", delta=0.7)]


@settings(max_examples=40, deadline=None)
@given(R=arrays(np.float64, (4, 3), elements=st.floats(-5, 5)),
       spec=st.sampled_from(LOSSES), reduction=st.sampled_from(["sum", "mean"]))
def test_loss_value_and_grad_match_torch(R, spec, reduction):
    t = torch.tensor(R, requires_grad=True)
    value = torch_loss_fn(reduction=reduction, **spec)(t, torch.zeros_like(t))
    value.backward()
    assert np.isclose(float(loss_value(R, reduction=reduction, **spec)), value.item(), rtol=1e-12, atol=1e-12)
    assert np.allclose(loss_grad(R, reduction=reduction, **spec), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="loss='l7'"):
        loss_value(np.ones((1, 1)), "l7")
    with pytest.raises(ValueError, match="p=0.5 must be >= 1"):
        TrainConfig(loss="lp", p=0.5)
    for fn in (loss_value, loss_grad):  # an unknown reduction is not silently a sum
        with pytest.raises(ValueError, match="reduction='avg' is not one of"):
            fn(np.ones((1, 1)), "squared", "avg")


@pytest.mark.parametrize("settings_", [
    dict(optimizer="sgd", lr=0.1), dict(optimizer="sgd", lr=0.05, momentum=0.9),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True), dict(optimizer="adam", lr=0.05),
    dict(optimizer="adamw", lr=0.05), dict(optimizer="rmsprop", lr=0.05, schedule="exponential", gamma=0.995),
    dict(optimizer="adagrad", lr=0.5),
])
def test_every_optimizer_finds_the_least_squares_solution(settings_):
    data = synthetic(n=100, d=4, k=2, condition=4.0, seed=0)
    config = TrainConfig(widths=(4, 2), reduction="mean", epochs=3000, tol=1e-10, stall_rtol=0.0, **settings_)
    r = fit(data, config)
    assert r.outcome == "converged", r.message
    assert np.allclose(r.end_to_end, data.W_true, atol=1e-3)


@pytest.mark.parametrize("schedule, torch_cls, kwargs", [
    ("step", torch.optim.lr_scheduler.StepLR, dict(step_size=3, gamma=0.5)),
    ("exponential", torch.optim.lr_scheduler.ExponentialLR, dict(gamma=0.9)),
    ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR, dict(T_max=20)),
])
def test_schedules_are_torchs_closed_forms(schedule, torch_cls, kwargs):
    config = TrainConfig(schedule=schedule, epochs=20, **{k: v for k, v in kwargs.items() if k != "T_max"})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = torch_cls(opt, **kwargs)
    for epoch in range(20):
        assert np.isclose(lr_at(config, epoch, 0.3), opt.param_groups[0]["lr"], rtol=1e-12, atol=1e-15)
        opt.step()
        sched.step()


def test_constant_schedule():
    assert lr_at(TrainConfig(), 123, 0.5) == 0.5
