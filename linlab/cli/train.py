"""``linlab train``: one run on the seed data, synthetic data or a file.

Every :class:`~linlab.config.TrainConfig` field has a flag, and every flag is also a key of
a ``--config`` TOML file (flags win). The run prints the seed's log lines, a progress bar
on a terminal once it outlasts a second, the outcome, the diagnosis and a summary table;
``--json`` prints one JSON object instead and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from pathlib import Path

import click

from ..config import DTYPES, INITS, LOSSES, OPTIMIZERS, REDUCTIONS, SCHEDULES, TrainConfig
from .options import (
    check_output_file,
    cluster_options,
    config_file_callback,
    data_file,
    drop_overridden,
    load_data,
    parse_betas,
    parse_extra,
    parse_lr,
    use_cluster,
)
from .sharded import is_known_by_stats, stats_settings

DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
SINGLE_RUN_ENGINES = ("numpy", "autograd", "module")
# the settings that go into TrainConfig; the rest say where data comes from and where output goes
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# the settings that say which rows a run trains on: stored in its checkpoint, taken back by --resume
DATA_KEYS = ("data", "features", "targets", "delimiter", "standardize", "val_fraction", "split_seed")


def _option(*decls, **kwargs):
    kwargs.setdefault("show_default", "default" in kwargs and kwargs["default"] is not None)
    return click.option(*decls, **kwargs)


OPTIONS = [
    _option("--config", "config_file", metavar="FILE", is_eager=True, callback=config_file_callback,
            help="TOML file whose keys are any of these flags; flags override it."),
    # data
    _option("--data", default="seed",
            help="seed, seed-torch, synthetic:n=1000,d=10,k=2,rank=1,noise=0.1,condition=10,seed=0, "
                 "a CSV/TSV/Parquet/NPY/NPZ file, or shards: a quoted glob or a folder (trained from "
                 "their statistics)."),
    _option("--features", metavar="COLS", help="Feature columns of a data file: names or 0-based positions."),
    _option("--targets", metavar="COLS", help="Target columns of a data file: names or 0-based positions."),
    _option("--delimiter", help="Field separator of a text file (default: from the extension, or sniffed)."),
    _option("--standardize/--no-standardize", default=False, help="Scale a data file's columns to mean 0, std 1."),
    _option("--val-fraction", type=float, metavar="F",
            help="Hold out this fraction of rows for a validation loss."),
    _option("--split-seed", type=click.IntRange(min=0), default=0, help="Seed of the validation split."),
    # model
    _option("--widths", metavar="D,H,...,K", help="Layer widths; by default (d, k) from the data."),
    _option("--depth", type=int, help="Number of layers; widths (d, W, ..., W, k) with --width W."),
    _option("--width", type=int, help="Units of each hidden layer, with --depth."),
    _option("--bias/--no-bias", default=DEFAULTS["bias"], help="A bias in every layer."),
    _option("--init", type=click.Choice(INITS), default=DEFAULTS["init"], help="Initial factors."),
    _option("--init-scale", type=float, default=DEFAULTS["init_scale"],
            help="std (normal/scaled), gain (orthogonal), end-to-end std (balanced)."),
    _option("--seed", type=int, default=DEFAULTS["seed"],
            help="Seed of the initial factors and batch order; 0 on the seed data with init normal "
                 "(or torch on seed-torch) starts from the seed's own weights."),
    # optimisation
    _option("--engine", type=click.Choice(SINGLE_RUN_ENGINES), default=DEFAULTS["engine"]),
    _option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS["optimizer"]),
    _option("--lr", default=str(DEFAULTS["lr"]), help='Learning rate: a number > 0, or "auto".'),
    _option("--momentum", type=float, default=DEFAULTS["momentum"], help="SGD momentum in [0, 1)."),
    _option("--nesterov/--no-nesterov", default=DEFAULTS["nesterov"], help="Nesterov momentum (SGD)."),
    _option("--weight-decay", type=float, default=DEFAULTS["weight_decay"]),
    _option("--betas", default=",".join(map(str, DEFAULTS["betas"])), help="Adam/AdamW betas."),
    _option("--eps", type=float, default=DEFAULTS["eps"], help="Adam/AdamW/RMSprop epsilon."),
    _option("--alpha", type=float, default=DEFAULTS["alpha"], help="RMSprop smoothing."),
    _option("--schedule", type=click.Choice(SCHEDULES), default=DEFAULTS["schedule"],
            help="Learning-rate schedule, stepped once an epoch."),
    _option("--step-size", type=int, default=DEFAULTS["step_size"], help="Epochs between steps (step schedule)."),
    _option("--gamma", type=float, default=DEFAULTS["gamma"], help="Decay factor (step, exponential schedules)."),
    _option("--loss", type=click.Choice(LOSSES), default=DEFAULTS["loss"]),
    _option("--reduction", type=click.Choice(REDUCTIONS), default=DEFAULTS["reduction"]),
    _option("--p", type=float, default=DEFAULTS["p"], help="Exponent of the lp loss (>= 1)."),
    _option("--delta", type=float, default=DEFAULTS["delta"], help="Threshold of the huber loss."),
    _option("--epochs", type=int, default=DEFAULTS["epochs"]),
    _option("--batch-size", type=int, help="Rows per mini-batch (default: full batch)."),
    _option("--shuffle/--no-shuffle", default=DEFAULTS["shuffle"], help="Reshuffle mini-batches every epoch."),
    _option("--tol", type=float, default=DEFAULTS["tol"], help="Converged when the loss <= tol."),
    _option("--stall-window", type=int, default=DEFAULTS["stall_window"],
            help="Epochs without relative progress before a run counts as stalled."),
    _option("--stall-rtol", type=float, default=DEFAULTS["stall_rtol"], help="The relative progress that counts."),
    _option("--diverge-factor", type=float, default=DEFAULTS["diverge_factor"],
            help="Diverged when the loss exceeds this times the initial loss."),
    _option("--dtype", type=click.Choice(DTYPES), default=DEFAULTS["dtype"]),
    _option("--device", default=DEFAULTS["device"], help="cpu, cuda or cuda:N (torch engines)."),
    _option("--extra", multiple=True, metavar="KEY=VALUE", help="A label stored with the run (repeatable)."),
    # output
    _option("--log-every", type=int, default=DEFAULTS["log_every"], help="Epochs between log lines."),
    _option("--checkpoint", metavar="PATH", help="Save the model here at the end (and every N epochs)."),
    _option("--checkpoint-every", type=int, metavar="N", help="Also save the checkpoint every N epochs."),
    _option("--resume", metavar="PATH", help="Continue from a checkpoint made with the same settings."),
    _option("--tensorboard", metavar="DIR", help="Write TensorBoard scalars to DIR."),
    _option("--json", "as_json", is_flag=True, help="Print one JSON object (config, summary, diagnosis)."),
    _option("--quiet", "-q", is_flag=True, help="No log lines, bar or table: the outcome line only."),
]


def _with_options(f):
    for option in reversed(OPTIONS):
        f = option(f)
    return f


@click.command()
@_with_options
@cluster_options
@click.pass_context
def train(ctx, **settings):
    """Train one model and print the seed-style log, the outcome, a diagnosis and a summary.

    \b
    Examples:
      linlab train --data seed --widths 10,5,2
      linlab train --data synthetic:n=500,d=8,k=2,rank=1 --depth 3 --width 4 --lr auto
      linlab train --data houses.csv --targets price --standardize --checkpoint run.ckpt
      linlab train --resume run.ckpt --epochs 2000
      linlab train --data 'shards/*.parquet' --targets y --lr auto --cluster local:4
      linlab train --config run.toml --json
    """
    settings = drop_overridden(ctx, settings)
    use_cluster(settings.pop("cluster"), settings.pop("dashboard"))  # sharded --data summarised there
    checkpoint = None
    if settings["resume"]:
        from ..checkpoint import load_checkpoint

        checkpoint = load_checkpoint(settings["resume"])
        settings = _settings_from_checkpoint(ctx, settings, checkpoint)
    data = load_data(settings["data"], features=settings["features"], targets=settings["targets"],
                     delimiter=settings["delimiter"], standardize=settings["standardize"])
    if is_known_by_stats(data):  # sharded: trained from its statistics, its rows never read
        settings = stats_settings(settings, data, _given(ctx, "engine"))
    if checkpoint is not None:
        _check_resume_data(checkpoint, settings["resume"], data)
    config = make_config(settings, data)
    if config.epochs < 1:
        raise ValueError(f"--epochs {config.epochs} trains nothing; give --epochs 1 or more (the seed uses 750).")
    if checkpoint is not None and not settings["checkpoint"]:  # a resumed run saves where it resumed from
        settings = {**settings, "checkpoint": settings["resume"]}
    from ..models import initial_factors, takes_seed_factors

    if checkpoint is None and takes_seed_factors(data, config):  # the seed's own weights (one rule)
        config = config.replace(extra={**config.extra, "factors": "seed"})
    resume = None if checkpoint is None else _resume_from(checkpoint, settings["resume"], config)
    factors = None if checkpoint is not None else initial_factors(data, config)
    run_and_report(data, config, settings, factors=factors, resume=resume)


def _given(ctx, *names) -> bool:
    from click.core import ParameterSource

    return any(ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None) for n in names)


def make_config(settings: dict, data) -> TrainConfig:
    """The :class:`TrainConfig` of parsed settings, with widths fitted to `data`.

    Examples
    --------
    >>> from linlab import seed_dataset
    >>> make_config({"depth": 2, "width": 5, "lr": "1e-5", "betas": "0.9,0.999"}, seed_dataset()).widths
    (10, 5, 2)
    """
    from .options import resolve_widths

    fields = {k: settings[k] for k in CONFIG_KEYS if settings.get(k) is not None}
    fields["widths"] = resolve_widths(settings.get("widths"), settings.get("depth"), settings.get("width"),
                                      data.n_features, data.n_targets)
    fields["lr"] = parse_lr(settings.get("lr", DEFAULTS["lr"]))
    fields["betas"] = parse_betas(settings.get("betas") or DEFAULTS["betas"])
    fields["extra"] = parse_extra(settings.get("extra"))
    return TrainConfig(**fields)


def run_and_report(data, config: TrainConfig, settings: dict, *, factors=None, resume=None) -> None:
    """Split, train with the requested callbacks, save, diagnose and print.

    Exits 1 when the run diverged (its last finite state is still saved) and 130 when
    Ctrl-C stopped it (after saving the last completed epoch)."""
    from rich.console import Console

    from ..engines import fit
    from .output import RunDisplay

    console = Console(highlight=False, soft_wrap=True)
    quiet, as_json = settings["quiet"], settings["as_json"]
    train_data, val = _split_data(data, settings["val_fraction"], settings["split_seed"])
    saver = _checkpoint_callback(settings, data, config)
    board = _tensorboard_callback(settings["tensorboard"])
    callbacks = [cb for cb in (saver, board) if cb is not None]
    try:
        with RunDisplay(console, config.epochs, quiet=quiet or as_json) as show, StopOnInterrupt() as stop:
            result = fit(train_data, config, factors=factors, val=val, log=None if quiet or as_json else show.line,
                         callbacks=(*callbacks, show, stop), resume=resume, on_batch=show.batch)
    except BaseException as err:
        if board is not None:
            board.close()
        if isinstance(err, Interrupted):
            _interrupted(err.epoch, saver, settings)
        raise
    if board is not None:
        board.final(result)
    notes = []
    if saver is not None and saver.final(result) is None:
        notes.append(saver.skipped[-1][1])  # a non-finite end state: the last good save is kept
    diagnosis = _diagnosis_of(result, train_data)
    metrics = _metrics_of(result, train_data, val)
    if as_json:
        _print_json(result, data, diagnosis, settings, metrics)
    elif quiet:
        console.print(f"{result.outcome}: {result.message}", markup=False)
    else:
        _print_report(console, result, data, diagnosis, settings, notes, metrics)
    if result.outcome == "diverged":
        raise SystemExit(EXIT_DIVERGED)


EXIT_DIVERGED = 1  # the run blew up (bad input exits 2)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class Interrupted(Exception):
    """Ctrl-C came: raised between epochs, after epoch ``epoch``'s callbacks ran."""

    def __init__(self, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch


class StopOnInterrupt:
    """A ``fit`` callback that turns Ctrl-C (SIGINT) into a stop between two epochs.

    The first Ctrl-C lets the current update finish, so every callback sees a whole epoch
    (the checkpoint can then save it, resumable); a second one stops at once, as Python does.
    """

    def __init__(self):
        self.hit, self._previous = False, None

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.hit = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once
        click.echo("Ctrl-C: stopping after this epoch (again to stop at once, without saving).", err=True)

    def __call__(self, epoch) -> None:
        if self.hit:
            raise Interrupted(epoch.epoch)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _interrupted(epoch: int, saver, settings) -> None:
    """Save the last completed epoch (when there is a checkpoint), say so and exit 130."""
    where = ""
    if saver is not None:
        path = saver.interrupted()
        where = (f"; saved it to {path} (continue with --resume {path})" if path is not None else
                 f"; nothing new saved to {settings['checkpoint']} (no finite state since its last save)")
    click.echo(f"interrupted after epoch {epoch}{where}.", err=True)
    raise SystemExit(EXIT_INTERRUPTED)


def _print_report(console, result, data, diagnosis, settings, notes, metrics) -> None:
    from .output import summary_table

    console.print(f"{result.outcome}: {result.message}", markup=False)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    if diagnosis is not None:
        console.print(diagnosis.text(), markup=False)
    console.print(summary_table(result, data, settings["checkpoint"], metrics))


def _print_json(result, data, diagnosis, settings, metrics) -> None:
    from .output import jsonable

    record = {
        "config": result.config,
        "data": {"name": data.name, "n_samples": data.n_samples, "n_features": data.n_features,
                 "n_targets": data.n_targets, "provenance": data.provenance},
        "summary": result.summary(),
        "metrics": metrics,
        "diagnosis": None if diagnosis is None else diagnosis.to_dict(),
        "checkpoint": settings["checkpoint"],
    }
    click.echo(json.dumps(jsonable(record)))


def _split_data(data, val_fraction, split_seed):
    """``(train, val)`` rows; ``val`` is None without a validation fraction."""
    if val_fraction is None:
        return data, None
    return data.split(val_fraction, split_seed)


def _checkpoint_callback(settings: dict, data, config: TrainConfig):
    """The ``fit`` callback that saves ``--checkpoint`` (every N epochs and at the end), or None."""
    path, every = settings["checkpoint"], settings["checkpoint_every"]
    if every is not None and (not path or every < 1):
        raise ValueError(f"--checkpoint-every {every} needs --checkpoint PATH and a positive number of epochs.")
    if not path:
        return None
    shards = [("--data", f) for f in data.provenance.get("files", [])] if is_known_by_stats(data) else []
    check_output_file("--checkpoint", path, inputs=[("--data", data_file(settings.get("data"))),
                                                     ("--config", settings.get("config_file")), *shards])
    from ..checkpoint import CheckpointCallback

    # without --checkpoint-every the file is written once, when the run ends
    return CheckpointCallback(path, every=every or config.epochs + 1, data=data,
                              scaler=data.provenance.get("scaler"),
                              extra={"data_settings": {k: settings.get(k) for k in DATA_KEYS}})


def _tensorboard_callback(logdir):
    """The ``fit`` callback that writes TensorBoard scalars to `logdir`, or None."""
    if not logdir:
        return None
    if Path(logdir).exists() and not Path(logdir).is_dir():
        raise ValueError(f"--tensorboard {logdir!r} is a file; give a folder for the event files, e.g. runs/tb.")
    check_output_file("--tensorboard", Path(logdir) / "events")
    from ..tracking import TensorBoardCallback

    return TensorBoardCallback(logdir)


def _settings_from_checkpoint(ctx, settings: dict, checkpoint: dict) -> dict:
    """Settings left at their defaults take the checkpointed run's values instead (the data's too)."""
    saved = {**(checkpoint.get("extra") or {}).get("data_settings", {}), **checkpoint["config"]}
    settings = dict(settings)
    for key in ("val_fraction", "split_seed"):  # they choose the training rows
        if key in saved and _given(ctx, key) and settings[key] != saved[key]:
            raise ValueError(
                f"--resume {settings['resume']!r} was trained with --{key.replace('_', '-')} {saved[key]}, "
                f"not {settings[key]}; leave it out to train on the same rows, or start afresh."
            )
    for key in (*CONFIG_KEYS, *DATA_KEYS):
        if key in saved and key != "widths" and not _given(ctx, key):
            settings[key] = saved[key]
    if not _given(ctx, "widths", "depth", "width"):
        settings.update(widths=list(saved["widths"]), depth=None, width=None)
    return settings


# settings a resumed run must share with its checkpoint: they fix the parameters' and optimizer's shapes
RESUME_KEYS = ("widths", "bias", "engine", "optimizer")


def _check_resume_data(checkpoint: dict, path, data) -> None:
    """Refuse to continue a run on other data than it was trained on, or on other columns or scaling."""
    record = checkpoint.get("data") or {}
    trained_on = record.get("name")
    if trained_on is not None and trained_on != data.name:
        raise ValueError(
            f"--resume {path!r} was trained on data {trained_on!r}, but --data gives {data.name!r}; "
            "give the same --data to continue the run."
        )
    saved, now = record.get("provenance") or {}, data.provenance
    for key in ("targets", "features", "standardize"):
        if key in saved and _plain(saved[key]) != _plain(now.get(key)):
            raise ValueError(
                f"--resume {path!r} was trained with {key} {_plain(saved[key])!r}, but this run has "
                f"{_plain(now.get(key))!r}; leave out --{key} to take the checkpoint's, or start afresh."
            )


def _resume_from(checkpoint: dict, path, config: TrainConfig) -> dict:
    """The state to resume from, checked against `config`."""
    from ..checkpoint import resume_state

    saved, current = dict(checkpoint["config"]), config.to_dict()
    diff = [f"{k}={_plain(saved.get(k))!r} there, {_plain(current[k])!r} here" for k in RESUME_KEYS
            if _plain(saved.get(k)) != _plain(current[k])]
    if diff:
        raise ValueError(
            f"--resume {path!r} was saved with other settings ({'; '.join(diff)}); give the same "
            "--widths, --bias, --engine and --optimizer (or leave them out to take the checkpoint's), "
            "or start afresh without --resume."
        )
    state = resume_state(checkpoint)
    if state["epoch"] >= config.epochs:
        raise ValueError(
            f"--resume {path!r} has already done {state['epoch']} epochs and --epochs is {config.epochs}; "
            "raise --epochs to train further."
        )
    return state


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _metrics_of(result, train_data, val) -> dict:
    """Mean loss, RMSE and R² in target units on the training and validation rows."""
    from ..diagnose import fit_metrics

    out = {"train": fit_metrics(result, train_data)}
    if val is not None:
        out["validation"] = fit_metrics(result, val)
    return out


def _diagnosis_of(result, data):
    """The diagnosis of the run (see :func:`linlab.diagnose.diagnose`)."""
    from ..diagnose import diagnose

    return diagnose(result, data)
