"""Sharded data: a glob or a folder of Parquet, NPY, NPZ or CSV files read as one dataset.

A ``--data`` spec such as ``'shards/*.parquet'`` or ``shards/`` names every file it matches
(sorted by name, hidden files skipped). They are cut into pieces, one per Parquet row group
and one per other file, and the dataset is summarised by its statistics (`Stats`), the sum
of the pieces' statistics added pairwise in a fixed tree. With a Dask client active (see
:mod:`linlab.distributed`) each piece is a task on the cluster; without one they are read
here, one at a time. Either way the rows are never held whole: every squared-loss
full-batch experiment (train, advise, sweeps) runs from the statistics, diagnosis included.
The rows are read only by what needs them (mini-batches, other losses in a sweep or from
Python), all at once, on one machine; ``linlab train`` refuses those on shards.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..stats import Stats
from .dataset import Dataset
from .errors import DataError, check_finite
from .files import FORMATS, file_stats, iter_chunks, open_table, select_columns

GLOB_CHARS = "*?["


def is_sharded(spec) -> bool:
    """Whether a ``--data`` spec names shards: a glob pattern or a folder.

    Examples
    --------
    >>> is_sharded("shards/*.parquet"), is_sharded("seed"), is_sharded("data.csv")
    (True, False, False)
    """
    spec = str(spec)
    return any(c in spec for c in GLOB_CHARS) or Path(spec).is_dir()


def shard_paths(spec) -> list[Path]:
    """The data files a glob or a folder names, sorted by name (hidden files skipped)."""
    spec = str(spec)
    folder = Path(spec)
    if folder.is_dir():
        found = [p for p in folder.iterdir() if p.suffix.lower() in FORMATS]
    else:
        found = [Path(p) for p in glob.glob(spec)]
    paths = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
    if not paths:
        where = "the folder" if folder.is_dir() else "the pattern"
        raise FileNotFoundError(
            f"--data {spec!r}: {where} matches no data files ({', '.join(FORMATS)}). Check the path; "
            "quote a pattern so the shell passes it on, e.g. --data 'shards/*.parquet'."
        )
    return paths


@dataclass(frozen=True)
class Piece:
    """One task of the statistics pass: a file, or one row group of a Parquet file."""

    path: str
    features: tuple[int, ...]  # column indices, the same in every shard
    targets: tuple[int, ...]
    row_group: int | None = None
    delimiter: str | None = None


def pieces(spec, *, features=None, targets=None, delimiter=None) -> tuple[list[Piece], list[str], list[str]]:
    """The pieces of a sharded spec, and the feature and target names.

    Columns are chosen in the first shard; every other shard must have the same names.
    """
    paths = shard_paths(spec)
    first = open_table(paths[0], delimiter=delimiter)
    feats, targs = select_columns(first, features, targets)
    out = []
    for path in paths:
        table = first if path == paths[0] else open_table(path, delimiter=delimiter)
        if tuple(table.names) != tuple(first.names):
            raise DataError(
                f"{path} has columns {list(table.names)}, but {paths[0]} has {list(first.names)}; every "
                "shard of one dataset needs the same columns in the same order.", path=path,
            )
        groups = _row_groups(path) if table.format == "parquet" else [None]
        out += [Piece(str(path), tuple(feats), tuple(targs), g, delimiter) for g in groups]
    return out, [first.names[j] for j in feats], [first.names[j] for j in targs]


def _row_groups(path: Path) -> list[int]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return [i for i in range(f.num_row_groups) if f.metadata.row_group(i).num_rows > 0]


def piece_rows(piece: Piece) -> tuple[np.ndarray, np.ndarray]:
    """The float64 rows (X, Y) of one piece."""
    if piece.row_group is None:
        chunks = list(iter_chunks(piece.path, features=list(piece.features), targets=list(piece.targets),
                                  delimiter=piece.delimiter))
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [*piece.features, *piece.targets]
    with pq.ParquetFile(piece.path) as f:
        names = [f.schema_arrow.names[j] for j in columns]
        batch = f.read_row_group(piece.row_group, columns=names)
        first_row = sum(f.metadata.row_group(i).num_rows for i in range(piece.row_group))
    block = np.empty((batch.num_rows, len(columns)), order="F")  # (rows, features + targets); columns contiguous
    for j, name in enumerate(names):
        block[:, j] = batch.column(name).cast(pa.float64()).to_numpy()
    check_finite(block, piece.path, first_row, names)
    d = len(piece.features)
    return block[:, :d], block[:, d:]


def piece_stats(piece: Piece) -> Stats:
    """`Stats` of one piece: a file streamed in chunks, or one Parquet row group."""
    if piece.row_group is None:
        return file_stats(piece.path, features=list(piece.features), targets=list(piece.targets),
                          delimiter=piece.delimiter)
    return Stats.of(*piece_rows(piece))


def tree_sum(parts: Sequence):
    """Add neighbours pairwise, level by level: ((p0 + p1) + (p2 + p3)) + p4.

    The order is fixed by the number of parts alone, so a cluster adding the same parts
    in the same tree gets the same bits.

    Examples
    --------
    >>> tree_sum([1, 2, 3, 4, 5])
    15
    """
    parts = list(parts)
    if not parts:
        raise ValueError("no parts to add; a dataset needs at least one row.")
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def shards_stats(all_pieces: Sequence[Piece], client=None) -> Stats:
    """`Stats` of every piece added by `tree_sum`: on `client`'s cluster, on the active Dask
    client when there is one, or here, one piece at a time."""
    client = client if client is not None else _active_client()
    if client is None:
        return tree_sum([piece_stats(p) for p in all_pieces])
    from ..distributed.stats import cluster_stats

    return cluster_stats(client, all_pieces)


def _active_client():
    # a Dask client only when the program made one; never imports dask itself
    if sys.modules.get("distributed") is None:
        return None
    from ..distributed.cluster import active_client

    return active_client()


class ShardedDataset(Dataset):
    """A `Dataset` known by its statistics; its rows are read only when something asks for X or Y.

    Parameters
    ----------
    stats : Stats
    pieces : sequence of Piece
    name : str
    provenance : dict

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     np.save(os.path.join(folder, f"part{i}.npy"), np.arange(8.0).reshape(4, 2) + i)
    >>> data = load_shards(folder)
    >>> data.n_samples, data.stats.n, data.X.shape
    (12, 12, (12, 1))
    """

    def __init__(self, stats: Stats, pieces: Sequence[Piece], name: str, provenance: dict):
        for key, value in (("W_true", None), ("name", name), ("provenance", provenance),
                           ("stats", stats), ("pieces", tuple(pieces)), ("_rows", None)):
            object.__setattr__(self, key, value)

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        if self._rows is None:
            blocks = [piece_rows(p) for p in self.pieces]
            object.__setattr__(self, "_rows", (np.concatenate([b[0] for b in blocks]),
                                               np.concatenate([b[1] for b in blocks])))
        return self._rows

    X = property(lambda self: self._read()[0], doc="The feature rows, read from the shards on first use.")
    Y = property(lambda self: self._read()[1], doc="The target rows, read from the shards on first use.")
    n_samples = property(lambda self: self.stats.n)
    n_features = property(lambda self: self.stats.n_features)
    n_targets = property(lambda self: self.stats.n_targets)

    def __getstate__(self):  # a task gets the statistics and the pieces, never the rows
        return {**self.__dict__, "_rows": None}

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"ShardedDataset({self.name!r}, n={self.n_samples}, d={self.n_features}, k={self.n_targets})"


def load_shards(spec, *, features=None, targets=None, delimiter=None, standardize=False,
                client=None) -> ShardedDataset:
    """The dataset a glob or a folder of shards names, summarised in one pass (see module doc).

    Parameters
    ----------
    spec : str
        A glob (``'shards/*.parquet'``) or a folder.
    features, targets, delimiter
        As in :func:`linlab.data.load_file`, applied to every shard.
    standardize : bool
        Not available for shards: standardize them when writing them.
    client : distributed.Client, optional
        The cluster that computes the statistics; by default the active client, if any.
    """
    if standardize:
        raise ValueError(f"--standardize is not available for sharded data ({spec!r}); write the shards "
                         "standardized, or train on one file.")
    all_pieces, feature_names, target_names = pieces(spec, features=features, targets=targets,
                                                     delimiter=delimiter)
    stats = shards_stats(all_pieces, client)
    provenance = {
        "source": "shards", "spec": str(spec), "files": sorted({p.path for p in all_pieces}),
        "pieces": len(all_pieces), "features": feature_names, "targets": target_names, "standardize": False,
    }
    return ShardedDataset(stats, all_pieces, name=str(spec), provenance=provenance)
