"""`linlab reproduce`: the seed's programs to the printed digit, the answers against theory,
the report folder, and the report in a browser."""

import contextlib
import io

import numpy as np
import pytest
import torch
from conftest import run_cli

# ---- the seed's programs, as the post wrote them (each prints its own lines) ----


def seed_numpy_program(widths, lr, num_epochs):
    """Steps 1-3: np.random.seed(1), hand-written gradients (the post's code, any depth 1-2)."""
    np.random.seed(1)
    x_train = np.random.randn(1000, 10).astype(np.float32)
    W = np.random.randint(0, 20, size=(10, 2))
    y_train = (x_train.dot(W)).astype(np.float32)
    if len(widths) == 2:
        w1 = np.random.randn(10, 2)
        for epoch in range(num_epochs):
            y_pred = x_train.dot(w1)
            loss = np.square(y_pred - y_train).sum()
            if (epoch + 1) % 10 == 0:
                print('Epoch [{}/{}], Loss: {:.4f}'.format(epoch + 1, num_epochs, loss.item()))
            grad_y_pred = 2.0 * (y_pred - y_train)
            grad_w1 = x_train.T.dot(grad_y_pred)
            w1 -= grad_w1 * lr
        return
    w1 = np.random.randn(10, widths[1])
    w2 = np.random.randn(widths[1], 2)
    for epoch in range(num_epochs):
        h = x_train.dot(w1)
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y_train).sum()
        if (epoch + 1) % 10 == 0:
            print('Epoch [{}/{}], Loss: {:.4f}'.format(epoch + 1, num_epochs, loss.item()))
        grad_y_pred = 2.0 * (y_pred - y_train)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x_train.T.dot(grad_h)
        w1 -= grad_w1 * lr
        w2 -= grad_w2 * lr


def seed_torch_data():
    torch.manual_seed(1)
    x_train = torch.randn(1000, 10)
    W = torch.randint(0, 20, size=(10, 2), dtype=torch.float32)
    return x_train, x_train.mm(W)


def seed_autograd_program():
    """Step 4: raw tensors, backward(), a manual update under no_grad."""
    x_train, y_train = seed_torch_data()
    w1 = torch.randn(10, 5, requires_grad=True)
    w2 = torch.randn(5, 2, requires_grad=True)
    for epoch in range(700):
        h = x_train.mm(w1)
        y_pred = h.mm(w2)
        loss = (y_pred - y_train).pow(2).sum()
        if (epoch + 1) % 10 == 0:
            print('Epoch [{}/{}], Loss: {:.4f}'.format(epoch + 1, 700, loss.item()))
        loss.backward()
        with torch.no_grad():
            w1 -= 1e-5 * w1.grad
            w2 -= 1e-5 * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()


class TwoLayerNet(torch.nn.Module):
    """Step 7's own module."""

    def __init__(self, input_size, H, output_size):
        super().__init__()
        self.linear1 = torch.nn.Linear(input_size, H, bias=False)
        self.linear2 = torch.nn.Linear(H, output_size, bias=False)

    def forward(self, x):
        return self.linear2(self.linear1(x))


def seed_module_program(kind):
    """Steps 5 ('manual'), 6 ('adam') and 7 ('custom'); returns the model."""
    x_train, y_train = seed_torch_data()
    if kind == "custom":
        model = TwoLayerNet(10, 5, 2)
    else:
        model = torch.nn.Sequential(torch.nn.Linear(10, 5, bias=False), torch.nn.Linear(5, 2, bias=False))
    loss_fn = torch.nn.MSELoss(reduction='sum')
    optimizer = None
    if kind == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-1)
    elif kind == "custom":
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-5)
    for epoch in range(700):
        y_pred = model(x_train)
        loss = loss_fn(y_pred, y_train)
        if (epoch + 1) % 10 == 0:
            print('Epoch [{}/{}], Loss: {:.4f}'.format(epoch + 1, 700, loss.item()))
        if optimizer is None:
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= 1e-5 * param.grad
        else:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


SEED_PROGRAMS = {
    "numpy-direct": lambda: seed_numpy_program((10, 2), 1e-5, 750),
    "numpy-width1-small-lr": lambda: seed_numpy_program((10, 1, 2), 1e-5, 700),
    "numpy-width1-large-lr": lambda: seed_numpy_program((10, 1, 2), 1e-2, 700),
    "numpy-width5": lambda: seed_numpy_program((10, 5, 2), 1e-5, 700),
    "autograd": seed_autograd_program,
    "sequential": lambda: seed_module_program("manual"),
    "adam": lambda: seed_module_program("adam"),
    "custom-module": lambda: seed_module_program("custom"),
}


def printed(program):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), np.errstate(over="ignore", invalid="ignore"):
        result = program()
    return out.getvalue().splitlines(), result


# ---- one `linlab reproduce --fast` for the whole module ----


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # speed only: two threads fighting over tiny tensors on a busy machine run 20x slower;
    # the printed lines are the same with any thread count (checked with 1 and 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "report"
    result = run_cli("reproduce", "--fast", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.stdout


def program_lines(stdout: str) -> dict[str, list[str]]:
    """The log lines printed under each program's header, by program name."""
    blocks, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("== step "):
            name = line.rsplit("[", 1)[1].rstrip("] =")
            blocks[name] = []
        elif name is not None and line.startswith("Epoch ["):
            blocks[name].append(line)
    return blocks


@pytest.mark.parametrize("name", list(SEED_PROGRAMS))
def test_every_seed_program_prints_the_seeds_lines_to_the_digit(reproduced, name):
    expected, _ = printed(SEED_PROGRAMS[name])
    assert len(expected) in (70, 75)
    assert program_lines(reproduced[1])[name] == expected


def test_the_seeds_checkpoint_loads_into_its_own_module(reproduced):
    out, _ = reproduced
    _, model = printed(SEED_PROGRAMS["custom-module"])
    mine = TwoLayerNet(10, 5, 2)
    mine.load_state_dict(torch.load(out / "model.ckpt", weights_only=True))
    for a, b in zip(mine.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
