"""Users' own data files (CSV, TSV, Parquet, NPY, NPZ) as `Dataset`s, chunks or `Stats`.

One path through every format: open the file's table (names, no data), choose the
feature and target columns, then read the chosen columns as float64 blocks, all at once
(`load_file`) or streamed (`iter_chunks`, `file_stats`). Every malformed input raises
`DataError`, a ValueError that names the file, the row and the column, and the fix.

Row numbers in errors: in CSV/TSV files the 1-based line an editor shows (the header is
line 1, blank lines count); in Parquet, NPY and NPZ files the 1-based data row.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..stats import Stats
from .dataset import Dataset
from .errors import DataError
from .scaling import Scaler

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".npy": "npy", ".npz": "npz",
}


def _special(path: Path) -> str:
    mode = path.stat().st_mode
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def open_table(path, *, delimiter: str | None = None, header="auto"):
    """Open a data file by its extension and read its column names (no data yet).

    Files with another extension are read as delimited text when a `delimiter` is given.

    Examples
    --------
    >>> open_table("no/such/file.csv")
    Traceback (most recent call last):
    ...
    linlab.data.errors.DataError: no/such/file.csv does not exist. Check the path (relative paths start ...
    """
    path = Path(path)
    if not path.is_file():
        if path.exists() and not path.is_dir():
            raise DataError(
                f"{path} is {_special(path)}, not a regular file; linlab reads a data file more than once "
                "and from its size, which a stream cannot give. Save the data to a file and pass that.", path=path,
            )
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        start = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
        raise DataError(f"{path} {what}. Check the path{start}.", path=path)
    fmt = FORMATS.get(path.suffix.lower(), "csv" if delimiter is not None else None)
    if fmt is None:
        raise DataError(
            f"{path} has extension {path.suffix!r}; supported are {', '.join(FORMATS)}. Rename the file, "
            "or pass delimiter=... (--delimiter) to read it as delimited text.", path=path,
        )
    # readers are imported here, so `import linlab` does not pay for pyarrow (~0.1 s)
    if fmt in ("csv", "tsv"):
        from .delimited import DelimitedFile

        return DelimitedFile.open(path, delimiter=delimiter, header=header)
    if delimiter is not None:
        raise DataError(f"delimiter={delimiter!r} applies to CSV/TSV files only; {path} is {fmt}.", path=path)
    if fmt == "parquet":
        from .parquet import ParquetTable

        return ParquetTable.open(path)
    from .numpy_files import NpyFile, NpzFile

    return (NpyFile if fmt == "npy" else NpzFile).open(path)


def _items(spec, param: str, path: Path) -> list | None:
    """A column spec as a list: None, a name, an index, a list of them, or ``"a,b"`` / ``"0,3"``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",")]
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        items = [int(spec)]
    else:
        items = list(spec)
    bad = [s for s in items if isinstance(s, bool) or not isinstance(s, (str, int, np.integer)) or s == ""]
    if not items or bad:
        raise DataError(
            f"{param}={spec!r} for {path} must list column names or integer indices, e.g. ['a', 'b'], "
            "[0, 3] or 'a,b'; found an empty or invalid entry.", path=path,
        )
    return items


def _resolve(item, names: Sequence[str], param: str, path: Path) -> int:
    """The 0-based index of one column, given by name or by (possibly negative) index."""
    if isinstance(item, str) and item in names:
        if names.count(item) > 1:
            where = [j for j, n in enumerate(names) if n == item]
            raise DataError(
                f"{param}: column name {item!r} appears {len(where)} times in {path} (indices {where}); "
                "select it by index instead.", path=path, column=item,
            )
        return names.index(item)
    if isinstance(item, str) and not re.fullmatch(r"[-+]?\d+", item):
        shown = ", ".join(repr(n) for n in names[:30])
        shown += f", ... ({len(names)} in all)" if len(names) > 30 else ""
        raise DataError(
            f"{param}: no column named {item!r} in {path}; available: {shown}. Names are case-sensitive; "
            "integer indices work too.", path=path, column=item,
        )
    index = int(item)
    if not -len(names) <= index < len(names):
        raise DataError(
            f"{param}: column index {index} is out of range for {path}, which has {len(names)} columns "
            f"(indices 0 to {len(names) - 1}, or -1 for the last).", path=path,
        )
    return index % len(names)


def _pick(table, spec, param: str) -> list[int] | None:
    items = _items(spec, param, table.path)
    if items is None:
        return None
    columns = [_resolve(item, list(table.names), param, table.path) for item in items]
    twice = sorted({table.names[j] for j in columns if columns.count(j) > 1})
    if twice:
        raise DataError(f"{param} selects column(s) {twice} more than once in {table.path}.", path=table.path)
    return columns


def select_columns(table, features=None, targets=None) -> tuple[list[int], list[int]]:
    """Indices of the feature and target columns of an opened table.

    By default the target is the last column (an NPZ file's Y columns) and the features
    are all the other columns.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> t = SimpleNamespace(path="d.csv", names=("a", "b", "c", "d"), default_targets=(3,))
    >>> select_columns(t), select_columns(t, features="a,2", targets=["b"])
    (([0, 1, 2], [3]), ([0, 2], [1]))
    """
    chosen_targets = _pick(table, targets, "targets")
    chosen_features = _pick(table, features, "features")
    if chosen_targets is None:
        chosen_targets = list(getattr(table, "default_targets", (len(table.names) - 1,)))
    if chosen_features is None:
        chosen_features = [j for j in range(len(table.names)) if j not in chosen_targets]
    both = [table.names[j] for j in chosen_features if j in chosen_targets]
    if both:
        raise DataError(
            f"column(s) {both} of {table.path} are both features and targets; pass targets=... "
            "(--targets) or leave them out of features.", path=table.path, column=both[0],
        )
    if not chosen_features:
        raise DataError(
            f"{table.path} has no feature columns left (columns: {list(table.names)}; targets: "
            f"{[table.names[j] for j in chosen_targets]}); a regression needs at least one feature.",
            path=table.path,
        )
    return chosen_features, chosen_targets


def load_file(path, *, features=None, targets=None, standardize: bool = False,
              delimiter: str | None = None, header="auto") -> Dataset:
    """Read a CSV, TSV, Parquet, NPY or NPZ file as a `Dataset`.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``, ``.npy`` (one 2-D array) or ``.npz``
        (arrays X and Y, or x and y, or one 2-D array); any other extension with `delimiter`.
    features, targets : list of str or int, or str, optional
        Columns by name or 0-based index (negative counts from the end), or a comma-separated
        string such as ``"a,b"`` or ``"0,3"``. Default: the last column (an NPZ's Y) is the
        target and every other column is a feature. Columns not selected may hold anything.
    standardize : bool
        Return (X − μ_x)/σ_x and (Y − μ_y)/σ_y; the `Scaler` is kept in
        ``provenance["scaler"]`` as plain lists (see `Scaler.from_dict`).
    delimiter : str, optional
        For text files: default tab for ``.tsv`` and comma otherwise; ``"\\t"`` and ``"tab"``
        are accepted.
    header : {"auto", True, False}
        For text files: ``"auto"`` takes the first line as a header unless all its fields
        are numbers. Without a header columns are named ``col0``, ``col1``, ...

    Returns
    -------
    Dataset
        Named after the file; ``provenance`` holds source, path, format, the feature and
        target names and whether (and how) the data was standardized.

    Raises
    ------
    DataError
        For a missing, empty, truncated or malformed file, a non-numeric, missing or
        non-finite cell, or a bad column selection; the message names the row and column.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "houses.csv")
    >>> _ = open(path, "w").write("rooms,area,price\\n3,70,210\\n4,95,300\\n2,40,120\\n")
    >>> ds = load_file(path)
    >>> ds.X.tolist(), ds.Y.tolist(), ds.provenance["targets"]
    ([[3.0, 70.0], [4.0, 95.0], [2.0, 40.0]], [[210.0], [300.0], [120.0]], ['price'])
    >>> load_file(path, features="area", targets="rooms").X.ravel().tolist()
    [70.0, 95.0, 40.0]
    """
    table = open_table(path, delimiter=delimiter, header=header)
    feature_cols, target_cols = select_columns(table, features, targets)
    block = np.concatenate(list(table.blocks(feature_cols + target_cols)))  # (n, d + k)
    X, Y = block[:, :len(feature_cols)], block[:, len(feature_cols):]
    provenance = {
        "source": "file", "path": str(path), "format": table.format,
        "features": [table.names[j] for j in feature_cols],
        "targets": [table.names[j] for j in target_cols],
        "standardize": bool(standardize),
    }
    if standardize:
        scaler = Scaler.fit(X, Y)
        X, Y = scaler.transform_X(X), scaler.transform_Y(Y)
        provenance["scaler"] = scaler.to_dict()
    return Dataset(X, Y, name=Path(path).name, provenance=provenance)


def load_features(path, *, features=None, delimiter: str | None = None, header="auto") -> tuple[np.ndarray, list]:
    """Read only feature columns, e.g. new inputs to predict on.

    Parameters
    ----------
    path : str or Path
        Any format `load_file` reads.
    features : list of str or int, or str, optional
        The training features' names (``Dataset.provenance["features"]``) to pick them out of
        a file with more columns. Default: every column (an NPZ's X when it also holds Y).
    delimiter, header
        As in `load_file`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    names : list of str

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "new.csv")
    >>> _ = open(path, "w").write("id,area,rooms\\n7,80,3\\n")
    >>> load_features(path, features=["rooms", "area"])
    (array([[ 3., 80.]]), ['rooms', 'area'])
    """
    table = open_table(path, delimiter=delimiter, header=header)
    columns = _pick(table, features, "features")
    if columns is None:
        stored_y = getattr(table, "has_y", False)
        columns = [j for j in range(len(table.names)) if not (stored_y and j in table.default_targets)]
    X = np.concatenate(list(table.blocks(columns)))
    return X, [table.names[j] for j in columns]


def _rebatch(blocks: Iterator[np.ndarray], chunk_rows: int) -> Iterator[np.ndarray]:
    """Regroup blocks of any sizes into chunks of exactly `chunk_rows` rows (the last may be short)."""
    pending, count = [], 0
    for block in blocks:
        while len(block):
            take = min(chunk_rows - count, len(block))
            pending.append(block[:take])
            count, block = count + take, block[take:]
            if count == chunk_rows:
                yield np.concatenate(pending)
                pending, count = [], 0
    if count:
        yield np.concatenate(pending)


def iter_chunks(path, *, features=None, targets=None, chunk_rows: int = 1_000_000,
                delimiter: str | None = None, header="auto") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a file as float64 (X, Y) chunks of `chunk_rows` rows (the last may be shorter).

    Parquet is read by row-group batches, NPY through a memory map (never loaded whole),
    CSV/TSV by pyarrow's streaming reader; NPZ members are held in memory. The file is
    opened and the columns chosen at the call, so a bad path or column raises at once.
    Arguments are as in `load_file`.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.arange(15.0).reshape(5, 3))
    >>> [(X.shape, Y.ravel().tolist()) for X, Y in iter_chunks(path, chunk_rows=2)]
    [((2, 2), [2.0, 5.0]), ((2, 2), [8.0, 11.0]), ((1, 2), [14.0])]
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows!r} must be a positive integer, e.g. 1_000_000.")
    table = open_table(path, delimiter=delimiter, header=header)
    feature_cols, target_cols = select_columns(table, features, targets)
    blocks = table.blocks(feature_cols + target_cols, chunk_rows=int(chunk_rows))
    d = len(feature_cols)
    return ((chunk[:, :d], chunk[:, d:]) for chunk in _rebatch(blocks, int(chunk_rows)))


def file_stats(path, *, features=None, targets=None, chunk_rows: int = 1_000_000,
               delimiter: str | None = None, header="auto") -> Stats:
    """XᵀX, XᵀY, ‖Y‖², n, Σx, Σy of a file in one streaming pass (see `Stats`).

    Memory holds one chunk at a time, so files larger than memory work; arguments are as
    in `iter_chunks`.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> s = file_stats(path, chunk_rows=1)
    >>> s.A.tolist(), s.C.tolist(), s.yy, s.n
    ([[10.0]], [[14.0]], 20.0, 2)
    """
    chunks = iter_chunks(path, features=features, targets=targets, chunk_rows=chunk_rows,
                         delimiter=delimiter, header=header)
    return Stats.stream(chunks)
