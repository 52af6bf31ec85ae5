"""Run-epochs per second of the batched engine against the seed's own loops, on the seed data.

Every row trains B runs of the architecture (10, h, 2) on the seed's 1000 x 10 data with
plain SGD (the seed's loss and update) for a fixed number of epochs (no run stops early),
and divides the run-epochs done by the wall time of the whole ``fit_batched`` call (initial
factors, statistics, records included). The two references are measured in the same
process on the same widths, one run at a time:

- seed NumPy: the seed's steps 2-3 loop (forward, loss, hand-written backward, update);
- seed torch: the seed's step 7 loop (an ``nn.Module`` of two bias-free ``nn.Linear``,
  ``MSELoss(reduction='sum')``, ``optim.SGD``), in float32 as the seed runs it.

A width "1-64" row gives run i the hidden width 1 + i % 64; its references average the
per-epoch time of the loops over h = 1..64. References are measured before and after each
width's rows and averaged, as the pace of a shared machine drifts. Peak memory is the rise of the process's peak
resident set during the call (CPU) or the peak of allocated CUDA memory.

Rows marked "compiled" pass ``compile=True``: on the CPU, SGD stacks run in the C kernel of
:mod:`linlab.engines.batched.kernels.native` (on a GPU, TorchInductor's code,
:mod:`linlab.engines.batched.kernels.fused`).
Before a width's compiled rows, one small call builds or compiles what they use and the time
it takes is printed (once per process; the kernel's on-disk cache, and TorchInductor's,
make later processes faster), then the garbage it left is collected; a short call of the
largest size warms the memory allocator (eager and compiled alike), so the rows give the
steady pace of a long sweep.

    python benchmarks/sweep_throughput.py            # widths 1, 4, 16, 64, 1-64; B up to 10,000
    python benchmarks/sweep_throughput.py --quick    # a short version
    python benchmarks/sweep_throughput.py --device cuda
    python benchmarks/sweep_throughput.py --compile off   # eager rows only (no C++ compiler needed)

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from linlab import TrainConfig, seed_dataset
from linlab.engines.batched import fit_batched

LR = 1e-7  # stable for every width here (randn factors): the runs all go the full distance


def seed_numpy_seconds(x, y, hidden: int, epochs: int) -> float:
    """Seconds per epoch of the seed's NumPy loop (steps 2-3) for widths (10, hidden, 2)."""
    rs = np.random.RandomState(1)
    w1, w2 = rs.randn(10, hidden), rs.randn(hidden, 2)
    tick = time.perf_counter()
    for _ in range(epochs):
        h = x.dot(w1)
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y).sum()  # noqa: F841 (the seed prints it every 10 epochs)
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h)
        w1 -= grad_w1 * LR
        w2 -= grad_w2 * LR
    return (time.perf_counter() - tick) / epochs


class TwoLayerNet(torch.nn.Module):  # the seed's step 7
    def __init__(self, input_size, H, output_size):
        super().__init__()
        self.linear1 = torch.nn.Linear(input_size, H, bias=False)
        self.linear2 = torch.nn.Linear(H, output_size, bias=False)

    def forward(self, x):
        return self.linear2(self.linear1(x))


def seed_torch_seconds(x, y, hidden: int, epochs: int) -> float:
    """Seconds per epoch of the seed's nn.Module + optim.SGD loop (step 7)."""
    torch.manual_seed(1)
    model = TwoLayerNet(10, hidden, 2)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    tick = time.perf_counter()
    for epoch in range(epochs):
        loss = loss_fn(model(x), y)
        if (epoch + 1) % 10 == 0:
            loss.item()  # the seed prints it
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - tick) / epochs


def references(data, hiddens, epochs: int) -> tuple[float, float]:
    """Epochs per second of both seed loops, averaged (in time) over `hiddens`."""
    x, y = data.X, data.Y
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    per = max(10, epochs // len(hiddens))
    numpy_s = np.mean([seed_numpy_seconds(x, y, h, per) for h in hiddens])
    torch_s = np.mean([seed_torch_seconds(xt, yt, h, per) for h in hiddens])
    return 1.0 / numpy_s, 1.0 / torch_s


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set
        return True
    except OSError:
        return False


def _configs(hiddens, B: int, epochs: int, dtype: str, device: str) -> list[TrainConfig]:
    return [
        TrainConfig(widths=(10, hiddens[i % len(hiddens)], 2), lr=LR * (0.5 + (i % 10) / 10), epochs=epochs,
                    seed=i, tol=0.0, stall_window=epochs + 1, dtype=dtype, device=device)
        for i in range(B)
    ]


def compile_seconds(data, hiddens, dtypes, device: str) -> float:
    """Seconds of a small compiled call per dtype: the graphs a width's compiled rows use."""
    tick = time.perf_counter()
    for dtype in dtypes:
        fit_batched(data, _configs(hiddens, 2 * 64, 20, dtype, device), device=device, compile=True)
    gc.collect()
    return time.perf_counter() - tick


def warm_up(data, hiddens, B: int, dtypes, modes, device: str) -> None:
    """A short call of the largest size per dtype and mode: the C library's allocator then
    keeps large buffers instead of mapping fresh pages for every one, as it does after the
    first batches of a long sweep."""
    for dtype in dtypes:
        for mode in modes:
            fit_batched(data, _configs(hiddens, B, 10, dtype, device), device=device, compile=mode)


def batched_rate(data, hiddens, B: int, epochs: int, dtype: str, device: str,
                 compile: bool = False) -> tuple[float, float]:
    """(run-epochs per second, peak MiB) of one fit_batched call over B runs."""
    configs = _configs(hiddens, B, epochs, dtype, device)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _rss_kib("VmRSS") if _reset_peak() else None
    tick = time.perf_counter()
    results = fit_batched(data, configs, device=device, compile=compile)
    seconds = time.perf_counter() - tick
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (_rss_kib("VmHWM") - base) / 1024 if base is not None else float("nan")
    return sum(r.epochs for r in results) / seconds, peak


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and epochs (about half a minute)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 300, quick 100)")
    parser.add_argument("--compile", default="both", choices=["off", "on", "both"],
                        help="eager rows, compiled rows (B >= 100), or both")
    args = parser.parse_args(argv)
    epochs = args.epochs or (100 if args.quick else 300)
    sizes = [1, 100, 1000] if args.quick else [1, 10, 100, 1000, 10000]
    widths = {"5": [5], "1-64": list(range(1, 65))} if args.quick else {
        "1": [1], "4": [4], "16": [16], "64": [64], "1-64": list(range(1, 65))}
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    data = seed_dataset()
    fit_batched(data, [TrainConfig(epochs=2, device=args.device)])  # warm up torch
    print(f"seed data 1000 x 10 -> 2, plain SGD, {epochs} epochs per run, device {args.device}, "
          f"{torch.get_num_threads()} threads\n")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    print("| hidden | B | dtype | compiled | run-epochs/s | vs seed NumPy | vs seed torch | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for label, hiddens in widths.items():
        if True in modes:
            seconds = compile_seconds(data, hiddens, dtypes, args.device)
            notes.append(f"compiling for hidden {label}: {seconds:.1f} s")
        warm_up(data, hiddens, max(sizes), dtypes, modes, args.device)
        before = references(data, hiddens, epochs)
        rows = [(B, dtype, mode, *batched_rate(data, hiddens, B, epochs, dtype, args.device, mode))
                for B in sizes for dtype in dtypes for mode in modes if B >= 100 or not mode]
        after = references(data, hiddens, epochs)  # the machine may have changed pace meanwhile
        numpy_rate, torch_rate = ((a + b) / 2 for a, b in zip(before, after))
        print(f"| {label} | seed NumPy loop | float64 | | {numpy_rate:,.0f} | 1 | "
              f"{numpy_rate / torch_rate:.2f} | |")
        print(f"| {label} | seed torch loop | float32 | | {torch_rate:,.0f} | "
              f"{torch_rate / numpy_rate:.2f} | 1 | |")
        for B, dtype, mode, rate, peak in rows:
            print(f"| {label} | {B:,} | {dtype} | {'yes' if mode else 'no'} | {rate:,.0f} | "
                  f"{rate / numpy_rate:.1f} | {rate / torch_rate:.1f} | {peak:.0f} |", flush=True)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
