"""Hostile inputs and concurrent writers, tried through the CLI: every one must end in a clear
error (exit 2, a one-line message) or a correct result, never a traceback, a hang or a lost file.

    PYTHONPATH=. python scripts/hostile.py [--cases N] [--writers N]

Bad inputs: data files damaged at random (bytes flipped, cut short, NUL and BOMs spliced in,
numbers blown up), checkpoints with edited fields and damaged bytes, and grids with values
no machine can run; each goes to ``linlab train``/``predict``/``sweep`` in-process with a
timeout. Concurrent writers: forked processes save checkpoints to one path at once while a
reader loads it. Prints a tally; exits 1 if any input escaped as a traceback or a hang.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from linlab.checkpoint import CheckpointCallback, load_checkpoint, save_checkpoint
from linlab.cli import main
from linlab.config import TrainConfig
from linlab.data import synthetic
from linlab.engines import fit

TIMEOUT_S = 60
CSV = "a,b,c,y\n" + "".join(f"{i},{i % 7},{(i * 3) % 5},{2 * i + 1}\n" for i in range(40))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run(args) -> tuple[str, str]:
    """'ok', 'refused' (exit 2, a message) or 'escaped' (anything else), with the output."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    except Hang:
        return "escaped", f"hung past {TIMEOUT_S} s"
    finally:
        signal.alarm(0)
    if isinstance(result.exception, Hang):
        return "escaped", f"hung past {TIMEOUT_S} s"
    if result.exit_code == 0:
        return "ok", ""
    if result.exit_code == 2 and "Error: " in result.output and "Traceback" not in result.output:
        return "refused", result.output[result.output.index("Error: "):]
    detail = "".join(traceback.format_exception(result.exception)) if result.exception else result.output
    return "escaped", detail[-800:]


def damaged(data: bytes, draw: random.Random) -> bytes:
    """One random kind of damage to a file's bytes."""
    kind = draw.randrange(6)
    b = bytearray(data)
    if kind == 0:  # flip bytes
        for _ in range(draw.randint(1, 20)):
            b[draw.randrange(len(b))] = draw.randrange(256)
    elif kind == 1:  # cut short
        b = b[: draw.randrange(len(b))]
    elif kind == 2:  # NUL bytes spliced in
        i = draw.randrange(len(b))
        b[i:i] = b"\0" * draw.randint(1, 64)
    elif kind == 3:  # another encoding's byte-order mark in front
        b[0:0] = draw.choice([b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\0\0", b"\xef\xbb\xbf"])
    elif kind == 4:  # a chunk duplicated somewhere else
        i, j = sorted(draw.randrange(len(b)) for _ in range(2))
        k = draw.randrange(len(b))
        b[k:k] = b[i:j]
    else:  # a huge or odd number in place of a digit
        i = draw.randrange(len(b))
        b[i:i + 1] = draw.choice([b"1e308", b"-1e400", b"nan", b"inf", b"9" * 40, b"0x1f", b"1,5"])
    return bytes(b)


def data_files(folder: Path) -> dict[str, bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.random.default_rng(0).standard_normal((40, 4))
    files = {"t.csv": CSV.encode(), "t.tsv": CSV.replace(",", "\t").encode()}
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "y": X[:, 2]})
    for name, write in (("t.npy", lambda f: np.save(f, X)),
                        ("t.npz", lambda f: np.savez(f, X=X[:, :3], Y=X[:, 3])),
                        ("t.parquet", lambda f: pq.write_table(table, f))):
        buf = io.BytesIO()
        write(buf)
        files[name] = buf.getvalue()
    return files


def checkpoint_bytes(folder: Path) -> bytes:
    path = folder / "good.pt"
    cb = CheckpointCallback(path)
    data = synthetic(n=40, d=3, k=1, seed=1)
    cb.final(fit(data, TrainConfig(widths=(3, 2, 1), optimizer="adam", lr=1e-2, epochs=5), callbacks=[cb]))
    return path.read_bytes()


def edited_checkpoints(good: Path, folder: Path):
    obj = torch.load(good, weights_only=True)
    w = obj["state_dict"]["layers.0.weight"]
    edits = [dict(lr=-1.0), dict(lr=float("nan")), dict(lr=0.0), dict(lr=float("inf")), dict(epoch=-3),
             dict(epoch=2**70), dict(format_version=99), dict(history=torch.zeros(2, 2)), dict(rng=None)]
    weights = [w * float("nan"), w * float("inf"), w.to(torch.complex128), w.to(torch.int32), w[:1], w.T]
    for i, change in enumerate(edits + [{"state_dict": {**obj["state_dict"], "layers.0.weight": v}}
                                        for v in weights]):
        path = folder / f"edited{i}.pt"
        torch.save({**obj, **change}, path)
        yield path


GRID = 'data = "synthetic:n=40,d=3,k=1,seed=1"\n[fixed]\nepochs = 5\n[grid]\n'
GRIDS = ["seed = [18446744073709551616]", "epochs = [1e12]", "epochs = [inf]", "seed = {range = [0, 99999999]}",
         "width = {range = [1, 1000000000000]}\ndepth = [2]", "depth = {range = [1, 1000000000]}\nwidth = [2]",
         "lr = {log_range = [1e-6, 1e-3, 1e12]}", "widths = [[3, 100000000, 1]]", "lr = [-1]", "lr = []",
         "batch_size = [0]", "optimizer = [\"sgd\", {name = \"sgd\", momentum = 2}]"]
SPECS = ["synthetic:n=1e11", "synthetic:d=100000000", "synthetic:n=0", "synthetic:n=-5", "synthetic:rank=9",
         "/dev/zero", "/dev/null", "/", "synthetic:noise=nan", "synthetic:condition=0.5"]


def bad_inputs(folder: Path, cases: int, draw: random.Random):
    """(kind, argv) of every hostile input."""
    files = data_files(folder)
    for i in range(cases):
        name = draw.choice(sorted(files))
        path = folder / f"bad{i}{Path(name).suffix}"
        path.write_bytes(damaged(files[name], draw))
        yield "damaged data file", ["train", "--data", path, "--epochs", "3"]
    good = folder / "good.pt"
    good.write_bytes(checkpoint_bytes(folder))
    (folder / "new.csv").write_text("x0,x1,x2\n1,2,3\n")
    for i in range(cases // 4):
        path = folder / f"ckpt{i}.pt"
        path.write_bytes(damaged(good.read_bytes(), draw))
        yield "damaged checkpoint", ["predict", "--checkpoint", path, "--input", "new.csv"]
    for path in edited_checkpoints(good, folder):
        yield "edited checkpoint", ["predict", "--checkpoint", path, "--input", "new.csv"]
    for i, axis in enumerate(GRIDS):
        (folder / f"grid{i}.toml").write_text(GRID + axis + "\n")
        yield "impossible grid", ["sweep", "--config", folder / f"grid{i}.toml", "--out", f"runs{i}.parquet"]
    for spec in SPECS:
        yield "impossible data", ["train", "--data", spec]
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    yield "impossible data", ["train", "--data", fifo]


def concurrent_writers(folder: Path, writers: int, saves: int) -> tuple[int, int]:
    """Forked processes save to one checkpoint at once while this one loads it: (loads, failures)."""
    data = synthetic(n=40, d=3, k=1, seed=1)
    states = []
    config = TrainConfig(widths=(3, 2, 1), lr=1e-2, epochs=writers)
    fit(data, config, callbacks=[lambda e: states.append(e.state())])
    path = folder / "shared.pt"
    save_checkpoint(path, states[0])
    children = []
    for w in range(writers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for _ in range(saves):
                    save_checkpoint(path, states[w])
            except BaseException:
                code = 1
            os._exit(code)
        children.append(pid)
    loads = failures = 0
    running = set(children)
    while running:
        try:
            epoch = load_checkpoint(path)["epoch"]
            failures += not 1 <= epoch <= writers
        except Exception:
            failures += 1
        loads += 1
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                running.discard(pid)
                failures += os.WEXITSTATUS(status) != 0
    failures += bool(list(folder.glob(".shared.pt.tmp-*")))
    return loads, failures


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="damaged data files (checkpoints: a quarter)")
    parser.add_argument("--writers", type=int, default=4, help="processes saving one checkpoint at once")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    draw = random.Random(args.seed)
    tally: dict[str, dict[str, int]] = {}
    escaped = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        for kind, argv in bad_inputs(folder, args.cases, draw):
            outcome, detail = run(argv)
            tally.setdefault(kind, {"ok": 0, "refused": 0, "escaped": 0})[outcome] += 1
            if outcome == "escaped":
                escaped.append((argv, detail))
        loads, failures = concurrent_writers(folder, args.writers, saves=25)
    total = sum(sum(t.values()) for t in tally.values())
    for kind, t in tally.items():
        print(f"{kind:20s} {sum(t.values()):4d} tried: {t['refused']:4d} refused with a message, "
              f"{t['ok']:4d} read correctly, {t['escaped']} escaped")
    print(f"{total} hostile inputs in {time.perf_counter() - t0:.0f} s; {len(escaped)} escaped")
    print(f"{args.writers} writers x 25 saves to one checkpoint: {loads} loads while they wrote, "
          f"{failures} failures")
    for argv, detail in escaped:
        print("\nESCAPED:", " ".join(map(str, argv)), "\n", detail)
    return 1 if escaped or failures else 0


if __name__ == "__main__":
    raise SystemExit(main_())
