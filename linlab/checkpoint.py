"""Checkpoints that never lose work: atomic, weights-only files holding all a run needs to resume.

API
---
``save_checkpoint(path, state, *, config=None, data=None, scaler=None, extra=None) -> Path``
    Write ``state`` (what :class:`linlab.engines.Epoch`'s ``state()`` returns) atomically.
``load_checkpoint(path) -> dict``
    Read and validate a checkpoint with ``torch.load(weights_only=True)``; every problem is a
    :class:`CheckpointError` (a ``ValueError``) naming the file.
``resume_state(path_or_checkpoint) -> dict``
    The ``resume=`` argument of :func:`linlab.engines.fit`.
``checkpoint_config(checkpoint) -> TrainConfig`` and ``checkpoint_params(checkpoint) -> (factors, biases)``
    The run's settings and its parameters as float64 NumPy arrays (for ``predict``).
``restore_rng_states(checkpoint) -> None``
    Put back the global NumPy, torch and ``random`` states saved with the checkpoint.
``CheckpointCallback(path, every=1, *, data=None, scaler=None)``
    A ``fit(callbacks=...)`` callback that saves every ``every`` epochs; call
    ``final(result)`` after ``fit`` returns to save the end of the run.

A resumed run is bit-identical to an uninterrupted one on the same machine (same engine,
dtype and thread count): parameters, optimizer state, loss history and the mini-batch
order's random stream are all restored exactly.

File layout
-----------
A ``torch.save`` zip of one dict, with ``format == "linlab.checkpoint"`` and
``format_version == 1``. ``state_dict`` uses :class:`~linlab.DeepLinear`'s keys
(``layers.{j}.weight`` = W_{j+1}ᵀ, float64; ``layers.{j}.bias``), so
``DeepLinear(widths, bias).load_state_dict(ckpt["state_dict"])`` works. Beside it: ``config``
(``TrainConfig.to_dict()``), ``architecture`` (widths, bias), ``epoch`` (updates done),
``history`` and ``val_history`` (float64 tensors; ``history[t]`` is the loss after t updates,
``epoch`` or ``epoch + 1`` entries), ``lr`` (the resolved base rate), ``optimizer`` (the
engine's ``optimizer_state()`` with arrays as tensors, or ``None`` when the run cannot be
resumed), ``rng`` (``loop``: the mini-batch stream's bit-generator state; ``numpy``, ``torch``,
``python``: the global states), ``data`` (name, provenance, scaler), ``linlab_version`` and
``extra``. NumPy arrays are stored as tensors and nothing else is pickled, so loading never
runs code.

Safety
------
A save writes ``.{name}.tmp-*`` in the same folder, flushes and fsyncs it, renames it over
``path`` with ``os.replace`` and fsyncs the folder: a crash leaves either the old or the new
checkpoint, never a mix. Temporary files left by a crash are removed at the next save (and
when a :class:`CheckpointCallback` is made). One writer per path. A state with a non-finite
parameter or optimizer buffer is refused with :class:`NonFiniteStateError`, so a diverging
run never overwrites a good checkpoint; :class:`CheckpointCallback` skips such epochs and
lists them in ``skipped``.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write, clean_temp_files
from .config import TrainConfig

FORMAT = "linlab.checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("state_dict", "config", "architecture", "epoch", "history", "optimizer", "rng", "lr")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, read or resumed; the message names the file."""


class NonFiniteStateError(CheckpointError):
    """A state with NaN or infinite values, refused so that it never replaces a good checkpoint."""


# ---------------------------------------------------------------- encoding


def _encode(obj, where: str):
    """`obj` with arrays as tensors and only types that ``weights_only`` loading accepts."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise CheckpointError(f"{where} is an object array; a checkpoint stores numeric arrays only.")
        return torch.tensor(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int)) else str(k): _encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_encode(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise CheckpointError(
        f"{where} is a {type(obj).__name__}, which a weights-only checkpoint cannot hold; "
        "convert it to numbers, strings, lists, dicts or arrays."
    )


def _to_numpy(obj):
    """Inverse of :func:`_encode` for arrays: tensors back to NumPy, containers walked."""
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def _first_nonfinite(obj, where: str) -> str | None:
    """Where the first NaN or infinity in a nested state is, or None."""
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        a = torch.as_tensor(obj)
        bad = int((~torch.isfinite(a)).sum()) if a.is_floating_point() or a.is_complex() else 0
        return f"{where} ({bad} of {a.numel()} entries)" if bad else None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else where
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        bad = _first_nonfinite(value, f"{where}[{key!r}]")
        if bad:
            return bad
    return None


def _state_dict(factors, biases) -> dict:
    # DeepLinear's layout: nn.Linear stores W_jᵀ, shape (widths[j], widths[j-1])
    out = {}
    for j, W in enumerate(factors):
        out[f"layers.{j}.weight"] = torch.tensor(np.asarray(W, dtype=np.float64).T.copy())
        if biases is not None:
            out[f"layers.{j}.bias"] = torch.tensor(np.asarray(biases[j], dtype=np.float64))
    return out


def _global_rng_states() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state itself)
    states = {
        "numpy": {"name": name, "keys": torch.tensor(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch_cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return states


def _config_dict(config) -> dict:
    if isinstance(config, TrainConfig):
        return config.to_dict()
    if isinstance(config, dict):
        settings = {k: v for k, v in config.items() if k != "data"}  # RunResult.config adds "data"
        return TrainConfig.from_dict(settings).to_dict()
    raise CheckpointError(f"config={config!r} must be a TrainConfig or its to_dict() mapping.")


# ---------------------------------------------------------------- writing


def _atomic_save(obj: dict, path: Path) -> None:
    clean_temp_files(path)
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(path, state: dict, *, config=None, data=None, scaler=None, extra=None) -> Path:
    """Write a training state to `path` atomically; refuse a non-finite one.

    Parameters
    ----------
    path : str or Path
        The checkpoint file (folders are created).
    state : dict
        ``Epoch.state()`` of :func:`linlab.engines.fit`: ``epoch``, ``factors``, ``biases``,
        ``optimizer``, ``history``, ``val_history``, ``rng``, ``lr`` (and ``config``).
        ``optimizer`` and ``rng`` may be None for a state that is not meant to be resumed.
    config : TrainConfig or dict, optional
        The run's full settings; defaults to ``state["config"]``.
    data : Dataset, optional
        Its name and provenance are stored (what ``predict`` needs to know).
    scaler : dict, optional
        How features/targets were scaled (arrays allowed), stored with the data's record.
    extra : dict, optional
        Free-form values (numbers, strings, arrays), e.g. the run's summary.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    NonFiniteStateError
        When a parameter or optimizer buffer holds NaN or inf; `path` is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from linlab import TrainConfig, seed_dataset
    >>> from linlab.engines import fit
    >>> states = []
    >>> r = fit(seed_dataset(), TrainConfig(widths=(10, 2), lr=1e-5, epochs=3),
    ...         callbacks=[lambda e: states.append(e.state())])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
    >>> save_checkpoint(path, states[-1]).name
    'run.pt'
    >>> load_checkpoint(path)["epoch"]
    3
    """
    path = Path(path)
    config = _config_dict(config if config is not None else state.get("config"))
    bad = _first_nonfinite({k: state.get(k) for k in ("factors", "biases", "optimizer")}, "state")
    if bad:
        raise NonFiniteStateError(
            f"refused to write checkpoint {path} at epoch {state.get('epoch')}: {bad} is not finite; "
            "the previous checkpoint is kept. Lower lr (see `linlab advise`) and resume from it."
        )
    from . import __version__

    obj = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "linlab_version": __version__,
        "state_dict": _state_dict(state["factors"], state.get("biases")),
        "config": _encode(config, "config"),
        "architecture": {"widths": list(config["widths"]), "bias": bool(config["bias"])},
        "epoch": int(state["epoch"]), "lr": float(state["lr"]),
        "history": torch.tensor(np.asarray(state["history"], dtype=np.float64)),
        "val_history": None if state.get("val_history") is None
        else torch.tensor(np.asarray(state["val_history"], dtype=np.float64)),
        "optimizer": _encode(state.get("optimizer"), "optimizer"),
        "rng": {"loop": _encode(state.get("rng"), "rng"), **_global_rng_states()},
        "data": _encode({
            "name": getattr(data, "name", None), "provenance": getattr(data, "provenance", None),
            "scaler": scaler}, "data"),
        "extra": _encode(dict(extra or {}), "extra"),
    }
    _atomic_save(obj, path)
    return path


# ---------------------------------------------------------------- reading


def _read(path: Path):
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path (or train with --checkpoint).")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give the checkpoint file inside it.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was never written. Use another one.")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                broken = z.testzip()
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as e:
            broken = f"its index ({e})"
        if broken:
            raise CheckpointError(f"checkpoint {path} is corrupt: {broken} fails its checksum. Use another one.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "nsupported" in line), "")
        if "GLOBAL" in reason:
            raise CheckpointError(
                f"refused to load {path}: it holds Python objects that loading would have to run as "
                f"code ({reason}), which a linlab checkpoint never does. Only load files you trust, "
                "and never with weights_only=False."
            ) from None
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint; weights-only loading rejected it "
            f"({reason or str(e).splitlines()[0][:160]}). It may be another kind of file or corrupt."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, AttributeError, IndexError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint; it may be truncated, corrupt or another "
            f"kind of file ({first})."
        ) from None


def _validate(obj, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a linlab checkpoint (a dict with format {FORMAT!r})."
        )
    if obj.get("format") != FORMAT:
        hint = " A bare state_dict loads with DeepLinear(widths).load_state_dict(torch.load(path))." if all(
            isinstance(v, torch.Tensor) for v in obj.values()) else ""
        raise CheckpointError(
            f"{path} is not a linlab checkpoint: its format marker is {obj.get('format')!r}, "
            f"expected {FORMAT!r}.{hint}"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version={version!r}; this linlab reads up to {FORMAT_VERSION}. "
            "Upgrade linlab to read it."
        )
    missing = [key for key in REQUIRED if key not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it is incomplete. Use another checkpoint.")
    bad = _malformed(obj)
    if bad:
        raise CheckpointError(f"{path}: {bad}; the file is inconsistent. Use another checkpoint.")
    widths, sd = obj["architecture"]["widths"], obj["state_dict"]
    for j, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        for key, shape in ((f"layers.{j}.weight", (b, a)), (f"layers.{j}.bias", (b,))):
            T = sd.get(key)
            if key.endswith("bias") and not obj["architecture"]["bias"]:
                continue
            if not isinstance(T, torch.Tensor) or tuple(T.shape) != shape:
                raise CheckpointError(
                    f"{path}: state_dict[{key!r}] is {None if T is None else tuple(T.shape)}, "
                    f"but widths={tuple(widths)} need {shape}; the file is inconsistent."
                )
    bad = _unusable(obj)
    if bad:
        raise CheckpointError(f"{path}: {bad}. The file is damaged or was edited; use another checkpoint.")
    return obj


def _unusable(obj: dict) -> str | None:
    """What in a well-formed checkpoint no run could have produced: a rate that is not a finite
    number > 0, parameters that are not real floats, or non-finite parameters or buffers."""
    lr = obj["lr"]
    if isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        return f"its lr={lr!r} is not a finite number > 0"
    if obj["epoch"] > len(obj["history"]):  # epoch e keeps the e (or e + 1) losses before each update
        return f"its epoch={obj['epoch']} is past its history of {len(obj['history'])} losses"
    for key, T in obj["state_dict"].items():
        if not isinstance(T, torch.Tensor) or not T.is_floating_point():
            kind = str(T.dtype).removeprefix("torch.") if isinstance(T, torch.Tensor) else type(T).__name__
            return f"state_dict[{key!r}] holds {kind} values, not real floats"
    bad = _first_nonfinite(obj["state_dict"], "state_dict") or _first_nonfinite(obj["optimizer"], "optimizer")
    return f"{bad} is not finite" if bad else None


def _malformed(obj: dict) -> str | None:
    """What in a checkpoint's record has the wrong type, or None."""
    arch, config = obj["architecture"], obj["config"]
    widths = arch.get("widths") if isinstance(arch, dict) else None
    checks = [
        ("architecture", isinstance(widths, list) and len(widths) >= 2
         and all(isinstance(w, int) and w >= 1 for w in widths) and isinstance(arch.get("bias"), bool)),
        ("state_dict", isinstance(obj["state_dict"], dict)),
        ("epoch", isinstance(obj["epoch"], int) and not isinstance(obj["epoch"], bool) and obj["epoch"] >= 0),
        ("lr", isinstance(obj["lr"], (int, float))),
        ("history", isinstance(obj["history"], torch.Tensor) and obj["history"].ndim == 1),
        ("val_history", obj.get("val_history") is None or isinstance(obj["val_history"], torch.Tensor)),
        ("optimizer", obj["optimizer"] is None or isinstance(obj["optimizer"], dict)),
        ("rng", isinstance(obj["rng"], dict)),
        ("data", obj.get("data") is None or isinstance(obj["data"], dict)),
        ("extra", obj.get("extra") is None or isinstance(obj["extra"], dict)),
        ("config", isinstance(config, dict)),
    ]
    bad = next((name for name, ok in checks if not ok), None)
    if bad is not None:
        return f"its {bad} entry is malformed ({type(obj.get(bad)).__name__})"
    try:
        settings = TrainConfig.from_dict(_to_numpy(dict(config)))
    except (ValueError, TypeError) as e:
        return f"its config is not a valid TrainConfig ({e})"
    if list(settings.widths) != widths or settings.bias != arch["bias"]:
        return (f"its config (widths {settings.widths}, bias {settings.bias}) and architecture "
                f"(widths {tuple(widths)}, bias {arch['bias']}) disagree")
    return None


def load_checkpoint(path) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check that it is complete.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        The stored record as written by :func:`save_checkpoint` (arrays as CPU tensors).

    Raises
    ------
    CheckpointError
        For a missing, empty, truncated, corrupt, foreign or unsafe file (one whose
        unpickling would run code: it is refused and nothing runs).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = path.write_text("not a checkpoint")
    >>> load_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    linlab.checkpoint.CheckpointError: ...notes.txt is not a readable torch checkpoint...
    """
    path = Path(path)
    return _validate(_read(path), path)


def _checkpoint(source) -> dict:
    return source if isinstance(source, dict) else load_checkpoint(source)


def checkpoint_params(checkpoint) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The factors W1..WL (shapes (widths[j-1], widths[j])) and biases, as float64 NumPy arrays.

    Examples
    --------
    >>> ckpt = {"architecture": {"widths": [3, 1], "bias": False},
    ...         "state_dict": {"layers.0.weight": torch.ones(1, 3, dtype=torch.float64)}}
    >>> [W.shape for W in checkpoint_params(ckpt)[0]]
    [(3, 1)]
    """
    ckpt = _checkpoint(checkpoint)
    sd, arch = ckpt["state_dict"], ckpt["architecture"]
    depth = len(arch["widths"]) - 1
    factors = [sd[f"layers.{j}.weight"].numpy().T.astype(np.float64) for j in range(depth)]
    biases = [sd[f"layers.{j}.bias"].numpy().astype(np.float64) for j in range(depth)] if arch["bias"] else None
    return factors, biases


def checkpoint_config(checkpoint) -> TrainConfig:
    """The :class:`~linlab.config.TrainConfig` the checkpointed run was started with.

    Examples
    --------
    >>> checkpoint_config({"config": TrainConfig(widths=(4, 2, 1)).to_dict()}).widths
    (4, 2, 1)
    """
    return TrainConfig.from_dict(_to_numpy(dict(_checkpoint(checkpoint)["config"])))


def resume_state(checkpoint) -> dict:
    """What ``fit(..., resume=...)`` needs to continue a checkpointed run bit for bit.

    Parameters
    ----------
    checkpoint : str, Path or dict
        A checkpoint file, or what :func:`load_checkpoint` returned.

    Returns
    -------
    dict
        ``epoch``, ``factors``, ``biases``, ``optimizer``, ``history`` and ``val_history``
        (the ``epoch`` losses before each completed update), ``rng``, ``lr`` and ``config``.
        Pass ``checkpoint_config(checkpoint)`` (or a config with more epochs) as ``config``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from linlab import TrainConfig, seed_dataset
    >>> from linlab.engines import fit
    >>> config = TrainConfig(widths=(10, 5, 2), lr=1e-5, epochs=6, seed=1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
    >>> cb = CheckpointCallback(path, every=2)
    >>> full = fit(seed_dataset(), config, callbacks=[cb])
    >>> cb.saved
    [2, 4, 6]
    >>> short = fit(seed_dataset(), config.replace(epochs=4), callbacks=[CheckpointCallback(path)])
    >>> again = fit(seed_dataset(), config, resume=resume_state(path))
    >>> bool((again.history == full.history).all())
    True
    """
    ckpt = _checkpoint(checkpoint)
    epoch = int(ckpt["epoch"])
    if ckpt["optimizer"] is None or ckpt["rng"].get("loop") is None:
        summary = ckpt.get("extra", {}).get("summary", {})
        outcome = summary.get("outcome", "this run")
        fix = ("the same settings would diverge again: start a new run with a smaller lr "
               "(linlab advise gives the bound)" if outcome == "diverged" else
               "start a new run with more epochs")
        raise CheckpointError(
            f"the checkpoint at epoch {epoch} ({outcome}) keeps parameters for predict but no "
            f"optimizer or random state, so it cannot be resumed; {fix}."
        )
    config = _to_numpy(dict(ckpt["config"]))
    factors, biases = checkpoint_params(ckpt)
    optimizer = ckpt["optimizer"] if config["engine"] == "module" else _to_numpy(ckpt["optimizer"])
    val = ckpt.get("val_history")
    return {
        "epoch": epoch, "factors": factors, "biases": biases, "optimizer": optimizer,
        "history": ckpt["history"].tolist()[:epoch],
        "val_history": None if val is None else val.tolist()[:epoch],
        "rng": ckpt["rng"]["loop"], "lr": float(ckpt["lr"]), "config": config,
    }


def restore_rng_states(checkpoint) -> None:
    """Set the global NumPy, torch and ``random`` states to those saved in `checkpoint`.

    linlab itself draws only from explicit generators (restored by :func:`resume_state`);
    this is for code around it that uses global state.

    Examples
    --------
    >>> state = {"rng": {"python": random.getstate()}}
    >>> a = random.random(); restore_rng_states(state); a == random.random()
    True
    """
    rng = _checkpoint(checkpoint)["rng"]
    if "numpy" in rng:
        s = rng["numpy"]
        np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],  # noqa: NPY002
                             s["cached_gaussian"]))
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["torch_cuda"])
    if "python" in rng:
        random.setstate(rng["python"])


# ---------------------------------------------------------------- during training


class CheckpointCallback:
    """Save a run every `every` epochs from :func:`linlab.engines.fit`, and at its end.

    Parameters
    ----------
    path : str or Path
        One file, overwritten atomically each time (the latest good state).
    every : int
        Save after every `every`-th update (epochs ``every, 2·every, ...``).
    data, scaler, extra
        Stored with every save (see :func:`save_checkpoint`).

    Attributes
    ----------
    saved : list of int
        The epochs written.
    skipped : list of (int, str)
        Epochs not written because their state was not finite, with the reason.

    Notes
    -----
    ``final(result)`` saves the end of the run with its full history. For a run that
    stopped normally the file can be resumed (e.g. with more epochs); for a diverged run it
    keeps the last finite parameters, for ``predict``, but cannot be resumed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from linlab import TrainConfig, seed_dataset
    >>> from linlab.engines import fit
    >>> cb = CheckpointCallback(pathlib.Path(tempfile.mkdtemp()) / "run.pt", every=5)
    >>> r = fit(seed_dataset(), TrainConfig(widths=(10, 2), lr=1e-5, epochs=12), callbacks=[cb])
    >>> cb.final(r).name, cb.saved
    ('run.pt', [5, 10, 12])
    """

    def __init__(self, path, every: int = 1, *, data=None, scaler=None, extra=None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be a positive integer (save after every N epochs).")
        self.path, self.every = Path(path), every
        self.data, self.scaler, self.extra = data, scaler, dict(extra or {})
        self.saved: list[int] = []
        self.skipped: list[tuple[int, str]] = []
        self._last = None  # the latest Epoch seen
        clean_temp_files(self.path)

    def _save(self, state: dict, extra: dict | None = None) -> Path | None:
        try:
            save_checkpoint(self.path, state, data=self.data, scaler=self.scaler,
                            extra={**self.extra, **(extra or {})})
        except NonFiniteStateError as e:
            self.skipped.append((int(state["epoch"]), str(e)))
            return None
        self.saved.append(int(state["epoch"]))
        return self.path

    def __call__(self, epoch) -> None:
        self._last = epoch
        if epoch.epoch % self.every == 0:
            self._save(epoch.state())

    def interrupted(self) -> Path | None:
        """Save the last completed epoch, resumable (a stop between epochs, e.g. Ctrl-C).

        Returns the path, or None when no epoch finished or its state was not finite."""
        last = self._last
        if last is None:
            return None
        if self.saved and self.saved[-1] == last.epoch:
            return self.path
        return self._save(last.state(), {"interrupted": True})

    def final(self, result) -> Path | None:
        """Save the end of `result` (a :class:`~linlab.results.RunResult`); None if refused."""
        last = self._last
        if last is not None and last.epoch == result.epochs:
            state = last.state()  # converged, stalled or max_epochs: the engine is at the end
        else:  # diverged (parameters rolled back) or no update at all: not resumable
            state = {"epoch": result.epochs, "factors": result.factors, "biases": result.biases,
                     "optimizer": None, "rng": None, "lr": result.lr, "config": result.config}
        state["history"] = list(result.history)
        state["val_history"] = None if result.val_history is None else list(result.val_history)
        return self._save(state, {"summary": result.summary()})
