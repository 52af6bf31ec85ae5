r"""The C kernel of fused SGD stacks on the CPU (``sgd_kernel.c``): built once per machine, loaded
with :mod:`ctypes`, run on several threads.

TorchInductor's code for :func:`~.fused.sgd_block` streams every intermediate of an epoch
through memory, one loop nest per operation; an epoch of tiny per-run products is then
bound by loads, at a few GFLOP/s. The C kernel keeps a block of 32 runs in the cache for a
whole call and does the same arithmetic with the run index as the vector lane, several
times faster, and it compiles in about a second instead of 7-60 s.

The library is built with the system's C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``;
``-O3 -march=native``, fused multiply-adds, no fast-math) into ``$LINLAB_CACHE_DIR`` (default
``~/.cache/linlab``), one file per source, dtype, compiler and CPU, written atomically so
that concurrent processes can share the folder. A library is code that runs on load, so the
folder is created 0700 and refused when another user owns it or others may write to it, and
a library is loaded only when its SHA-256 matches the one recorded when it was built (a
file found at its name otherwise is rebuilt over, with a warning). A compiler that runs
past ``COMPILE_TIMEOUT`` seconds is stopped. :func:`kernel` returns None (with a warning
that says why) when no compiler is found or the build fails; SGD stacks then run through
TorchInductor where the call compiles everything (``compile=True``), else eagerly.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from ....atomic import atomic_write

SOURCE = Path(__file__).with_name("sgd_kernel.c")
LANES = 32  # runs per vector lane block, as in the source: four independent vector chains (2-3x faster than 8)
MAX_DEPTH = 64  # deeper stacks run without the kernel
FLAGS = ("-O3", "-ffp-contract=fast", "-fno-math-errno", "-fPIC", "-shared")
# tried in turn until the compiler accepts one: the widest vectors this CPU has (512 bits
# measured 5-10% faster than gcc's default of 256 at h = 16)
TUNED = (("-march=native", "-mprefer-vector-width=512"), ("-march=native",), ())
COMPILE_TIMEOUT = 120.0  # seconds; a build takes about one
REALS = {torch.float64: "double", torch.float32: "float"}  # float builds with -DSINGLE


def _fields(real) -> list:
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    return [
        ("L", i64), ("H", ptr), ("B", i64), ("W", ptr), ("prev", ptr), ("buf", ptr),
        ("P", ptr), ("root", ptr), ("slam", ptr), ("sr", ptr), ("r", ptr),
        ("floor_", real), ("divisor", real), ("mu", real), ("wd", real), ("K", i64), ("t0", i64),
        ("base", ptr), ("scale", ptr), ("which", ptr), ("S", i64), ("constant", i64),
        ("alive", ptr), ("limit", ptr), ("best", ptr), ("factor", ptr), ("tol", ptr), ("rtol", ptr),
        ("epochs", ptr), ("window", ptr), ("stride", i64), ("history", ptr), ("best_hist", ptr),
        ("stop_t", ptr), ("codes", ptr), ("momentum", i64), ("nesterov", i64), ("decay", i64), ("next", i64),
    ]


class BlockF64(ctypes.Structure):
    """The call's arguments, ``Block`` in the source built with real = double (pointers to
    contiguous CPU data)."""

    _fields_ = _fields(ctypes.c_double)


class BlockF32(ctypes.Structure):
    """``Block`` with real = float."""

    _fields_ = _fields(ctypes.c_float)


STRUCTS = {torch.float64: BlockF64, torch.float32: BlockF32}


def pointers(tensors) -> ctypes.Array:
    """A C array of the tensors' data pointers (``real **`` in the source); keep it alive
    until the call returns."""
    return (ctypes.c_void_p * max(1, len(tensors)))(*[t.data_ptr() for t in tensors])


def cache_dir() -> Path:
    """Where built kernels are kept: ``$LINLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/linlab``, else
    ``~/.cache/linlab``."""
    root = os.environ.get("LINLAB_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "linlab"
    return Path(root) / "kernels"


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, or the first of cc, gcc, clang on the PATH."""
    found = (shutil.which(name) for name in (os.environ.get("CC"), "cc", "gcc", "clang") if name)
    return next((path for path in found if path), None)


def _machine() -> str:
    # what -march=native depends on: the CPU's model and features (a shared home folder may
    # serve several kinds of machine)
    try:
        with open("/proc/cpuinfo") as f:
            lines = [x for x in f if x.startswith(("model name", "flags", "Features", "CPU part"))]
        return platform.machine() + "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def private_dir(folder: Path) -> Path:
    """Create `folder` (mode 0700) if needed and check that only this user can change what is
    in it: a library loaded from a folder others can write to runs their code."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise PermissionError(f"the kernel cache {folder} belongs to another user (uid {st.st_uid}); "
                              "set $LINLAB_CACHE_DIR to a folder of your own")
    if st.st_mode & 0o022:
        raise PermissionError(f"the kernel cache {folder} is writable by others (mode "
                              f"{oct(st.st_mode & 0o777)}); run chmod 700 on it, or set $LINLAB_CACHE_DIR "
                              "to a folder of your own")
    return folder


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verified(target: Path) -> bool:
    """Whether `target` is a library this user built here: its hash matches the recorded one."""
    record = target.with_suffix(".sha256")
    if not target.exists():
        return False
    if record.exists() and record.read_text().strip() == sha256(target):
        return True
    why = "does not match the one recorded at build time" if record.exists() else "was never recorded"
    warnings.warn(f"{target} is not the C kernel that linlab built (its SHA-256 {why}); refusing to "
                  "load it and building it again.", RuntimeWarning, stacklevel=3)
    return False


def _compile(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{command[0]} ran past {COMPILE_TIMEOUT:g} s and was stopped") from None


def _build(cc: str, real: str) -> Path:
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, cc.encode(), real.encode(), " ".join(FLAGS).encode(),
                                      _machine().encode()])).hexdigest()[:20]
    target = private_dir(cache_dir()) / f"sgd_kernel_{real}_{key}.so"
    if verified(target):
        return target
    single = ["-DSINGLE"] if real == "float" else []
    with tempfile.TemporaryDirectory() as folder:
        built = Path(folder) / target.name
        for tuned in TUNED:
            done = _compile([cc, *FLAGS, *tuned, *single, str(SOURCE), "-o", str(built), "-lm"])
            if done.returncode == 0:
                break
        if done.returncode:
            said = (done.stderr or done.stdout).strip()
            raise RuntimeError(said.splitlines()[-1] if said else f"{cc} exited {done.returncode}")
        # the record first: a reader that sees the new library sees its hash (a concurrent
        # build writes the same bytes)
        atomic_write(target.with_suffix(".sha256"), lambda f: f.write(sha256(built).encode()))
        atomic_write(target, lambda f: f.write(built.read_bytes()))
    return target


@functools.cache
def kernel(dtype: torch.dtype):
    """The built ``sgd_block`` of this dtype (float64 or float32), or None with a warning when
    it cannot be built; cached per process."""
    cc = compiler()
    try:
        if cc is None:
            raise RuntimeError("no C compiler found (set $CC, or install gcc or clang)")
        lib = ctypes.CDLL(str(_build(cc, REALS[dtype])))
    except Exception as exc:
        warnings.warn(f"building the C kernel failed ({exc}); SGD stacks run without it (through "
                      "TorchInductor with compile=True, else eagerly: same results, slower). Set $CC to a "
                      "working C compiler, or $LINLAB_CACHE_DIR to a writable folder.",
                      RuntimeWarning, stacklevel=2)
        return None
    fn = lib.sgd_block
    fn.argtypes = [ctypes.POINTER(STRUCTS[dtype]), ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


@contextmanager
def host_threads():
    """torch on one thread inside, for the host's small operations around the kernel (starting
    its two dozen tiny parallel regions costs more than they do, and a spinning worker takes
    a core from the kernel's threads); yields the number of threads torch had, for the kernel.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    # one per process: a forked child inherits the parent's pool but not its threads
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="linlab-kernel")


def run(fn, block, B: int, threads: int | None = None) -> None:
    """Run ``fn`` on all lane blocks of `block`'s B runs on ``threads`` threads (default
    ``torch.get_num_threads()``), which take the blocks in turn; ctypes releases the GIL, so the
    threads run in parallel."""
    blocks = -(-B // LANES)
    threads = max(1, min(threads or torch.get_num_threads(), blocks))
    block.next = 0
    ref = ctypes.byref(block)
    pool = _pool(threads - 1, os.getpid()) if threads > 1 else None
    others = [pool.submit(fn, ref, 0, blocks) for _ in range(1, threads)] if pool else []
    status = [fn(ref, 0, blocks)] + [f.result() for f in others]  # this thread takes its share too
    if any(status):
        raise MemoryError("the C kernel could not allocate its scratch memory.")
