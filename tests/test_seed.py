"""The seed study reproduced: the same data, the same numbers, the same phenomena."""

import numpy as np
import pytest
import torch

from linlab import TrainConfig, fit, seed_dataset, seed_factors


def seed_numpy_script(widths, lr, epochs):
    """The seed's steps 1-3, verbatim apart from depth: returns the losses it computes."""
    np.random.seed(1)
    x_train = np.random.randn(1000, 10).astype(np.float32)
    W = np.random.randint(0, 20, size=(10, 2))
    y_train = (x_train.dot(W)).astype(np.float32)
    ws = [np.random.randn(a, b) for a, b in zip(widths[:-1], widths[1:])]
    losses = []
    for _ in range(epochs):
        hs = [x_train]
        for w in ws:
            hs.append(hs[-1].dot(w))
        loss = np.square(hs[-1] - y_train).sum()
        losses.append(loss.item())
        grad = 2.0 * (hs[-1] - y_train)
        for j in reversed(range(len(ws))):
            grad_w = hs[j].T.dot(grad)
            grad = grad.dot(ws[j].T)
            ws[j] -= grad_w * lr
    return x_train, W, y_train, losses, ws


def seed_torch_script(kind, epochs):
    """The seed's steps 4 (kind='autograd'), 6 ('adam') and 7 ('sgd'), verbatim."""
    torch.manual_seed(1)
    x_train = torch.randn(1000, 10)
    W = torch.randint(0, 20, size=(10, 2), dtype=torch.float32)
    y_train = x_train.mm(W)
    losses = []
    if kind == "autograd":
        w1 = torch.randn(10, 5, requires_grad=True)
        w2 = torch.randn(5, 2, requires_grad=True)
        for _ in range(epochs):
            loss = (x_train.mm(w1).mm(w2) - y_train).pow(2).sum()
            losses.append(loss.item())
            loss.backward()
            with torch.no_grad():
                w1 -= 1e-5 * w1.grad
                w2 -= 1e-5 * w2.grad
                w1.grad.zero_()
                w2.grad.zero_()
        return x_train, W, losses
    model = torch.nn.Sequential(torch.nn.Linear(10, 5, bias=False), torch.nn.Linear(5, 2, bias=False))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    opt = (torch.optim.Adam(model.parameters(), lr=0.1) if kind == "adam"
           else torch.optim.SGD(model.parameters(), lr=1e-5))
    for _ in range(epochs):
        loss = loss_fn(model(x_train), y_train)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return x_train, W, losses


def test_seed_data_is_the_seeds_recipe(seed_data):
    x, W, y, _, _ = seed_numpy_script((10, 2), 1e-5, 0)
    assert np.array_equal(seed_data.X, x) and np.array_equal(seed_data.Y, y)
    assert np.array_equal(seed_data.W_true, W)
    assert seed_data.X.dtype == np.float32 and seed_data.Y.dtype == np.float32


def test_seed_torch_data_is_the_seeds_recipe():
    x, W, _ = seed_torch_script("autograd", 0)
    ds = seed_dataset("torch")
    assert np.array_equal(ds.X, x.numpy()) and np.array_equal(ds.W_true, W.numpy())
    assert np.array_equal(ds.Y, x.mm(W).numpy())


@pytest.mark.parametrize("widths", [(10, 2), (10, 1, 2), (10, 5, 2)])
def test_numpy_engine_is_bit_identical_to_the_seed(seed_data, widths):
    *_, losses, ws = seed_numpy_script(widths, 1e-5, 60)
    config = TrainConfig(widths=widths, lr=1e-5, epochs=60, tol=0.0, stall_rtol=0.0)
    r = fit(seed_data, config, factors=seed_factors(widths))
    assert r.history[:60].tolist() == losses
    for a, b in zip(r.factors, ws):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["autograd", "sgd", "adam"])
def test_torch_engines_are_bit_identical_to_the_seed(kind):
    _, _, losses = seed_torch_script(kind, 30)
    engine, init = ("autograd", "normal") if kind == "autograd" else ("module", "torch")
    config = TrainConfig(widths=(10, 5, 2), engine=engine, dtype="float32", epochs=30, tol=0.0,
                         stall_rtol=0.0, optimizer="adam" if kind == "adam" else "sgd",
                         lr=0.1 if kind == "adam" else 1e-5)
    r = fit(seed_dataset("torch"), config, factors=seed_factors((10, 5, 2), "torch", init))
    assert r.history[:30].tolist() == losses


def test_seed_log_lines(seed_data):
    lines = []
    fit(seed_data, TrainConfig(widths=(10, 2), epochs=750), factors=seed_factors((10, 2)), log=lines.append)
    assert lines[0] == "Epoch [10/750], Loss: 1149920.9260"
    assert all(line.startswith("Epoch [") and "/750], Loss: " in line for line in lines)


def test_direct_gd_reaches_zero_within_the_seeds_epochs(seed_data):
    r = fit(seed_data, TrainConfig(widths=(10, 2), epochs=750), factors=seed_factors((10, 2)))
    assert r.outcome == "converged" and 550 < r.epochs_to_tol <= 700
    assert np.abs(r.end_to_end - seed_data.W_true).max() < 1e-3  # "w1 is very close to W"


def test_width_one_stalls_above_a_floor_width_five_converges(seed_data):
    narrow = fit(seed_data, TrainConfig(widths=(10, 1, 2), epochs=700), factors=seed_factors((10, 1, 2)))
    assert narrow.outcome == "stalled"
    assert narrow.best_loss > 2.4e5  # far above zero: a rank-1 product cannot fit a rank-2 map
    wide = fit(seed_data, TrainConfig(widths=(10, 5, 2), epochs=700), factors=seed_factors((10, 5, 2)))
    assert wide.outcome == "converged"


def test_large_lr_diverges_with_a_clear_message_and_no_nan_in_the_log(seed_data):
    lines = []
    config = TrainConfig(widths=(10, 1, 2), lr=0.01, epochs=700, log_every=1)
    r = fit(seed_data, config, factors=seed_factors((10, 1, 2)), log=lines.append)
    assert r.outcome == "diverged"
    assert "diverged at epoch 1" in r.message and "lr=0.01" in r.message
    assert not any("nan" in line.lower() or "inf" in line.lower() for line in lines)
    assert np.all(np.isfinite(r.history)) and all(np.isfinite(W).all() for W in r.factors)
