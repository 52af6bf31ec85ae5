"""The explorer page in headless Chromium: its training agrees with linlab's, its controls
re-run it, and its outcome is linlab's diagnosis word for word.

Tolerance of the agreement: the page trains on the statistics (the loss as
Σλ_i‖(VᵀΔ)_i‖² + 2tr(Δᵀr) + L*, linlab's batched decomposition), linlab's numpy engine on
the rows; the two differ by rounding, about eps·‖Y‖·‖XP − Y‖ in the loss and eps relative
in each step. Neither form cancels near the optimum (the statistics path has no ‖Y‖² − …
term), so the relative difference stays near 1e-11 down to the tolerance 1e-4 on the seed
data (L* = 1e-9, ‖Y‖² = 1.7e6); 1e-9 leaves a factor 100 for 500 epochs of accumulation.
"""

import numpy as np
import pytest

from linlab import TrainConfig, fit, synthetic
from linlab.data import Dataset
from linlab.diagnose import diagnose
from linlab.explore import MOMENTUM, write_explorer

# (controls, what linlab's loop says, the verdict): 500 epochs each unless said otherwise (the
# epochs stay set for the cases after), none reaches tol before the end except where the outcome
# says so
CASES = [
    (dict(depth=1, optimizer="sgd", lr=1e-5), "max_epochs", "too_slow"),
    (dict(depth=2, width=10, optimizer="sgd", lr=1e-7), "max_epochs", "too_slow"),
    (dict(depth=3, width=4, optimizer="sgd", lr=1e-8, init="balanced", init_scale=1.0), "max_epochs", "too_slow"),
    (dict(depth=1, optimizer="adam", lr=0.01), "max_epochs", "still_improving"),
    (dict(depth=2, width=5, optimizer="adam", lr=1e-3, init="orthogonal"), "max_epochs", "still_improving"),
    (dict(depth=3, width=10, optimizer="adam", lr=1e-3, init_scale=0.1), "max_epochs", "still_improving"),
    (dict(depth=2, width=10, optimizer="momentum", lr=1e-8), "max_epochs", "too_slow"),
    (dict(depth=1, optimizer="sgd", lr=8.91e-4), "diverged", "diverged"),  # 1.07x the bound 2/λmax
    (dict(depth=2, width=10, optimizer="sgd", lr=1e-4), "diverged", "diverged"),
    (dict(depth=2, width=1, optimizer="sgd", lr=1e-5), "stalled", "stalled_floor"),  # the rank-1 floor
    (dict(depth=1, optimizer="adam", lr=1.0), "converged", "converged_optimum"),
    # 1.02x the bound 8.34e-4 (the slider's nearest lr above it): the top mode grows by
    # |1 − lr·λmax| = 1.04 an epoch while the rest decays; by epoch 110 the loss, stalled, is 77x
    # its start, short of diverge_factor: a rising loss is divergence
    (dict(depth=1, optimizer="sgd", lr=8.51e-4), "stalled", "diverged"),
    (dict(depth=1, optimizer="sgd", lr=8.51e-4, epochs=20), "max_epochs", "unstable"),  # still below its start
    (dict(depth=1, optimizer="momentum", lr=1.62e-3), "max_epochs", "diverged"),  # 1.02x 2(1+μ)/λmax, risen
]

# noisy targets with an offset the page's bias-free model cannot fit, and κ(XᵀX) = 327:
# L* = 3807.6 (399.9 with an intercept), so 1e-6·L* > tol and the gap to L* is named
OFFSET_CASES = [
    (dict(depth=1, optimizer="sgd", lr=1e-5), "max_epochs", "still_improving"),  # κ and the bias named
    (dict(depth=1, optimizer="sgd", lr=1e-6), "max_epochs", "too_slow"),
    (dict(depth=2, width=4, optimizer="sgd", lr=1e-7), "max_epochs", "too_slow"),
    (dict(depth=1, optimizer="momentum", lr=3.09e-5), "stalled", "converged_optimum"),  # within tol of L*
    (dict(depth=1, optimizer="sgd", lr=8.91e-6, epochs=2000), "stalled", "stalled_other"),  # κ: stalls 1e-6 above
    (dict(depth=1, optimizer="adam", lr=0.1), "stalled", "converged_optimum"),  # 1.1e-4 above L*
    (dict(depth=1, optimizer="sgd", lr=1.74e-5, epochs=100), "max_epochs", "diverged"),  # 1.003x the bound
]


def offset_data():
    base = synthetic(n=200, d=4, k=2, noise=1.0, condition=300, seed=1)
    return Dataset(base.X, base.Y + 3.0, name="offset")


@pytest.fixture(scope="module")
def explorer(tmp_path_factory, seed_data):
    return write_explorer(seed_data, tmp_path_factory.mktemp("explore") / "explorer.html")


def open_page(page, path):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(path.as_uri())
    page.wait_for_function("window.linlabExplorer && window.linlabExplorer.state().runs > 0", timeout=120_000)
    return page


def set_through_dom(page, controls: dict) -> dict:
    """Set controls as a user would (values and input/change events), wait for the redraw."""
    before = page.evaluate("window.linlabExplorer.state().runs")
    for name, value in controls.items():
        if name in ("init", "optimizer", "reduction"):
            page.select_option(f"#{name}", value)
            continue
        shown = np.log10(value) if name in ("lr", "init_scale") else value
        page.eval_on_selector(f"#{name}", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                              str(shown))
    page.wait_for_function(f"(s => s.runs > {before} && !s.busy)(window.linlabExplorer.state())")
    return page.evaluate("window.linlabExplorer.state()")


def linlab_run(state, data):
    c = state["controls"]
    config = TrainConfig(widths=tuple(state["widths"]), lr=c["lr"], epochs=c["epochs"], reduction=c["reduction"],
                         optimizer="adam" if c["optimizer"] == "adam" else "sgd",
                         momentum=MOMENTUM if c["optimizer"] == "momentum" else 0.0)
    return fit(data, config, factors=[np.array(W) for W in state["initial"]])


def check_cases(page, cases, data):
    """Each case set through the DOM: the page's run is linlab's, its diagnosis diagnose's.

    Returns the page's messages, case by case."""
    said_all = []
    for controls, outcome, verdict in cases:
        state = set_through_dom(page, controls)
        assert state["error"] is None
        assert {k: state["controls"][k] for k in controls} == controls
        result = linlab_run(state, data)
        assert (state["outcome"], result.outcome) == (outcome, outcome), controls
        assert len(state["history"]) == len(result.history), controls  # the same stop, the same epoch
        np.testing.assert_allclose(state["history"], result.history, rtol=1e-9, atol=0, err_msg=str(controls))
        np.testing.assert_allclose(state["factors"][-1], result.factors[-1], rtol=1e-6,
                                   atol=1e-9 * np.abs(result.factors[-1]).max())
        found = diagnose(result, data)
        said = (state["verdict"], state["diagnosis"], state["advice"])
        assert said == (verdict, found.message, found.advice), controls
        said_all.append(state["diagnosis"] + " " + " ".join(state["advice"]))
    assert page.console_errors == []
    return said_all


def test_the_page_trains_as_linlab_does_and_says_what_diagnose_says(browser_page, explorer, seed_data):
    page = open_page(browser_page, explorer)
    set_through_dom(page, {"epochs": 500, "seed": 3})
    said = check_cases(page, CASES, seed_data)
    assert "the loss rose from" in said[-3] and "the loss rose from" in said[-1]
    assert "the error along the top eigenvector grows every epoch" in said[-2]


def test_the_page_names_the_gap_the_missing_bias_and_the_conditioning(browser_page, tmp_path):
    data = offset_data()
    page = open_page(browser_page, write_explorer(data, tmp_path / "offset.html"))
    set_through_dom(page, {"epochs": 500, "seed": 3})
    said = check_cases(page, OFFSET_CASES, data)
    assert "XᵀX has condition number κ = 327" in said[0] and "standardizing leaves κ at 123" in said[0]
    assert "The model has no bias" in said[1] and "L* with a bias is above tol" in said[3]
    assert "within tol=0.0001 of the least-squares optimum L* 3807.61." in said[3]
    assert "stopped improving at 3807.61 (stalled), above the least-squares optimum L* 3807.61." in said[4]
    assert "relative) above the least-squares optimum L* 3807.61." in said[5]
    assert "the loss rose from" in said[6]


def test_dragging_a_slider_reruns_the_training(browser_page, explorer, tmp_path):
    page = open_page(browser_page, explorer)
    start = page.evaluate("window.linlabExplorer.state()")
    assert (start["controls"]["depth"], start["controls"]["width"], start["word"]) == (2, 10, "converged")
    assert page.inner_text("#outcome-word").lower() == "converged"

    box = page.locator("#width").bounding_box()  # drag the width thumb to the left end: width 1
    y, x_thumb = box["y"] + box["height"] / 2, box["x"] + box["width"] * 9 / 39
    page.mouse.move(x_thumb, y)
    page.mouse.down()
    for x in np.linspace(x_thumb, box["x"] - 20, 8):
        page.mouse.move(float(x), y)
    page.mouse.up()
    page.wait_for_function("(s => s.controls.width === 1 && s.word === 'floor')(window.linlabExplorer.state())")
    floor = page.evaluate("window.linlabExplorer.state()")
    assert floor["verdict"] == "stalled_floor" and floor["history"] != start["history"]
    assert "rank-1 floor 248785" in page.inner_text("#outcome-message")

    page.focus("#lr")  # the keyboard: the lr slider to its right end, far past the bound
    page.keyboard.press("End")
    page.wait_for_function("window.linlabExplorer.state().word === 'diverged'")
    blown = page.evaluate("window.linlabExplorer.state()")
    assert blown["controls"]["lr"] > 1e-3 and len(blown["history"]) < len(floor["history"])
    assert page.inner_text("#outcome-word").lower() == "diverged"
    assert "the stability bound" in page.inner_text("#outcome-message")
    page.wait_for_timeout(200)
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").stat().st_size > 20_000
    assert page.console_errors == []


@pytest.mark.parametrize("k", [1, 3])
def test_one_target_and_three_train_as_linlab_does(browser_page, tmp_path, k):
    # the page forms SGD and momentum's gradients in place for k <= 2 and makes them whole for k > 2
    data = synthetic(n=200, d=4, k=k, noise=0.1, seed=2)
    page = open_page(browser_page, write_explorer(data, tmp_path / f"k{k}.html"))
    for controls in (dict(depth=3, width=6, optimizer="sgd", lr=1e-6),
                     dict(depth=3, width=6, optimizer="momentum", lr=1e-7),
                     dict(depth=2, width=6, optimizer="adam", lr=1e-2)):
        state = set_through_dom(page, {**controls, "epochs": 300})
        result = linlab_run(state, data)
        assert state["error"] is None and len(state["history"]) == len(result.history), controls
        assert state["history"][-1] < 1e-2 * state["history"][0], controls  # runs that went somewhere
        np.testing.assert_allclose(state["history"], result.history, rtol=1e-9, atol=0, err_msg=str(controls))
    assert page.console_errors == []
