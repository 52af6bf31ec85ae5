"""``linlab train``: one run on the seed data, synthetic data or a file."""

from __future__ import annotations

import json

import click


def load_data(spec: str):
    """Read a data spec: ``seed``, ``seed-torch`` or ``synthetic:n=500,d=8,k=2,...``."""
    from ..data import seed_dataset, synthetic

    if spec in ("seed", "seed-numpy"):
        return seed_dataset("numpy")
    if spec == "seed-torch":
        return seed_dataset("torch")
    if spec.startswith("synthetic"):
        params = {}
        body = spec.partition(":")[2]
        for item in filter(None, (s.strip() for s in body.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--data {spec!r}: {item!r} is not key=value; e.g. synthetic:n=500,d=8.")
            params[key] = value
        import inspect

        valid = [p for p in inspect.signature(synthetic).parameters]
        bad = sorted(set(params) - set(valid))
        if bad:
            raise ValueError(f"--data {spec!r}: unknown key(s) {bad}; valid keys are {valid}.")
        conv = {"weights": str}
        for key, value in params.items():
            cast = conv.get(key, float if key in ("noise", "condition") else int)
            try:
                params[key] = cast(value)
            except ValueError:
                raise ValueError(f"--data {spec!r}: {key}={value!r} is not a valid {cast.__name__}.") from None
        return synthetic(**params)
    raise ValueError(f"--data {spec!r} is not 'seed', 'seed-torch' or 'synthetic:...'.")


@click.command()
@click.option("--data", "data_spec", default="seed", show_default=True,
              help="seed, seed-torch, or synthetic:n=1000,d=10,k=2,rank=1,noise=0.1,condition=10,seed=0")
@click.option("--widths", default="10,2", show_default=True, help="Layer widths d,h1,...,k.")
@click.option("--engine", type=click.Choice(["numpy", "autograd", "module"]), default="numpy", show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw", "rmsprop", "adagrad"]),
              default="sgd", show_default=True)
@click.option("--lr", default="1e-5", show_default=True, help='Learning rate, or "auto".')
@click.option("--epochs", type=int, default=750, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial factors.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the log.")
def train(data_spec, widths, engine, optimizer, lr, epochs, seed, as_json):
    """Train one model and print the seed-style log and the outcome."""
    from .. import TrainConfig
    from ..engines import fit

    data = load_data(data_spec)
    lr = lr if lr == "auto" else _number("--lr", lr)
    config = TrainConfig(widths=widths, engine=engine, optimizer=optimizer, lr=lr, epochs=epochs, seed=seed)
    result = fit(data, config, log=None if as_json else click.echo)
    if as_json:
        click.echo(json.dumps({"config": result.config, **result.summary()}))
    else:
        click.echo(f"{result.outcome}: {result.message}")


def _number(name, text):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number.") from None
