"""The explorer page in headless Chromium: its size, and the time from a slider change to
the redrawn curve.

For each setting (seed data, 1,000 epochs run to the end), the page's lr slider is moved
back and forth, ``--repeats`` times, by setting its value and dispatching an ``input``
event, as a drag does; the time runs from that event to the first animation frame after
the loss curve has been redrawn (uPlot's ``setData`` and the drawing it queues), so it
covers the task the page waits for, the whole training, the diagnosis and the drawing of
the curve, up to the frame that shows it. The two other views are drawn once that frame
is painted, and show in the next one; the next change waits for them. Baseline,
side by side in the same run: linlab's own numpy engine (``linlab.fit``) training the same
1,000 epochs from the page's factors, in this Python process.

    python benchmarks/explore.py               # 10 repeats per setting
    python benchmarks/explore.py --repeats 30

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from linlab import TrainConfig, fit, seed_dataset
from linlab.explore import MOMENTUM, write_explorer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]
# (label, controls): lrs chosen so that every run trains its 1,000 epochs to the end
SETTINGS = [
    ("depth 1, SGD", dict(depth=1, optimizer="sgd", lr=1e-6)),
    ("depth 2 (h=10), SGD", dict(depth=2, width=10, optimizer="sgd", lr=1e-7)),
    ("depth 3 (h=10), Adam", dict(depth=3, width=10, optimizer="adam", lr=1e-4)),
    ("depth 4 (h=40), momentum", dict(depth=4, width=40, optimizer="momentum", lr=1e-11)),
]

MEASURE = """async ([lr]) => {
  const el = document.getElementById("lr"), api = window.linlabExplorer;
  const done = api.rendered(), t0 = performance.now();
  el.value = lr; el.dispatchEvent(new Event("input"));
  const state = await done;
  await new Promise((r) => requestAnimationFrame(() => r()));
  return { curve: state.curveShownAt - t0, train: state.trainMs, drawCurve: state.curveMs - state.trainMs,
           drawOthers: state.drawMs - (state.curveMs - state.trainMs), epochs: state.epochs,
           outcome: state.outcome };
}"""


def measure(page, controls: dict, repeats: int) -> list[dict]:
    page.evaluate("c => window.linlabExplorer.set(c)", {**controls, "epochs": 1000})
    base = np.log10(controls["lr"])
    return [page.evaluate(MEASURE, [str(base + (0.01 if i % 2 == 0 else 0.0))]) for i in range(repeats)]


def numpy_seconds(data, state) -> float:
    c = state["controls"]
    config = TrainConfig(widths=tuple(state["widths"]), lr=c["lr"], epochs=c["epochs"],
                         optimizer="adam" if c["optimizer"] == "adam" else "sgd",
                         momentum=MOMENTUM if c["optimizer"] == "momentum" else 0.0)
    t0 = time.perf_counter()
    fit(data, config, factors=[np.array(W) for W in state["initial"]])
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from linlab.explore.page import _uplot

    data, load = seed_dataset(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_explorer(data, Path(tmp) / "explorer.html")
        size, uplot_size = path.stat().st_size, sum(len(text.encode()) for text in _uplot())
        print(f"page: {size / 1024:.1f} KiB ({size:,} bytes), of which uPlot {uplot_size / 1024:.1f} KiB; "
              f"the page's own HTML, CSS, JS and statistics {(size - uplot_size) / 1024:.1f} KiB")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function("window.linlabExplorer && window.linlabExplorer.state().runs > 0",
                                   timeout=120_000)
            print(f"open to first drawing: {time.perf_counter() - t0:.2f} s\n")
            print("| setting | epochs | slider change → frame showing the redrawn curve, median (p90) ms | "
                  "training + diagnosis | drawing: the curve, the other two views | "
                  "linlab.fit, numpy engine, same epochs | training: page / numpy |")
            print("|---|---|---|---|---|---|---|")
            for label, controls in SETTINGS:
                times = measure(page, controls, args.repeats)
                state = page.evaluate("window.linlabExplorer.state()")
                curve = [t["curve"] for t in times]
                train = statistics.median(t["train"] for t in times)
                first = numpy_seconds(data, state)  # the best of three, or one when it takes seconds
                more = [] if first > 2 else [numpy_seconds(data, state) for _ in range(2)]
                numpy_ms = 1e3 * min([first, *more])
                med, p90 = statistics.median(curve), sorted(curve)[int(0.9 * (len(curve) - 1))]
                draw = [statistics.median(t[key] for t in times) for key in ("drawCurve", "drawOthers")]
                print(f"| {label} | {times[-1]['epochs']} ({times[-1]['outcome']}) | {med:.1f} ({p90:.1f}) | "
                      f"{train:.1f} ms | {draw[0]:.1f} ms, {draw[1]:.1f} ms | {numpy_ms:.1f} ms | "
                      f"{train / numpy_ms:.2f} |")
            browser.close()
    print(f"\nload average (1 min): {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"({os.cpu_count()} cores)")
    print("one frame at 60 Hz is 16.7 ms; timings vary with the machine's load (printed, never asserted)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
