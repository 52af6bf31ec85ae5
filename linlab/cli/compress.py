"""``linlab compress``: a trained network condensed to the smallest hidden width that keeps its
loss, written as a checkpoint that ``linlab predict`` reads (see :mod:`linlab.compress`)."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _training_data(ckpt: dict, spec: str | None):
    # the rows the model was trained on: --data, else the data settings stored with the checkpoint
    from ..data.spec import load_data

    saved = (ckpt.get("extra") or {}).get("data_settings") or {}
    if spec is not None:
        return load_data(spec), {"data": spec}
    record = ckpt.get("data") or {}
    if not saved.get("data"):
        name = record.get("name")
        if name in ("seed", "seed-torch"):
            saved = {"data": name}
        else:
            raise ValueError("the checkpoint does not say which data it was trained on; give it with --data "
                             "(seed, seed-torch, synthetic:..., or a file).")
    keys = ("features", "targets", "delimiter", "standardize")
    return load_data(saved["data"], **{k: saved[k] for k in keys if saved.get(k) is not None}), saved


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tol", type=float, help="The loss may grow by at most this much (the training loss, e.g. 1e-4).")
@click.option("--width", type=int, help="Condense to this hidden width instead.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The condensed checkpoint to write.")
@click.option("--data", "data_spec", help="The training data (default: as recorded in the checkpoint).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compress(checkpoint, tol, width, out, data_spec, as_json):
    """Condense a trained network to the smallest hidden width whose loss stays within --tol.

    \b
    Examples:
      linlab compress run.ckpt --tol 1e-4 --out small.ckpt
      linlab compress run.ckpt --width 2 --out small.ckpt
    """
    from ..checkpoint import checkpoint_config, checkpoint_params, load_checkpoint, save_checkpoint
    from ..compress import compress as condense
    from .options import check_output_file
    from .output import jsonable

    if (tol is None) == (width is None):
        raise ValueError("give --tol T (the loss increase allowed, e.g. 1e-4) or --width W, not both or neither.")
    check_output_file("--out", out, inputs=[("CHECKPOINT", checkpoint)])
    ckpt = load_checkpoint(checkpoint)
    config = checkpoint_config(ckpt)
    factors, biases = checkpoint_params(ckpt)
    data, settings = _training_data(ckpt, data_spec)
    if (data.n_features, data.n_targets) != (config.widths[0], config.widths[-1]):
        raise ValueError(f"--data has {data.n_features} features and {data.n_targets} targets, but the model "
                         f"takes {config.widths[0]} and gives {config.widths[-1]}; give the data it was "
                         "trained on.")
    c = condense(data.X, data.Y, factors, biases, tol=tol, width=width, loss=config.loss,
                 reduction=config.reduction, p=config.p, delta=config.delta)
    small = config.replace(widths=c.widths, extra={**config.extra, "condensed_from": list(c.original_widths)})
    state = {"epoch": 0, "factors": c.factors, "biases": c.biases, "optimizer": None, "history": [c.loss],
             "rng": None, "lr": float(ckpt["lr"])}
    record = ckpt.get("data") or {}
    extra = {"data_settings": settings, "compression": jsonable(c.to_dict())}
    save_checkpoint(out, state, config=small, data=data, scaler=record.get("scaler"), extra=extra)
    if as_json:
        click.echo(json.dumps({**jsonable(c.to_dict()), "out": str(out)}))
        return
    losses = ", ".join(f"width {r}: {v:.6g}" for r, v in enumerate(c.losses, 1))
    click.echo(f"loss of each truncated width: {losses}")
    click.echo(f"widths {c.original_widths} -> {c.widths}: loss {c.original_loss:.6g} -> {c.loss:.6g}; "
               f"wrote {out}")
