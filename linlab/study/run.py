"""The whole study in order: the seed's programs, the answers, the report folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .programs import SEED_PROGRAMS, Replay, replay, save_seed_checkpoint

STEPS = (
    *(f"step {p.step}: {p.name}" for p in SEED_PROGRAMS),
    "1: the rank floor", "2: the stability bound", "3: fewer iterations",
    "4: the width sweep (SGD and Adam)", "4: sharpness and wall time per width", "5: Adam against SGD",
    "6: condensing a wide network", "report: plots, report.md, report.html",
)


@dataclass
class Study:
    """Everything ``linlab reproduce`` computed: replays, answers, the sweep and the files written."""

    replays: list[Replay]
    answers: dict = field(default_factory=dict)
    sweep: object = None  # the pyarrow table of the width sweep
    paths: dict = field(default_factory=dict)  # singular-value paths of two runs, for the plot
    files: dict = field(default_factory=dict)  # what -> path
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready: each program's lines and summary, the answers, the config, the files."""
        return {
            "programs": [{**r.summary(), "lines": r.lines} for r in self.replays],
            "answers": self.answers, "config": self.config,
            "files": {k: str(v) for k, v in self.files.items()},
        }


@contextmanager
def single_threaded():
    """Run torch and the BLAS on one thread: the study's matrices are small, and threads
    contending on a busy 2-core machine were measured 15-20x slower."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def run_study(out, *, fast: bool = False, progress: Callable[[str], None] | None = None,
              on_program: Callable[[Replay], None] | None = None) -> Study:
    """Run the seed study and write its report folder `out`.

    Parameters
    ----------
    out : path
        The report folder (made if missing).
    fast : bool
        Cut the sweep to two seeds and fewer learning rates (for tests).
    progress : callable, optional
        Called with the name of each step as it starts (see `STEPS`).
    on_program : callable, optional
        Called with each program's :class:`~linlab.study.programs.Replay` as it finishes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = iter(STEPS)
    step = (lambda: progress(next(say))) if progress is not None else (lambda: next(say))
    with single_threaded():
        replays = []
        for p in SEED_PROGRAMS:
            step()
            replays.append(replay(p))
            if on_program is not None:
                on_program(replays[-1])
        study = Study(replays, config={"fast": fast})
        _answer(study, step, fast)
    step()
    _write(study, out)
    return study


def _answer(study: Study, step, fast: bool) -> None:
    from ..data import seed_dataset, seed_factors
    from . import answers as a
    from .scaling import EPOCHS, scaling_grids, scaling_sweep

    data = seed_dataset()
    by_name = {r.program.name: r for r in study.replays}
    step()
    study.answers["rank_floor"] = a.answer_rank_floor(data, by_name)
    step()
    study.answers["stability"] = a.answer_stability(data, by_name)
    step()
    study.answers["fewer_iterations"] = a.answer_fewer_iterations(data, by_name)
    step()
    study.sweep = scaling_sweep(data, fast)
    rows = study.sweep.drop_columns(["history"]).to_pylist()
    grids = scaling_grids(fast)
    seeds = grids[0].axes["seed"]
    study.config.update(sweep=[{"fixed": g.fixed, "axes": g.axes} for g in grids], max_epochs=EPOCHS)
    step()
    study.answers["scaling"] = a.answer_scaling(data, rows, seeds)
    step()
    study.answers["adam"] = a.answer_adam(rows, by_name)
    step()
    study.answers["condense"], study.paths = _condense(data, study.answers["scaling"], seed_factors)


def _condense(data, scaling: dict, seed_factors) -> tuple[dict, dict]:
    from ..compress import compress
    from .answers import singular_value_path

    widest = max((e for e in scaling["sgd"] if e["best"]["epochs_median"] is not None), key=lambda e: e["width"])
    wide = singular_value_path(data, (10, widest["width"], 2), widest["best"]["lr"], 3000)
    seed5 = singular_value_path(data, (10, 5, 2), 1e-5, 700, factors=seed_factors((10, 5, 2)))
    result = wide.pop("result")
    seed5.pop("result")
    c = compress(data.X, data.Y, result.factors, tol=1e-4)
    answer = {**c.to_dict(), "trained_lr": widest["best"]["lr"], "trained_outcome": result.outcome,
              "trained_epochs": result.epochs_to_tol, "tol": 1e-4,
              "balancedness": _balancedness(c.factors)}
    return answer, {"wide": wide, "seed-width5": seed5}


def _balancedness(factors) -> float:
    from ..theory import balancedness

    return float(balancedness(factors))


def _write(study: Study, out: Path) -> None:
    from ..atomic import atomic_write
    from ..cli.output import jsonable
    from ..report.study import write_study_report
    from ..sweeps import write_table

    study.files["model"] = out / "model.ckpt"
    save_seed_checkpoint(study.replays[-1], study.files["model"])
    study.files["table"] = write_table(study.sweep, out / "results.parquet")[0]
    study.files["config"] = out / "config.json"
    text = json.dumps(jsonable(study.config), indent=2)
    atomic_write(study.files["config"], lambda f: f.write(text.encode()))
    study.files.update(write_study_report(study, out))
    study.files["results"] = out / "results.json"
    text = json.dumps(jsonable(study.to_dict()), indent=1)
    atomic_write(study.files["results"], lambda f: f.write(text.encode()))
