"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new
one, never half of one.

The bytes go to a temporary file ``.{name}.tmp-*`` in the target's folder, are flushed and
fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX and Windows), and
the folder is fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# a write that fails because the device or the user's quota has no room left
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OSError):
    """A write refused for lack of space; the target is left as it was. The CLI exits 2."""

    def __str__(self):
        return self.strerror


def atomic_write(path, write: Callable) -> Path:
    """Call ``write(f)`` on a binary file that replaces `path` only once it is complete.

    Examples
    --------
    >>> import pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> _ = atomic_write(target, lambda f: f.write(b"done"))
    >>> target.read_bytes()
    b'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in FULL:
            raise _disk_full(path, e) from None
        raise
    _fsync_dir(path.parent)
    return path


def _disk_full(path: Path, e: OSError) -> DiskFullError:
    kept = f"{path} is unchanged" if path.exists() else f"{path} was not created"
    return DiskFullError(
        e.errno, f"could not write {path}: its disk is full ({e.strerror}); {kept} and no partial "
        "file is left. Free some space (or raise the quota), or write to another folder."
    )


def clean_temp_files(path) -> list[Path]:
    """Remove the ``.{name}.tmp-*`` files that an interrupted write of `path` left behind.

    A temporary file names the process writing it; one whose process is still alive is
    another writer's work in progress and is left alone.

    Examples
    --------
    >>> import pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / ".run.pt.tmp-123").write_bytes(b"partial")
    >>> [p.name for p in clean_temp_files(folder / "run.pt")]
    ['.run.pt.tmp-123']
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        if _writer_alive(tmp.name[len(path.name) + 6:]):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _writer_alive(suffix: str) -> bool:
    # "{pid}-{random}": is that process still running? (older files name no process)
    pid, dash, _ = suffix.partition("-")
    if not (dash and pid.isdigit()):
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:
        return True  # another user's process, or one we cannot ask: not ours to remove
    return True


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; some platforms cannot open a folder: then skip
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
