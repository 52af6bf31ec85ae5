"""``linlab advise``: what theory says before training: floor, bounds, lr, epochs to tol."""

from __future__ import annotations

import json

import click

from ..config import INITS, LOSSES, REDUCTIONS
from .options import cluster_options


def _number(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number; e.g. {name} 1e-5.") from None
    if not value > 0:
        raise ValueError(f"{name}={text} must be a number > 0.")
    return value


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(advice):
    from rich.table import Table

    table = Table(title=f"linlab advise: widths {advice.widths}, {advice.loss} loss ({advice.reduction})",
                  title_justify="left")
    for name in ("section", "quantity", "value"):
        table.add_column(name)
    for section, key, value in advice.rows():
        table.add_row(section, key, _fmt(value))
    return table


def _plain(advice) -> str:
    rows = [(section, key, _fmt(value)) for section, key, value in advice.rows()]
    width = max(len(f"{s}.{k}") for s, k, _ in rows)
    lines = [f"linlab advise: widths {advice.widths}, {advice.loss} loss ({advice.reduction})"]
    lines += [f"{f'{s}.{k}':<{width}}  {v}" for s, k, v in rows]
    return "\n".join(lines)


@click.command()
@click.option("--data", "data_spec", default="seed", show_default=True,
              help="seed, seed-torch, synthetic:n=1000,d=10,k=2,..., or a CSV/TSV/Parquet/NPY/NPZ file.")
@click.option("--features", metavar="COLS", help="Feature columns of a data file: names or 0-based positions.")
@click.option("--targets", metavar="COLS", help="Target columns of a data file: names or 0-based positions.")
@click.option("--delimiter", help="Field separator of a text file (default: from the extension, or sniffed).")
@click.option("--standardize/--no-standardize", default=False,
              help="Scale a data file's columns to mean 0, std 1.")
@click.option("--widths", help="Layer widths d,h1,...,k (default: d,k from the data, plain regression).")
@click.option("--loss", type=click.Choice(LOSSES), default="squared", show_default=True)
@click.option("--reduction", type=click.Choice(REDUCTIONS), default="sum", show_default=True)
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Target loss of the forecast.")
@click.option("--bias/--no-bias", default=False, show_default=True, help="A bias in every layer.")
@click.option("--init", type=click.Choice(INITS), default="normal", show_default=True,
              help="Initial factors the forecast starts from.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the initial factors.")
@click.option("--lr", "compare_lr", help="Also forecast plain regression at this lr (e.g. the seed's 1e-5).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@cluster_options
def advise(data_spec, features, targets, delimiter, standardize, widths, loss, reduction, tol, bias, init, seed,
           compare_lr, as_json, cluster, dashboard):
    """The floor a network can reach, the lr bounds, the recommended lr and the epochs to tol.

    The data flags are those of ``linlab train``, so advice is about the very rows a run trains on."""
    from ..config import parse_widths
    from ..theory.advice import advise as make_advice
    from .options import load_data, use_cluster
    from .output import jsonable

    use_cluster(cluster, dashboard)  # sharded --data is then summarised on the cluster
    data = load_data(data_spec, features=features, targets=targets, delimiter=delimiter, standardize=standardize)
    widths = (data.n_features, data.n_targets) if widths is None else parse_widths(widths)
    if not tol > 0:
        raise ValueError(f"--tol {tol} must be > 0; e.g. --tol 1e-4.")
    advice = make_advice(data, widths, loss=loss, reduction=reduction, tol=tol, bias=bias, init=init,
                         seed=seed, compare_lr=_number("--lr", compare_lr))
    if as_json:
        click.echo(json.dumps(jsonable(advice.to_dict())))
        return
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        console.print(_table(advice))
    else:
        click.echo(_plain(advice))
    for note in advice.notes:
        click.echo(f"- {note}")
