"""``linlab explore``: write the explorer page, one self-contained HTML file.

The data flags are those of ``linlab train`` (the very parameters, reused), so the page is
about the very rows a run trains on; the other flags set the page's starting controls.
"""

from __future__ import annotations

import click

from .train import DATA_KEYS
from .train import train as _train_command

# --data, --features, --targets, --delimiter, --standardize, --val-fraction, --split-seed
DATA_PARAMS = [p for p in _train_command.params if p.name in DATA_KEYS]


def _positive_float(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter(f"{value} must be a number > 0, e.g. 1e-5.")
    return value


@click.command(params=[*DATA_PARAMS])
@click.option("--out", "out", default="explorer.html", show_default=True, metavar="FILE",
              help="The HTML file to write.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
@click.option("--depth", type=click.IntRange(1, 4), default=2, show_default=True, help="Starting depth.")
@click.option("--width", type=int, help="Starting hidden width (default: max(d, k)).")
@click.option("--lr", type=float, callback=_positive_float,
              help="Starting learning rate (default: the depth-1 optimal lr at depth 1, 2% of it deeper).")
@click.option("--init", type=click.Choice(("normal", "balanced", "orthogonal")), default="normal",
              show_default=True, help="Starting init: normal has N(0, scale²) entries.")
@click.option("--init-scale", type=float, default=1.0, show_default=True, callback=_positive_float)
@click.option("--optimizer", type=click.Choice(("sgd", "momentum", "adam")), default="sgd", show_default=True)
@click.option("--epochs", type=click.IntRange(10, 10000), default=1000, show_default=True)
@click.option("--reduction", type=click.Choice(("sum", "mean")), default="sum", show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
def explore(out, open_page, **settings):
    """Write a page where sliders re-run gradient descent in the browser.

    One self-contained HTML file (it opens from a file:// URL, with no server and no
    network) embeds the statistics of the data (XᵀX in its eigenbasis, XᵀY, ‖Y‖², n;
    never the rows) and trains in the page: every change of depth, width, lr, init,
    optimizer, epochs, reduction or seed re-runs the whole training and redraws the loss,
    the singular values of W1⋯WL and the outcome in linlab's words.

    \b
    Examples:
      linlab explore --data seed --open
      linlab explore --data synthetic:n=2000,d=20,k=3,rank=2 --depth 3 --out deep.html
      linlab explore --data houses.csv --targets price --standardize --reduction mean
    """
    from pathlib import Path

    from ..explore import write_explorer
    from .options import check_output_file, data_file, load_data

    data_settings = {name: settings.pop(name) for name in DATA_KEYS}
    check_output_file("--out", out, inputs=[("--data", data_file(data_settings["data"]))])
    data = load_data(data_settings["data"], features=data_settings["features"], targets=data_settings["targets"],
                     delimiter=data_settings["delimiter"], standardize=data_settings["standardize"])
    if data_settings["val_fraction"] is not None:  # the page trains on the training rows only
        data, _ = data.split(data_settings["val_fraction"], data_settings["split_seed"])
    path = write_explorer(data, out, **{k: v for k, v in settings.items() if v is not None})
    size = Path(path).stat().st_size
    click.echo(f"wrote {path} ({size / 1024:.0f} KiB, statistics of {data.n_samples} rows of {data.name}); "
               f"open {Path(path).resolve().as_uri()}")
    if open_page:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri())

