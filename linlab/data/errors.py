"""`DataError`: a malformed data file, located by file, row and column."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """A data file that cannot be read as a numeric table, with where and how to fix it.

    Parameters
    ----------
    message : str
        The full message: the file, the position, what is wrong and what to try.
    path : str, optional
        The file.
    row : int, optional
        Where the problem is. In text files (CSV, TSV) it is the 1-based line number as an
        editor shows it: the header is line 1, blank lines count. In Parquet, NPY and NPZ
        files it is the 1-based row number among the data rows.
    column : str, optional
        The name of the column, as in the header (or ``col0``, ``col1``, ... without one).

    Notes
    -----
    A subclass of ValueError, so callers that map bad input to an exit code (the CLI maps
    ValueError to 2) need no special case.

    Examples
    --------
    >>> err = DataError("data.csv: line 3, column 'b': text 'x' in a numeric column.",
    ...                 path="data.csv", row=3, column="b")
    >>> isinstance(err, ValueError), err.row, err.column
    (True, 3, 'b')
    """

    def __init__(self, message: str, *, path=None, row=None, column=None):
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column

    def __reduce__(self):
        # keyword-only fields survive pickling (e.g. an error raised in a worker process)
        return (type(self), (str(self),), {"path": self.path, "row": self.row, "column": self.column})


def where(path, row=None, column=None, *, unit: str = "line") -> str:
    """The location prefix of a message: ``'data.csv: line 4, column 'b''``.

    Examples
    --------
    >>> where("d.csv", 4, "b")
    "d.csv: line 4, column 'b'"
    >>> where("d.npy", 2, unit="row")
    'd.npy: row 2'
    """
    parts = [str(path)]
    if row is not None:
        parts.append(f"{unit} {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def describe_value(text: str) -> str:
    """Say in words why a cell is not a finite float64 number, from its text.

    Examples
    --------
    >>> describe_value("")
    'an empty cell'
    >>> describe_value("1e400")
    "'1e400', which is out of float64 range (|x| > 1.8e308)"
    """
    t = text.strip()
    low = t.lower().lstrip("+-")
    if t == "":
        return "an empty cell"
    if low in ("nan", "na", "n/a", "null", "none", "#n/a", "-nan", "<na>"):
        return f"a missing value ({t!r})"
    if low in ("inf", "infinity"):
        return f"an infinite value ({t!r})"
    try:
        value = float(t)
    except ValueError:
        return f"the text {t!r}"
    if np.isinf(value):
        return f"{t!r}, which is out of float64 range (|x| > 1.8e308)"
    return repr(t)


FINITE_FIX = "Every selected cell must be a finite number: fill or drop such rows, or leave the column out."


def check_finite(block: np.ndarray, path, first_row: int, names, cell_text=None) -> None:
    """Raise `DataError` at the first non-finite value of a block of rows.

    Parameters
    ----------
    block : ndarray of shape (n_rows, n_columns)
    path : str or Path
        The file the block came from.
    first_row : int
        0-based index of the block's first row among the file's data rows.
    names : sequence of str
        The names of the block's columns.
    cell_text : callable, optional
        ``cell_text(r, j)`` returns the cell as the file holds it (e.g. ``"null"``); by
        default the float itself is shown.

    Examples
    --------
    >>> check_finite(np.array([[1.0, 2.0], [3.0, np.inf]]), "d.npy", 0, ["a", "b"])
    Traceback (most recent call last):
    ...
    linlab.data.errors.DataError: d.npy: row 2, column 'b': an infinite value ('inf'). Every selected ...
    """
    bad = ~np.isfinite(block)
    if not bad.any():
        return
    r, j = (int(i) for i in np.argwhere(bad)[0])  # first bad row, leftmost bad column
    text = cell_text(r, j) if cell_text is not None else str(block[r, j])
    row = first_row + r + 1
    raise DataError(
        f"{where(path, row, names[j], unit='row')}: {describe_value(text)}. {FINITE_FIX}",
        path=path, row=row, column=names[j],
    )
