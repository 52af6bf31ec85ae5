"""The explorer page without a browser: the statistics it embeds, its options, the command."""

import json
import re

import numpy as np
import pytest
from conftest import run_cli

from linlab import TrainConfig, fit, synthetic
from linlab.data import Dataset
from linlab.diagnose import diagnose
from linlab.explore import explorer_html, explorer_stats, write_explorer
from linlab.theory import auto_lr, hessian_spectrum, rank_floor


def embedded(html: str) -> dict:
    """The JSON the page carries (statistics, starting controls, rules)."""
    text = re.search(r"const LINLAB_EXPLORER_DATA = (.*?);</script>", html, re.S).group(1)
    return json.loads(text.replace("<\\/", "</"))


@pytest.fixture(scope="module")
def seed_stats(seed_data):
    return explorer_stats(seed_data)


@pytest.mark.parametrize("spec", [dict(n=300, d=6, k=3, rank=2, noise=0.1), dict(n=40, d=5, k=1, noise=0.0)])
def test_the_decomposition_gives_the_loss_and_gradient_of_the_rows(spec, rng):
    # ‖XP − Y‖² = Σ λ_i ‖(VᵀΔ)_i‖² + 2tr(Δᵀr) + L*, ∂/∂P = 2(VΛVᵀΔ + r): what the page computes
    data = synthetic(**spec, seed=3)
    s = explorer_stats(data)
    X, Y = data.X.astype(np.float64), data.Y.astype(np.float64)
    lam, V, P0, r = (np.asarray(s[key]) for key in ("lam", "V", "P_ls", "r"))
    np.testing.assert_allclose(V.T @ V, np.eye(s["d"]), atol=1e-12)
    for P in (P0 + rng.standard_normal(P0.shape), P0 + 1e-4 * rng.standard_normal(P0.shape)):
        D = P - P0
        Z = V.T @ D
        loss = float(lam @ np.sum(Z * Z, axis=1) + 2 * np.sum(D * r) + s["L_star"])
        R = X @ P - Y
        assert loss == pytest.approx(float(np.sum(R * R)), rel=1e-10)
        np.testing.assert_allclose(2 * (V @ (lam[:, None] * Z) + r), 2 * X.T @ R, rtol=1e-9, atol=1e-9)


def test_floors_and_bounds_are_linlabs(seed_data, seed_stats):
    for reduction in ("sum", "mean"):
        floors, lrs = seed_stats["floors"][reduction], seed_stats["lrs"][reduction]
        assert floors["loss"][0] == rank_floor(seed_data, 1, reduction=reduction).loss
        assert floors["fitted_rank"] == 2
        top = hessian_spectrum(seed_data, reduction=reduction).max()
        assert lrs["sgd"]["stable"] == pytest.approx(2 / top, rel=1e-15)
        assert lrs["momentum"]["stable"] == pytest.approx(2 * 1.9 / top, rel=1e-15)
        config = TrainConfig(widths=(10, 2), reduction=reduction, momentum=0.9)
        assert lrs["momentum"]["optimal"] == auto_lr(seed_data, config, None)
    assert seed_stats["lrs"]["sum"]["sgd"]["optimal"] == pytest.approx(4.95e-4, rel=1e-3)  # the README's figure
    true_sv = np.linalg.svd(seed_data.W_true, compute_uv=False)
    np.testing.assert_allclose(sorted(seed_stats["ls_sv"]), sorted(true_sv), rtol=1e-6)


def test_the_numbers_diagnose_names_for_slow_runs_are_embedded(seed_stats):
    # a missing bias and the conditioning: L* with an intercept and κ before and after standardizing
    base = synthetic(n=200, d=4, k=2, noise=1.0, condition=300, seed=1)
    data = Dataset(base.X, base.Y + 3.0, name="offset")
    stats = explorer_stats(data)
    for reduction in ("sum", "mean"):
        result = fit(data, TrainConfig(widths=(4, 2), lr=1e-6 if reduction == "sum" else 1e-3, epochs=20,
                                       reduction=reduction))
        numbers = diagnose(result, data).numbers
        assert stats["floors"][reduction]["ls_with_bias"] == numbers["ls_loss_with_bias"]
        assert stats["condition"][reduction] == {"kappa": numbers["condition_number"],
                                                 "standardized": numbers["condition_number_standardized"]}
    assert stats["condition"]["sum"]["kappa"] == pytest.approx(327, rel=1e-2)
    assert seed_stats["condition"]["sum"] == {"kappa": pytest.approx(1.458, rel=1e-3), "standardized": None}


def test_the_page_embeds_statistics_never_rows_and_loads_nothing(seed_data):
    html = explorer_html(seed_data)
    payload = embedded(html)

    def longest(value):
        if isinstance(value, list):
            return max([len(value)] + [longest(v) for v in value])
        if isinstance(value, dict):
            return max([0] + [longest(v) for v in value.values()])
        return 0

    assert longest(payload) <= seed_data.n_features < seed_data.n_samples  # nothing is n long
    assert payload["stats"]["n"] == 1000 and payload["controls"]["lr"] == 1e-5
    assert "<script src" not in html and "<link" not in html  # no file, no network
    assert html.count("<script>") == 5 and html.count("<style>") == 2


@pytest.mark.parametrize("options, message", [
    (dict(depth=5), "depth=5 is not valid for the explorer; give an integer from 1 to 4"),
    (dict(width=41), "give an integer from 1 to 40 (4×max(d, k))"),
    (dict(lr=0.0), "lr=0.0 is not valid"),
    (dict(optimizer="rmsprop"), "give one of sgd, momentum, adam"),
    (dict(init_scale=100.0), "init_scale=100.0 is not valid for the explorer; give a number from 0.001 to 10"),
    (dict(epochs=True), "epochs=True is not valid"),
    (dict(colour="red"), "unknown explorer option(s) colour"),
])
def test_bad_options_are_refused_by_name(seed_data, tmp_path, options, message):
    with pytest.raises(ValueError) as err:
        write_explorer(seed_data, tmp_path / "page.html", **options)
    assert message in str(err.value)
    assert not (tmp_path / "page.html").exists()


def test_the_page_inlines_the_vendored_chart_library_and_ships_its_licence(seed_data):
    from importlib import resources

    vendor = resources.files("linlab.explore").joinpath("vendor")
    script = vendor.joinpath("uPlot.iife.min.js").read_text(encoding="utf-8")
    html = explorer_html(seed_data)
    assert script.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */") and script in html
    assert vendor.joinpath("uPlot.min.css").read_text(encoding="utf-8") in html
    assert "The MIT License" in vendor.joinpath("uPlot.LICENSE").read_text(encoding="utf-8")


def test_cli_writes_the_page_of_the_training_rows(in_tmp):
    result = run_cli("explore", "--data", "synthetic:n=500,d=4,k=3,rank=2", "--val-fraction", "0.2",
                     "--depth", "3", "--optimizer", "adam", "--lr", "0.01", "--out", "deep.html")
    assert result.exit_code == 0, result.output
    assert "wrote deep.html" in result.output and "statistics of 400 rows" in result.output
    payload = embedded((in_tmp / "deep.html").read_text(encoding="utf-8"))
    assert payload["stats"]["n"] == 400 and payload["stats"]["d"] == 4
    assert payload["controls"] == {"depth": 3, "width": 4, "lr": 0.01, "init": "normal", "init_scale": 1.0,
                                   "optimizer": "adam", "epochs": 1000, "reduction": "sum", "seed": 0}


@pytest.mark.parametrize("args, message", [
    (["--out", "."], "is a folder"),
    (["--width", "9"], "width=9 is not valid for the explorer; give an integer from 1 to 8"),
    (["--lr", "-1"], "must be a number > 0"),
    (["--data", "missing.csv"], "no such file"),
    (["--epochs", "5"], "5 is not in the range"),
])
def test_cli_bad_input_exits_2_without_a_traceback(in_tmp, args, message):
    result = run_cli("explore", "--data", "synthetic:n=50,d=2,k=2", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(in_tmp.glob("*.html"))


def test_open_hands_the_file_url_to_the_browser(in_tmp, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    result = run_cli("explore", "--data", "synthetic:n=50,d=2,k=2", "--depth", "1", "--open")
    assert result.exit_code == 0, result.output
    assert opened == [(in_tmp / "explorer.html").resolve().as_uri()]
