"""`linlab reproduce`: the seed's programs to the printed digit, the answers against theory,
the report folder, and the report in a browser."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import run_cli

from linlab import seed_factors
from linlab.stats import Stats
from linlab.theory import epochs_to_tol, lr_bounds, rank_floor, stability_lr

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


# ---- the answers against theory ----


@pytest.fixture(scope="module")
def answers(reproduced):
    return json.loads((reproduced[0] / "results.json").read_text())["answers"]


def test_the_rank_floor_answer_is_theorys_and_the_seeds_run_ends_on_it(answers, seed_data):
    a = answers["rank_floor"]
    floor = rank_floor(seed_data, (10, 1, 2))
    assert a["floor_loss"] == pytest.approx(floor.loss, rel=1e-12) and a["width_needed"] == 2
    assert a["run_outcome"] == "stalled" and abs(a["run_gap"]) < 1e-9  # the printed 248784.9133
    assert a["width5_epochs_to_tol"] == 36 and 300 < a["width5_epochs_at_1e-6"] < 450  # the post: "about 420"


def test_the_stability_answer_brackets_the_bounds(answers, seed_data):
    a = answers["stability"]
    assert a["direct_bound"] == pytest.approx(2 / lr_bounds(seed_data).lam_max, rel=1e-12)
    assert a["direct_below"]["outcome"] == "converged" and a["direct_above"]["outcome"] == "diverged"
    bound = stability_lr(Stats.of(seed_data.X, seed_data.Y), seed_factors((10, 1, 2)))
    assert a["width1_bound"] == pytest.approx(bound, rel=1e-6)
    assert a["width1_below"]["outcome"] == "stalled" and a["width1_above"]["outcome"] == "diverged"
    assert a["seed_lr_over_bound"] > 100 and a["seed_first_nonfinite_line"] == "Epoch [10/700], Loss: nan"


def test_the_fewer_iterations_answer_is_the_spectral_forecast_and_runs_to_it(answers, seed_data):
    a = answers["fewer_iterations"]
    b = lr_bounds(seed_data)
    W0 = seed_factors((10, 2))[0]
    assert a["optimal_lr"] == pytest.approx(b.optimal_lr, rel=1e-12)
    assert a["forecast_epochs"] == epochs_to_tol(seed_data, W0, b.optimal_lr, 1e-4) == a["run_epochs"]
    assert a["seed_run_epochs"] == epochs_to_tol(seed_data, W0, 1e-5, 1e-4)
    assert a["momentum_run_epochs"] <= a["run_epochs"] < a["seed_run_epochs"] / 50


def test_the_width_sweep_compares_each_width_at_its_best_lr(answers, reproduced):
    sgd = answers["scaling"]["sgd"]
    assert [e["width"] for e in sgd] == [1, 2, 3, 5, 10, 20, 50, 100, 200]
    assert sgd[0]["best"]["epochs_median"] is None  # width 1: the rank floor at every lr
    assert all(e["best"]["epochs_median"] is not None for e in sgd[1:])
    assert all(e["best"]["epochs_min"] <= e["best"]["epochs_median"] <= e["best"]["epochs_max"] for e in sgd[1:])
    sharp = [e["sharpness"] for e in sgd]
    assert sharp == sorted(sharp)  # the factors' scale raises the curvature with the width
    table = pq.read_table(reproduced[0] / "results.parquet")
    assert set(table.column("optimizer").to_pylist()) == {"sgd", "adam"}
    assert sorted({int(w.split(",")[1]) for w in table.column("widths").to_pylist()}) == [e["width"] for e in sgd]


def test_condensing_keeps_the_loss_and_lands_on_the_rank_of_the_targets(answers, seed_data):
    c = answers["condense"]
    assert c["width"] == 2 and c["widths"] == [10, 2, 2]
    assert c["loss"] <= c["original_loss"] + 1e-4
    assert c["losses"][0] == pytest.approx(rank_floor(seed_data, 1).loss, rel=1e-3)  # rank 1: the floor
    assert c["balancedness"] < 1e-8


# ---- the report ----


def test_the_report_folder_holds_every_plot_and_a_self_contained_page(reproduced):
    out, stdout = reproduced
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["costs.png", "epochs_vs_width.png", "loss_curves.png", "outcome_map.png",
                    "singular_values.png"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "http://" not in page and "https://" not in page and 'src="' + "data:" in page
    md = (out / "report.md").read_text()
    assert all(f"({name})" in md for name in pngs)
    assert f"report: {out / 'report.html'}" in stdout
    explorer = (out / "explorer.html").read_text(encoding="utf-8")
    assert '<a href="explorer.html"' in page and "uPlot" in explorer and "LINLAB_EXPLORER_DATA" in explorer


def test_the_report_opens_in_a_browser_with_every_image_decoded(reproduced, browser_page, tmp_path):
    out, _ = reproduced
    browser_page.goto((out / "report.html").as_uri())
    widths = browser_page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 5 and all(w > 0 for w in widths)
    assert browser_page.console_errors == []
    browser_page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    browser_page.click("a[href='explorer.html']")  # the seed data's explorer, beside the report
    drawn = "window.linlabExplorer !== undefined && (window.linlabExplorer.state().history || []).length > 0"
    browser_page.wait_for_function(drawn)
    assert browser_page.url.endswith("/explorer.html") and browser_page.console_errors == []


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = run_cli("reproduce", "--out", target)
    assert result.exit_code == 2 and "is a file" in result.output and "Traceback" not in result.output
    assert target.read_text() == "keep me"


# ---- `linlab report` on the sweep table reproduce wrote ----


def test_report_makes_the_plots_of_any_sweep_table(reproduced, tmp_path):
    out, _ = reproduced
    result = run_cli("report", out / "results.parquet", "--out", tmp_path / "rep", "--json")
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == ["costs.png", "epochs_vs_params.png", "loss_curves.png", "outcome_map_1.png",
                    "outcome_map_2.png"]  # one outcome map per optimizer
    assert all(open(tmp_path / "rep" / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for name in pngs)
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs) and files["report"].endswith("report.html")
    assert "| 10,200,2 | sgd |" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("a,b\n1,2\n", "sweep")])
def test_report_refuses_what_is_not_a_sweep_table(tmp_path, content, message):
    table = tmp_path / "table.parquet"
    if content is not None:
        table.write_text(content)
    result = run_cli("report", table, "--out", tmp_path / "rep")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_help_of_the_new_commands_does_not_import_torch():
    code = ("import sys\nfrom linlab.cli import main\n"
            "for name in ('reproduce', 'report', 'compress'):\n"
            "    main([name, '--help'], standalone_mode=False)\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr


def test_the_progress_bar_names_the_running_step():
    from rich.console import Console

    from linlab.cli.reproduce import _Steps

    out = io.StringIO()
    steps = _Steps(3, Console(file=out, force_terminal=True, width=100))
    steps("step 2: numpy-direct")
    steps("4: the width sweep (SGD and Adam)")
    assert steps.progress.tasks[0].description == "4: the width sweep (SGD and Adam)"
    assert steps.progress.tasks[0].completed == 1
    steps.close()
    assert "step 2: numpy-direct" in out.getvalue() or "width sweep" in out.getvalue()
