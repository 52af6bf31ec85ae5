"""Checkpoint files: round trips, safety against bad files, atomic writes, TensorBoard logs."""

import os
import pickle
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab import checkpoint as ck
from linlab._module import DeepLinear
from linlab.checkpoint import (
    CheckpointCallback,
    CheckpointError,
    NonFiniteStateError,
    checkpoint_config,
    checkpoint_params,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit
from linlab.models import end_to_end, init_factors


@pytest.fixture(scope="module")
def data():
    return synthetic(n=30, d=4, k=2, noise=0.1, seed=5)


def last_state(data, config):
    states = []
    result = fit(data, config, callbacks=[lambda e: states.append(e.state())])
    return states[-1], result


@pytest.fixture
def saved(tmp_path, data):
    config = TrainConfig(widths=(4, 3, 2), bias=True, optimizer="adam", lr=1e-2, epochs=4, tol=0.0)
    state, _ = last_state(data, config)
    path = save_checkpoint(tmp_path / "run.pt", state, config=config, data=data,
                           scaler={"mean": np.arange(4.0), "scale": np.ones(4)})
    return path, state, config


# ---------------------------------------------------------------- round trips


def test_round_trip_holds_everything(saved, data):
    path, state, config = saved
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == ck.FORMAT and ckpt["epoch"] == 4 and ckpt["linlab_version"]
    assert checkpoint_config(ckpt) == config
    assert ckpt["architecture"] == {"widths": [4, 3, 2], "bias": True}
    assert np.array_equal(ckpt["history"].numpy(), state["history"])
    assert ckpt["rng"]["loop"] == state["rng"]
    assert ckpt["data"]["name"] == data.name and ckpt["data"]["provenance"]["seed"] == 5
    assert np.array_equal(ckpt["data"]["scaler"]["mean"].numpy(), np.arange(4.0))
    factors, biases = checkpoint_params(ckpt)
    assert all(np.array_equal(a, b) for a, b in zip(factors, state["factors"], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(biases, state["biases"], strict=True))
    opt = ckpt["optimizer"]
    assert opt["type"] == "AdamState" and opt["step"] == 4
    assert np.array_equal(opt["exp_avg"][0].numpy(), state["optimizer"]["exp_avg"][0])


def matmul_slack(*terms) -> np.ndarray:
    """Two libraries' float64 products may round differently (summation order, FMA): each
    inner product of length m is within γ_m·|A||B| of the exact one, γ_m <= m·u/(1 − m·u)
    (Higham, Accuracy and Stability, §3.5). Twice that bounds the gap between two of them;
    `terms` are the (|A||B|-like magnitude, m) of each rounding step."""
    u = np.finfo(np.float64).eps / 2
    return sum(2 * m * u / (1 - m * u) * magnitude for magnitude, m in terms)


def test_plain_weights_only_load_and_deep_linear_state_dict(saved):
    path, state, _ = saved
    raw = torch.load(path, weights_only=True)  # no linlab code needed to read it
    net = DeepLinear((4, 3, 2), bias=True)
    net.load_state_dict(raw["state_dict"])
    (W1, W2), (b1, b2) = state["factors"], state["biases"]
    gap = np.abs(net.end_to_end().detach().numpy() - end_to_end(state["factors"]))
    assert np.all(gap <= matmul_slack((np.abs(W1) @ np.abs(W2), 3)))
    x = torch.randn(5, 4, dtype=torch.float64)
    expected = (x.numpy() @ W1 + b1) @ W2 + b2
    hidden = np.abs(x.numpy()) @ np.abs(W1) + np.abs(b1)  # the magnitudes each step sums
    slack = matmul_slack((hidden @ np.abs(W2), 4 + 1), (hidden @ np.abs(W2) + np.abs(b2), 3 + 1))
    assert np.all(np.abs(net(x).detach().numpy() - expected) <= slack)


def test_global_rng_states_are_restored(saved):
    path, _, _ = saved
    restore_rng_states(path)
    expected = (np.random.rand(), torch.rand(1).item(), random.random())  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    torch.manual_seed(123)
    random.seed(123)
    restore_rng_states(path)
    assert (np.random.rand(), torch.rand(1).item(), random.random()) == expected  # noqa: NPY002


@settings(max_examples=15, deadline=None)
@given(widths=st.lists(st.integers(1, 5), min_size=2, max_size=4), bias=st.booleans(), seed=st.integers(0, 99))
def test_parameters_round_trip_exactly(tmp_path_factory, widths, bias, seed):
    rng = np.random.default_rng(seed)
    factors = init_factors(tuple(widths), "normal", 1.0, seed)
    biases = [rng.standard_normal(w) for w in widths[1:]] if bias else None
    state = {"epoch": 3, "factors": factors, "biases": biases, "optimizer": None, "rng": None,
             "history": rng.random(4).tolist(), "val_history": None, "lr": 0.1}
    path = tmp_path_factory.mktemp("rt") / "p.pt"
    save_checkpoint(path, state, config=TrainConfig(widths=tuple(widths), bias=bias))
    f2, b2 = checkpoint_params(path)
    assert all(np.array_equal(a, b) for a, b in zip(f2, factors, strict=True))
    assert b2 is None if not bias else all(np.array_equal(a, b) for a, b in zip(b2, biases, strict=True))
    assert load_checkpoint(path)["history"].tolist() == state["history"]


def test_module_engine_stores_a_torch_optimizer_state(tmp_path, data):
    config = TrainConfig(widths=(4, 2), engine="module", optimizer="sgd", momentum=0.9, lr=1e-3, epochs=3)
    state, _ = last_state(data, config)
    save_checkpoint(tmp_path / "m.pt", state, config=config)
    opt = load_checkpoint(tmp_path / "m.pt")["optimizer"]
    assert set(opt) == {"state", "param_groups"} and "momentum_buffer" in opt["state"][0]


# ---------------------------------------------------------------- bad files


def expect_error(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_empty_and_folder(tmp_path):
    expect_error(tmp_path / "nope.pt", "does not exist")
    (tmp_path / "empty.pt").write_bytes(b"")
    expect_error(tmp_path / "empty.pt", "empty")
    expect_error(tmp_path, "folder")


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.9])
def test_truncated_file(saved, tmp_path, keep):
    path, _, _ = saved
    raw = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: int(len(raw) * keep)])
    expect_error(tmp_path / "cut.pt", "truncated|corrupt|not a readable")


def test_corrupt_bytes_fail_their_checksum(saved, tmp_path):
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    start = raw.index(b"data/0") + 200  # inside the first tensor's bytes
    raw[start:start + 8] = bytes(b ^ 0xFF for b in raw[start:start + 8])
    (tmp_path / "bad.pt").write_bytes(bytes(raw))
    expect_error(tmp_path / "bad.pt", "corrupt")


def test_foreign_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    expect_error(tmp_path / "notes.txt", "not a readable torch checkpoint")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    expect_error(tmp_path / "tensor.pt", "holds a Tensor")
    torch.save(DeepLinear((3, 2)).state_dict(), tmp_path / "bare.pt")
    expect_error(tmp_path / "bare.pt", "load_state_dict")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    expect_error(tmp_path / "other.pt", "format marker")


def test_newer_format_and_incomplete_files(saved, tmp_path):
    path, _, _ = saved
    obj = torch.load(path, weights_only=True)
    torch.save({**obj, "format_version": ck.FORMAT_VERSION + 1}, tmp_path / "new.pt")
    expect_error(tmp_path / "new.pt", "Upgrade linlab")
    torch.save({k: v for k, v in obj.items() if k != "optimizer"}, tmp_path / "part.pt")
    expect_error(tmp_path / "part.pt", "lacks optimizer")
    obj["state_dict"]["layers.0.weight"] = torch.zeros(5, 5)
    torch.save(obj, tmp_path / "shape.pt")
    expect_error(tmp_path / "shape.pt", "inconsistent")


@pytest.mark.parametrize("change, message", [
    (dict(architecture=None), "its architecture entry is malformed"),
    (dict(architecture={"bias": True}), "its architecture entry is malformed"),
    (dict(state_dict=[1]), "its state_dict entry is malformed"),
    (dict(config="x"), "its config entry is malformed"),
    (dict(history=[1.0]), "its history entry is malformed"),
    (dict(epoch="4"), "its epoch entry is malformed"),
    (dict(rng=None), "its rng entry is malformed"),
    (dict(data="x"), "its data entry is malformed"),
    (dict(extra="x"), "its extra entry is malformed"),
    (dict(architecture={"widths": [4, 3, 2], "bias": False}), "config .* and architecture .* disagree"),
])
def test_malformed_entries_are_named(saved, tmp_path, change, message):
    path, _, _ = saved
    torch.save({**torch.load(path, weights_only=True), **change}, tmp_path / "odd.pt")
    expect_error(tmp_path / "odd.pt", message)


def test_a_missing_bias_tensor_is_named(saved, tmp_path):
    path, _, _ = saved
    obj = torch.load(path, weights_only=True)
    del obj["state_dict"]["layers.1.bias"]
    torch.save(obj, tmp_path / "odd.pt")
    expect_error(tmp_path / "odd.pt", r"state_dict\['layers.1.bias'\] is None")


class Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["torch-zip", "raw-pickle"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    if kind == "torch-zip":
        torch.save({"format": ck.FORMAT, "payload": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    assert not marker.exists()
    expect_error(path, "refused to load")
    assert not marker.exists()


# ---------------------------------------------------------------- atomic writes


def test_non_finite_state_is_refused_and_the_good_file_kept(saved):
    path, state, config = saved
    before = path.read_bytes()
    bad = {**state, "factors": [state["factors"][0], np.full_like(state["factors"][1], np.nan)]}
    with pytest.raises(NonFiniteStateError, match=r"factors.*\[1\].*not finite"):
        save_checkpoint(path, bad, config=config)
    bad = {**state, "optimizer": {**state["optimizer"], "exp_avg_sq": [np.full(3, np.inf)]}}
    with pytest.raises(NonFiniteStateError, match="exp_avg_sq"):
        save_checkpoint(path, bad, config=config)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".run.pt.tmp-*"))


def test_callback_skips_non_finite_epochs(tmp_path, data):
    path = tmp_path / "run.pt"
    good = CheckpointCallback(path)
    fit(data, TrainConfig(widths=(4, 3, 2), lr=1e-3, epochs=3, tol=0.0), callbacks=[good])
    assert good.saved == [1, 2, 3]
    before = path.read_bytes()
    cb = CheckpointCallback(path)  # lr so large that the first update overflows to inf
    result = fit(data, TrainConfig(widths=(4, 3, 2), lr=1e308, epochs=20), callbacks=[cb])
    assert result.outcome == "diverged" and result.epochs == 0
    assert cb.saved == [] and [t for t, _ in cb.skipped] == [1] and "not finite" in cb.skipped[0][1]
    assert path.read_bytes() == before
    cb.final(result)  # the last finite state: the initial factors, kept for predict
    assert load_checkpoint(path)["epoch"] == 0 and cb.saved == [0]
    assert all(np.array_equal(a, b) for a, b in zip(checkpoint_params(path)[0], result.factors, strict=True))


def test_a_crash_during_save_keeps_the_old_file(saved, monkeypatch):
    path, state, config = saved
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, state, config=config)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".run.pt.tmp-*"))


def test_leftover_temp_files_are_cleaned(saved):
    path, state, config = saved
    leftovers = [path.parent / f".run.pt.tmp-{i}" for i in range(3)]
    for p in leftovers:
        p.write_bytes(b"partial")
    other = path.parent / ".other.pt.tmp-1"
    other.write_bytes(b"not ours")
    save_checkpoint(path, state, config=config)
    assert not any(p.exists() for p in leftovers) and other.exists()
    leftovers[0].write_bytes(b"partial")
    CheckpointCallback(path)
    assert not leftovers[0].exists()
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_callback_and_config_errors(tmp_path, saved):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every="):
            CheckpointCallback(tmp_path / "x.pt", every=bad)
    _, state, _ = saved
    with pytest.raises(ValueError, match="unknown config key"):
        save_checkpoint(tmp_path / "x.pt", state, config={"widths": [4, 3, 2], "colour": "red"})
    with pytest.raises(CheckpointError, match="cannot hold"):
        save_checkpoint(tmp_path / "x.pt", state, extra={"f": len})


# ---------------------------------------------------------------- TensorBoard


def test_tensorboard_writes_loss_lr_and_singular_values(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from linlab.tracking import TensorBoardCallback, singular_values

    train, val = data.split(0.3, seed=0)
    tb = TensorBoardCallback(tmp_path / "tb", every=2)
    result = fit(train, TrainConfig(widths=(4, 3, 2), lr=1e-3, epochs=6, tol=0.0), val=val, callbacks=[tb])
    tb.final(result)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "lr", "val_loss", "sv/0", "sv/1"}
    loss = {e.step: e.value for e in events.Scalars("loss")}
    assert sorted(loss) == [1, 3, 5, 6]
    assert np.allclose([loss[t] for t in (1, 3, 5, 6)], result.history[[1, 3, 5, 6]], rtol=1e-6)
    sv = [e.value for e in events.Scalars("sv/0")]
    assert sv[-1] == pytest.approx(singular_values(result.factors)[0], rel=1e-6)
    assert all(e.value == pytest.approx(1e-3) for e in events.Scalars("lr"))


def test_singular_values_match_numpy():
    from linlab.tracking import singular_values

    factors = init_factors((5, 3, 4), "normal", 1.0, 2)
    W = end_to_end(factors)
    s = singular_values(factors)
    assert s.shape == (4,) and np.all(np.diff(s) <= 0) and s[-1] < 1e-12 * s[0]  # rank 3 through width 3
    assert np.allclose(s[:3] ** 2, np.linalg.eigvalsh(W.T @ W)[::-1][:3], rtol=1e-10)


def test_a_diverged_runs_checkpoint_says_how_to_go_on(tmp_path):
    from linlab import fit, synthetic

    data = synthetic(n=40, d=3, k=2, seed=0)
    saver = ck.CheckpointCallback(tmp_path / "run.ckpt", every=1)
    result = fit(data, TrainConfig(widths=(3, 4, 2), lr=0.5, epochs=50), callbacks=[saver])
    assert result.outcome == "diverged" and saver.final(result) is not None
    with pytest.raises(CheckpointError, match="would diverge again: start a new run with a smaller lr"):
        ck.resume_state(tmp_path / "run.ckpt")
