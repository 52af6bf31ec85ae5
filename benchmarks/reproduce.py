"""The wall time of ``linlab reproduce``, whole and step by step, against the seed's programs alone.

Three measurements, side by side on the same machine:

- the command: ``linlab reproduce --quiet --out DIR`` in a fresh process (Python start and
  imports included), wall time and CPU time;
- its steps: :func:`linlab.study.run.run_study` in this process, the wall time of each step
  (the progress bar's names);
- the reference: the seed's own programs alone (``linlab.study.replay`` of all eight runs)
  in a fresh process, so the ratio says what the answers, the sweep and the report add.

    python benchmarks/reproduce.py [--fast] [--repeat 3]

Timings are printed, never asserted. Repeat on a busy machine: the minimum is the figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

SEED_PROGRAMS_ONLY = (
    "from linlab.study.run import single_threaded\n"
    "from linlab.study import SEED_PROGRAMS, replay\n"
    "with single_threaded():\n"
    "    [replay(p) for p in SEED_PROGRAMS]\n"
)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def steps(fast: bool) -> list[tuple[str, float]]:
    from linlab.study.run import run_study

    marks = []
    with tempfile.TemporaryDirectory() as out:
        run_study(out, fast=fast, progress=lambda name: marks.append((name, time.perf_counter())))
        marks.append(("end", time.perf_counter()))
    return [(name, t1 - t0) for (name, t0), (_, t1) in zip(marks, marks[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="time `linlab reproduce --fast`")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    linlab = ["linlab"]
    runs = {"linlab reproduce": [], "seed programs alone": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            runs["linlab reproduce"].append(timed([*linlab, "reproduce", "--quiet", "--out", out]
                                                  + (["--fast"] if args.fast else [])))
        runs["seed programs alone"].append(timed([sys.executable, "-c", SEED_PROGRAMS_ONLY]))
    print(f"cpu cores available: {len(os.sched_getaffinity(0))}; best of {args.repeat}")
    print(f"{'':24s} {'wall s':>8s} {'cpu s':>8s}")
    for name, times in runs.items():
        print(f"{name:24s} {min(w for w, _ in times):8.2f} {min(c for _, c in times):8.2f}")
    ratio = min(w for w, _ in runs["linlab reproduce"]) / min(w for w, _ in runs["seed programs alone"])
    print(f"reproduce / seed programs alone (wall): {ratio:.2f}x")
    print("\nsteps of one run in this process (wall s):")
    for name, seconds in steps(args.fast):
        print(f"  {seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
