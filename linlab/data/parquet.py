"""Parquet tables read column by column, row group by row group, with pyarrow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataError, check_finite

_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(
        f"{path} cannot be read as Parquet ({type(exc).__name__}: {exc}). The file may be truncated "
        "(an interrupted copy or download) or not Parquet at all; write it again, e.g. with "
        "pyarrow.parquet.write_table.", path=path,
    )


@dataclass(frozen=True)
class ParquetTable:
    """A Parquet file: its column names and types, ready to stream selected columns as float64.

    Examples
    --------
    >>> import tempfile, os, pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"a": [1, 2], "b": [0.5, 1.5]}), path)
    >>> table = ParquetTable.open(path)
    >>> table.names, [b.tolist() for b in table.blocks([1, 0])]
    (('a', 'b'), [[[0.5, 1.0], [1.5, 2.0]]])
    """

    path: Path
    names: tuple[str, ...]
    types: tuple[pa.DataType, ...]
    n_rows: int
    format: str = "parquet"

    @classmethod
    def open(cls, path) -> ParquetTable:
        """Read the footer: names, types and row count (no data)."""
        path = Path(path)
        try:
            with pq.ParquetFile(path) as f:
                schema, n_rows = f.schema_arrow, f.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from None
        if n_rows == 0 or len(schema) == 0:
            raise DataError(
                f"{path} has {n_rows} rows and {len(schema)} columns; it needs rows of numbers.", path=path
            )
        return cls(path, tuple(schema.names), tuple(schema.types), n_rows)

    def blocks(self, columns: Sequence[int], chunk_rows: int | None = None) -> Iterator[np.ndarray]:
        """Yield the `columns` (indices into `names`) as float64 arrays of at most `chunk_rows` rows.

        ``chunk_rows=None`` reads everything at once. Values must be finite and present
        (no nulls); the first offender raises `DataError` with its 1-based row number.
        """
        for j in columns:
            if not any(test(self.types[j]) for test in _NUMERIC):
                raise DataError(
                    f"{self.path}: column {self.names[j]!r} has type {self.types[j]}; expected numbers. "
                    "Leave it out by choosing features=... and targets=... (--features, --targets).",
                    path=self.path, column=self.names[j],
                )
        names = [self.names[j] for j in columns]
        offset = 0
        try:
            with pq.ParquetFile(self.path) as f:
                batches = f.iter_batches(batch_size=chunk_rows or max(self.n_rows, 1), columns=names)
                for batch in batches:
                    arrays = [batch.column(j) for j in range(len(columns))]
                    block = np.empty((batch.num_rows, len(columns)))  # (rows, selected columns)
                    for j, array in enumerate(arrays):
                        # integers past 2**53 round to the nearest float64, as NumPy and CSV reading do
                        exact = not pa.types.is_integer(array.type)
                        block[:, j] = array.cast(pa.float64(), safe=exact).to_numpy(zero_copy_only=False)

                    def cell_text(r, j, arrays=arrays):
                        return "null" if arrays[j][r].as_py() is None else str(arrays[j][r].as_py())

                    check_finite(block, self.path, offset, names, cell_text)
                    offset += len(block)
                    yield block
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, exc) from None
