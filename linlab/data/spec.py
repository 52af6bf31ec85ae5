"""Data specs: the one string that names a dataset in the CLI, sweep files and configs.

``seed`` and ``seed-torch`` are the seed's arrays, ``synthetic:n=500,d=8,k=2`` a synthetic
problem, a glob or a folder (``'shards/*.parquet'``) sharded data known by its statistics
(:mod:`linlab.data.shards`), anything else a path to a CSV, TSV, Parquet, NPY or NPZ file.
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_DATA = ("seed", "seed-numpy", "seed-torch", "synthetic")
# keys of synthetic:... data specs and their types (the rest of synthetic()'s arguments are ints)
SYNTHETIC_TYPES = {"weights": str, "noise": float, "condition": float}
SYNTHETIC_KEYS = ("n", "d", "k", "rank", "weights", "noise", "condition", "seed")


def load_data(spec: str, *, features=None, targets=None, delimiter=None, standardize=False):
    """The dataset a ``--data`` spec names.

    ``seed`` and ``seed-torch`` are the seed's arrays; ``synthetic:n=500,d=8,k=2`` calls
    :func:`linlab.data.synthetic` with those arguments; anything else is a path to a CSV,
    TSV, Parquet, NPY or NPZ file, read with the column options; a glob or a folder of such
    files is one :class:`~linlab.data.shards.ShardedDataset`.

    Examples
    --------
    >>> load_data("synthetic:n=50,d=3,k=1").X.shape
    (50, 3)
    """
    kind = spec.partition(":")[0]
    if kind in BUILTIN_DATA:
        given = [name for name, v in (("--features", features), ("--targets", targets),
                                      ("--delimiter", delimiter), ("--standardize", standardize or None))
                 if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to data files only, not to --data {spec!r}.")
        return _builtin(spec)
    from .shards import is_sharded, load_shards

    if is_sharded(spec):
        return load_shards(spec, features=features, targets=targets, delimiter=delimiter, standardize=standardize)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"--data {spec!r}: no such file. Give a CSV, TSV, Parquet, NPY or NPZ file, "
            "or one of seed, seed-torch, synthetic:n=1000,d=10,k=2."
        )
    from .files import load_file

    return load_file(path, features=features, targets=targets, standardize=standardize, delimiter=delimiter)


def _builtin(spec: str):
    from . import seed_dataset, synthetic

    if spec in ("seed", "seed-numpy"):
        return seed_dataset("numpy")
    if spec == "seed-torch":
        return seed_dataset("torch")
    if not spec.startswith("synthetic") or spec[len("synthetic"):][:1] not in ("", ":"):
        raise ValueError(f"--data {spec!r} is not seed, seed-torch or synthetic:...; e.g. synthetic:n=500,d=8.")
    params = {}
    for item in filter(None, (s.strip() for s in spec.partition(":")[2].split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or key not in SYNTHETIC_KEYS:
            raise ValueError(
                f"--data {spec!r}: {item!r} is not KEY=VALUE with a KEY among {', '.join(SYNTHETIC_KEYS)}; "
                "e.g. synthetic:n=500,d=8,k=2,noise=0.1."
            )
        cast = SYNTHETIC_TYPES.get(key, _integer)
        try:
            params[key] = cast(value)
        except ValueError:
            kind = "integer" if cast is _integer else cast.__name__
            raise ValueError(f"--data {spec!r}: {key}={value!r} is not a valid {kind}.") from None
    return synthetic(**params)


def _integer(text: str) -> int:
    # "500" or "1e6": a whole number however it is written
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)
