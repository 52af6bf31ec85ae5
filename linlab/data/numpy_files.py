"""NumPy files: ``.npy`` (one 2-D array, memory-mapped) and ``.npz`` (X and Y, or one array).

Files are never unpickled (``allow_pickle=False``): a pickle can run arbitrary code, so an
array of Python objects is refused with a message saying how to save numbers instead.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, check_finite

_NO_PICKLE = (
    "linlab loads NumPy files with allow_pickle=False, because unpickling can run arbitrary code. "
    "Save a numeric array instead, e.g. np.save(path, a.astype(np.float64))."
)


def check_array(path: Path, name: str, dtype: np.dtype, shape: tuple, ndims=(2,)) -> None:
    """Refuse object, non-numeric and wrongly shaped arrays before reading any data.

    Examples
    --------
    >>> check_array(Path("a.npy"), "array", np.dtype("<U3"), (4, 2))
    Traceback (most recent call last):
    ...
    linlab.data.errors.DataError: a.npy: array has dtype <U3; expected numbers (bool, int or float). ...
    """
    if dtype.hasobject:
        raise DataError(f"{path}: {name} holds Python objects (dtype {dtype}). {_NO_PICKLE}", path=path)
    if dtype.kind not in "biuf":
        raise DataError(
            f"{path}: {name} has dtype {dtype}; expected numbers (bool, int or float). "
            "Convert it, e.g. np.save(path, a.astype(np.float64)).", path=path,
        )
    if len(shape) not in ndims:
        raise DataError(
            f"{path}: {name} has shape {shape}; expected a 2-D array (n_samples, n_columns). "
            "Reshape before saving, e.g. a.reshape(len(a), -1) or a.reshape(-1, 1).", path=path,
        )
    if 0 in shape:
        raise DataError(f"{path}: {name} has shape {shape}; it needs at least one row and one column.", path=path)


def _read_header(path: Path) -> tuple[tuple, bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset from the NPY header, without loading data."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            return shape, fortran, dtype, f.tell()
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # numpy's header parser
        raise DataError(
            f"{path} is not a readable NPY file ({exc}); save arrays with np.save(path, a).", path=path
        ) from None


@dataclass(frozen=True)
class NpyFile:
    """A ``.npy`` file holding one 2-D numeric array, read through a memory map.

    Columns are named ``col0``, ``col1``, ...; only the rows of one chunk are ever in memory.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.arange(6.0).reshape(3, 2))
    >>> table = NpyFile.open(path)
    >>> table.names, [b.shape for b in table.blocks([1], chunk_rows=2)]
    (('col0', 'col1'), [(2, 1), (1, 1)])
    """

    path: Path
    names: tuple[str, ...]
    n_rows: int
    format: str = "npy"

    @classmethod
    def open(cls, path) -> NpyFile:
        """Check the header, the dtype and that the file holds all the bytes it promises."""
        path = Path(path)
        shape, _, dtype, offset = _read_header(path)
        check_array(path, "the array", dtype, shape)
        expected = offset + math.prod(shape) * dtype.itemsize  # Python ints: np.prod would wrap around
        actual = path.stat().st_size
        if actual < expected:
            raise DataError(
                f"{path} is truncated: its header promises an array of shape {shape} and dtype {dtype} "
                f"({expected} bytes with the header) but the file has {actual} bytes. Copy or save it again.",
                path=path,
            )
        return cls(path, tuple(f"col{j}" for j in range(shape[1])), shape[0])

    def blocks(self, columns: Sequence[int], chunk_rows: int | None = None) -> Iterator[np.ndarray]:
        """Yield the `columns` as float64 arrays of at most `chunk_rows` rows (all at once if None)."""
        try:
            mm = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{self.path} cannot be memory-mapped ({exc}). {_NO_PICKLE}", path=self.path) from None
        names = [self.names[j] for j in columns]
        step = chunk_rows or self.n_rows
        for start in range(0, self.n_rows, step):
            block = np.array(mm[start:start + step][:, list(columns)], dtype=np.float64)  # (rows, columns)
            check_finite(block, self.path, start, names)
            yield block


def _npz_member(npz, path: Path, key: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: array {key!r} holds Python objects. {_NO_PICKLE}", path=path) from None
        raise DataError(f"{path}: array {key!r} cannot be read ({exc}).", path=path) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, SyntaxError, tokenize.TokenError,
            NotImplementedError, RuntimeError) as exc:  # zipfile: unknown compression, encrypted member
        raise DataError(f"{path}: array {key!r} is damaged ({exc}); save the file again.", path=path) from None


@dataclass(frozen=True, eq=False)
class NpzFile:
    """A ``.npz`` archive with arrays ``X`` and ``Y`` (``x``, ``y`` also), or with a single 2-D array.

    With X and Y the columns are named ``x0, x1, ...`` and ``y0, y1, ...`` and Y's columns
    are the default targets; a 1-D Y is one target column. A single array is read like an
    NPY file (``col0, col1, ...``, last column the default target). NPZ members cannot be
    memory-mapped, so the arrays are held in memory, side by side.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> np.savez(path, X=np.ones((3, 2)), y=np.zeros(3))
    >>> table = NpzFile.open(path)
    >>> table.names, table.default_targets
    (('x0', 'x1', 'y0'), (2,))
    """

    path: Path
    names: tuple[str, ...]
    data: np.ndarray  # (n_samples, n_columns): [X | Y] side by side
    default_targets: tuple[int, ...]
    has_y: bool = False  # Y stored apart from X: features default to X's columns
    format: str = "npz"

    @classmethod
    def open(cls, path) -> NpzFile:
        """Open the archive and read its X and Y (or its one array)."""
        path = Path(path)
        try:
            npz = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile,
                NotImplementedError) as exc:  # zipfile: "zip file version 6.4" and the like
            raise DataError(
                f"{path} is not a readable NPZ archive ({exc}); it may be truncated. Save it again with "
                "np.savez(path, X=X, Y=Y).", path=path,
            ) from None
        with npz:
            keys = list(npz.files)
            kx = next((k for k in ("X", "x") if k in keys), None)
            ky = next((k for k in ("Y", "y") if k in keys), None)
            pair = (kx, ky) if kx and ky else None
            if pair is None and len(keys) != 1:
                raise DataError(
                    f"{path} holds arrays {keys}; expected arrays named X and Y (or x and y), or a single "
                    "2-D array. Save with np.savez(path, X=X, Y=Y).", path=path,
                )
            if pair is None:
                return cls._single(path, _npz_member(npz, path, keys[0]), keys[0])
            X, Y = (_npz_member(npz, path, key) for key in pair)
        check_array(path, f"array {pair[0]!r}", X.dtype, X.shape)
        check_array(path, f"array {pair[1]!r}", Y.dtype, Y.shape, ndims=(1, 2))
        Y = Y.reshape(len(Y), -1)
        if len(X) != len(Y):
            raise DataError(
                f"{path}: {pair[0]} has {len(X)} rows but {pair[1]} has {len(Y)}; they must match row for row.",
                path=path,
            )
        names = tuple(f"x{j}" for j in range(X.shape[1])) + tuple(f"y{j}" for j in range(Y.shape[1]))
        return cls(path, names, np.hstack([X, Y]), tuple(range(X.shape[1], len(names))), has_y=True)

    @classmethod
    def _single(cls, path: Path, a: np.ndarray, key: str) -> NpzFile:
        check_array(path, f"array {key!r}", a.dtype, a.shape)
        return cls(path, tuple(f"col{j}" for j in range(a.shape[1])), a, (a.shape[1] - 1,))

    def blocks(self, columns: Sequence[int], chunk_rows: int | None = None) -> Iterator[np.ndarray]:
        """Yield the `columns` as float64 arrays of at most `chunk_rows` rows (all at once if None)."""
        names = [self.names[j] for j in columns]
        step = chunk_rows or len(self.data)
        for start in range(0, len(self.data), step):
            block = np.array(self.data[start:start + step][:, list(columns)], dtype=np.float64)
            check_finite(block, self.path, start, names)
            yield block
