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


def same_runs(expected, actual, rtol=1e-9, factor_rtol=1e-8, factor_atol=1e-12):
    """Assert two lists of results took the same course: outcome, epochs and epochs to tol
    equal, histories to `rtol`, final factors to `factor_rtol` (and `factor_atol` of their scale)."""
    for a, b in zip(expected, actual, strict=True):
        assert (a.outcome, a.epochs, a.epochs_to_tol) == (b.outcome, b.epochs, b.epochs_to_tol), a.message
        np.testing.assert_allclose(b.history, a.history, rtol=rtol, atol=0)
        for Wa, Wb in zip(a.factors, b.factors):
            np.testing.assert_allclose(Wb, Wa, rtol=factor_rtol, atol=factor_atol * np.abs(Wa).max())
        assert b.seconds > 0


def same_histories(expected, actual, rtol=1e-12):
    """Assert two lists of results end the same way along the same losses (a fallback's check)."""
    for a, b in zip(expected, actual, strict=True):
        assert a.outcome == b.outcome
        np.testing.assert_allclose(b.history, a.history, rtol=rtol)


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
