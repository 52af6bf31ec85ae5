"""Where a sweep's results go while it runs: one file per finished chunk, one table at the end.

A sweep writing ``results.parquet`` saves each finished chunk atomically as
``results.parquet.parts/chunk-<position>.parquet`` (position: the chunk's first run in the
grid) the moment it arrives, so saving costs each run once, not once per batch after it.
When every chunk is in, the table (the rows of an earlier ``results.parquet`` first, then
the chunks in grid order) is written atomically in its format and the parts folder removed.
A sweep that is stopped, or whose process is killed, leaves its finished chunks; a resumed
sweep reads them with the table and runs only the rest.

One sweep writes a table at a time: a lock file ``.results.parquet.lock`` beside it is
held while the sweep runs (and removed when it ends), and a second sweep on the same output stops at once with an
error. Temporary files a killed write left behind are removed when the next sweep starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pyarrow as pa

from ..atomic import atomic_write, clean_temp_files
from .table import SCHEMA, histories_path, read_table, write_table

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows locks a byte of the file instead
    fcntl = None


def parts_folder(out) -> Path:
    """The folder of a sweep's finished chunks: ``results.parquet`` → ``results.parquet.parts``."""
    out = Path(out)
    return out.with_name(f"{out.name}.parts")


def _unique(table: pa.Table) -> pa.Table:
    # a row per run id, the first kept: a chunk saved twice (a kill between the final write and
    # the removal of the parts) counts once
    seen, keep = set(), []
    for i, rid in enumerate(table.column("run_id").to_pylist()):
        if rid not in seen:
            seen.add(rid)
            keep.append(i)
    return table if len(keep) == table.num_rows else table.take(keep)


class MemoryStore:
    """A sweep without an output file: its chunks held in memory."""

    def __init__(self):
        self.tables: dict[int, pa.Table] = {}

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def existing(self, resume: bool) -> pa.Table | None:
        return None

    def append(self, position: int, table: pa.Table) -> None:
        self.tables[position] = table

    def finish(self) -> pa.Table:
        tables = [self.tables[p] for p in sorted(self.tables)]
        return _unique(pa.concat_tables(tables)) if tables else SCHEMA.empty_table()


class FileStore(MemoryStore):
    """A sweep's table at `out` (CSV when `csv`), its chunks saved as they finish.

    Use it as a context manager: entering takes the output's lock (FileExistsError when
    another sweep holds it) and removes temporary files a killed sweep left.
    """

    def __init__(self, out, csv: bool = False):
        super().__init__()
        self.out, self.csv = Path(out), csv
        self.parts = parts_folder(out)
        self.lock_path = self.out.with_name(f".{self.out.name}.lock")
        self._lock = None

    def __enter__(self) -> FileStore:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.lock_path, self.out)
        for path in (self.out, histories_path(self.out)):
            clean_temp_files(path)
        if self.parts.is_dir():
            for tmp in self.parts.glob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        _release_lock(self._lock, self.lock_path)
        self._lock = None

    def _saved_parts(self) -> list[Path]:
        return sorted(self.parts.glob("chunk-*.parquet")) if self.parts.is_dir() else []

    def existing(self, resume: bool) -> pa.Table | None:
        """The rows saved before: the table at `out` and any finished chunks (resume only)."""
        saved = self._saved_parts()
        if not self.out.exists() and not saved:
            return None
        if not resume:
            what = str(self.out) if self.out.exists() else f"{self.parts} (an interrupted sweep's chunks)"
            raise ValueError(f"out={str(self.out)!r}: {what} exists; pass resume=True (--resume) to continue "
                             "that sweep, or choose another output path.")
        tables = [read_table(self.out, self.csv)] if self.out.exists() else []
        tables += [read_table(p) for p in saved]
        return _unique(pa.concat_tables(tables))

    def append(self, position: int, table: pa.Table) -> None:
        """Save one finished chunk, atomically."""
        import pyarrow.parquet as pq

        self.parts.mkdir(exist_ok=True)
        atomic_write(self.parts / f"chunk-{position:012d}.parquet", lambda f: pq.write_table(table, f))

    def finish(self) -> pa.Table:
        """Write the whole table (the rows at `out` first, then the chunks in grid order); drop the parts."""
        tables = [read_table(self.out, self.csv)] if self.out.exists() else []
        tables += [read_table(p) for p in self._saved_parts()]
        table = _unique(pa.concat_tables(tables)) if tables else SCHEMA.empty_table()
        write_table(table, self.out, self.csv)
        shutil.rmtree(self.parts, ignore_errors=True)
        return table


def _take_lock(path: Path, out: Path):
    # the standard lock-file dance: after locking, check that the file is still the one at
    # `path` (a finishing sweep removes it), or start again with the new one
    while True:
        f = open(path, "a+")  # noqa: SIM115 - held open until the sweep ends
        try:
            _lock(f)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise FileExistsError(
                f"--out {str(out)!r} is being written by another linlab sweep (process {holder}); wait for it "
                "to finish, then --resume it if needed, or choose another --out."
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _lock(f) -> None:
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover
        import msvcrt

        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)


def _release_lock(f, path: Path) -> None:
    if f is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)  # removed while still held: a waiting sweep sees a new file (see _take_lock)
    f.close()  # closing releases the lock
