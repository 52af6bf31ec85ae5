import os

import numpy as np
import pytest
from hypothesis import settings

from linlab.data import seed_dataset

# CI explores the same examples on every run (no flaky failures, no example database);
# locally hypothesis keeps searching new ones
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def seed_data():
    return seed_dataset("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside its own temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*args):
    """Invoke ``linlab ARGS...`` in-process and return click's result."""
    from click.testing import CliRunner

    from linlab.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def cli_json(*args) -> dict:
    """Invoke ``linlab ARGS... --json``, check it succeeded and return what it printed."""
    import json

    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rounding_rtol(history, rows: int, dtype=np.float64, ulps: float = 64.0) -> np.ndarray:
    """Per-epoch relative tolerance between two computations of one run that differ only in
    rounding (summation order, chunking, fused multiply-adds, another library's matmul).

    Each epoch rounds sums of up to `rows` terms: `ulps` units in the last place times
    sqrt(rows) (rounding errors add like a random walk). Errors made at every epoch so far add
    up the same way (sqrt(t + 1)), and the measured course of the loss amplifies them:
    - by the product of its rises so far (each epoch where the loss grows, by the factor it
      grows: on the way to divergence this is the loss over its lowest value; at the edge of
      stability, where the loss swings up and down, it compounds as the rounding does);
    - on the way to zero loss, by sqrt(highest loss so far / loss): the factors' rounding is
      relative to their own scale, while the loss, ‖XP - Y‖², is relative to a residual that
      shrinks (δL/L ≈ 2‖X δP‖/‖XP - Y‖).
    Where that reaches 1 the two courses are no longer defined to any digit and nothing is
    compared. Nothing here depends on the CPU that ran it.
    """
    h = np.asarray(history, dtype=np.float64)
    if h.size == 0:
        return h
    rises = np.cumprod(np.maximum(1.0, np.concatenate([[1.0], h[1:] / h[:-1]])))
    amplification = rises * np.sqrt(np.maximum.accumulate(h) / h)
    epochs = np.arange(1, h.size + 1)
    return ulps * np.finfo(dtype).eps * np.sqrt(rows) * np.sqrt(epochs) * amplification


def same_history(a, b, rows: int, dtype=np.float64, ulps: float = 64.0):
    """Assert history `b` equals the reference `a` to rounding (see `rounding_rtol`) and return
    the final epoch's tolerance, which bounds the final factors."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    rtol = rounding_rtol(a, rows, dtype, ulps)
    err = np.abs(b - a) / np.maximum(np.abs(a), np.finfo(np.float64).tiny)
    defined = rtol < 1.0
    worst = int(np.argmax(np.where(defined, err / rtol, 0.0))) if a.size else 0
    assert np.all(err[defined] <= rtol[defined]), (
        f"epoch {worst}: relative error {err[worst]:.3g} > {rtol[worst]:.3g}")
    return float(rtol[-1]) if a.size else ulps * np.finfo(dtype).eps * np.sqrt(rows)


def same_runs(expected, actual, rows: int, dtype=np.float64, ulps: float = 64.0):
    """Assert two lists of results took the same course: outcome, epochs and epochs to tol
    equal, histories and final factors equal to rounding (`rounding_rtol` for data of `rows` rows)."""
    for a, b in zip(expected, actual, strict=True):
        assert (a.outcome, a.epochs, a.epochs_to_tol) == (b.outcome, b.epochs, b.epochs_to_tol), a.message
        rtol = same_history(a.history, b.history, rows, dtype, ulps)
        for Wa, Wb in zip(a.factors, b.factors, strict=True):
            assert rtol >= 1.0 or np.max(np.abs(Wb - Wa), initial=0.0) <= rtol * np.abs(Wa).max()
        assert b.seconds > 0


def same_histories(expected, actual, rows: int):
    """Assert two lists of results end the same way along the same losses (a fallback's check)."""
    for a, b in zip(expected, actual, strict=True):
        assert a.outcome == b.outcome
        same_history(a.history, b.history, rows)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page():
    """A page in headless Debian Chromium (through playwright), with its console errors collected
    in ``page.console_errors``. Skipped where Chromium or playwright is missing, except under CI."""
    if not os.path.exists(CHROMIUM) or not _has_playwright():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {CHROMIUM} and playwright under CI (.ci/run installs both)")
        pytest.skip(f"needs {CHROMIUM} and playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        try:
            yield page
        finally:
            browser.close()


def _has_playwright() -> bool:
    import importlib.util

    return importlib.util.find_spec("playwright") is not None
