"""``linlab reproduce``: the seed study from start to finish, and its report.

First the seed's programs, each printing its log lines exactly as the original did, then
how it ended and the learned W against the true one; then the answers to the seed's
questions, each computed; then the report folder. A progress bar on stderr names the step
that runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


def check_output_dir(option: str, path: Path) -> None:
    """Refuse, before any work, an output folder that is a file or lies under one."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {str(path)!r} is a file; give a folder (it is made if missing), "
                                 f"such as {path.with_suffix('')}-report.")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise NotADirectoryError(f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file; "
                                 "choose another folder.")


class _Steps:
    """A rich progress bar on stderr over the study's steps, naming the one that runs."""

    def __init__(self, total: int, console=None):
        self.console, self.total, self.progress, self.task = console, total, None, None

    def __call__(self, name: str) -> None:
        if self.console is None:
            return
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("reproduce"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console, transient=True)
            self.task = self.progress.add_task(name, total=self.total)
            self.progress.start()
        else:
            self.progress.advance(self.task)
        self.progress.update(self.task, description=name)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=self.total)
            self.progress.stop()


def _print_program(console, replay) -> None:
    from .output import jsonable

    s = jsonable(replay.summary())
    p = replay.program
    console.print(f"\n== step {p.step}: {p.title} [{p.name}] ==", markup=False)
    for line in replay.lines:
        console.print(line, markup=False)
    console.print(f"-> {replay.message}", markup=False)
    if s["end_to_end"] is None:
        console.print("   W1⋯WL is not finite: nothing learned to compare with the true W.", markup=False)
        return
    console.print(f"   learned W against the true W: max |error| {s['max_abs_error']:.3g}, "
                  f"‖W − W_true‖/‖W_true‖ = {s['relative_error']:.3g}", markup=False)
    for learned, true in zip(s["end_to_end"], s["W_true"]):
        console.print("   " + "  ".join(f"{v:9.4f}" for v in learned) + "   |  "
                      + "  ".join(f"{v:4.0f}" for v in true), markup=False)


def _print_answers(console, a: dict) -> None:
    f, s, q, c = a["rank_floor"], a["stability"], a["fewer_iterations"], a["condense"]
    say = [
        "\n== the seed's questions, answered ==",
        f"1. width 1: rank(W1·W2) <= 1 < rank 2 of the fit; floor {f['floor_loss']:.1f} "
        f"({100 * f['floor_share']:.1f}% of ‖Y‖²); the seed's run stalled at {f['run_final_loss']:.4f}; "
        f"width {f['width_needed']} removes it",
        f"2. nan: GD on W is stable for lr < 2/λmax = {s['direct_bound']:.4g} "
        f"(0.98x: {s['direct_below']['outcome']}, 1.02x: {s['direct_above']['outcome']}); "
        f"width 1 at the seed's start: lr < {s['width1_bound']:.3g}, "
        f"and the seed's 0.01 is {s['seed_lr_over_bound']:.0f}x that",
        f"3. fewer iterations: lr 2/(λmin+λmax) = {q['optimal_lr']:.4g} reaches tol in {q['run_epochs']} epochs "
        f"(forecast {q['forecast_epochs']}) against {q['seed_run_epochs']} at lr 1e-5; heavy ball "
        f"{q['momentum_run_epochs']}",
        "4. more parameters, each width at its best lr (SGD; epochs: median over seeds):",
    ]
    for e in a["scaling"]["sgd"]:
        b = e["best"]
        epochs = "never (rank floor)" if b["epochs_median"] is None else f"{b['epochs_median']:g} epochs"
        flops = "" if e["flops_to_tol"] is None else f", {e['flops_to_tol']:.2g} FLOPs"
        say.append(f"   h={e['width']:<4d} {e['n_params']:5d} params  lr {b['lr']:.2g}: {epochs}{flops}"
                   f"  (at lr 1e-5: {e['fixed']['converged']}/{e['fixed']['runs']} reach tol)")
    adam = [x["best"]["epochs_median"] for x in a["adam"]["adam"] if x["best"]["epochs_median"] is not None]
    if adam:
        say.append(f"5. Adam at its best lr: {min(adam):g}-{max(adam):g} epochs at every width "
                   f"(the seed's Adam: {a['adam']['seed_adam_epochs']}, its SGD: {a['adam']['seed_sgd_epochs']})")
    say.append(f"6. condensed: widths {tuple(c['original_widths'])} -> {tuple(c['widths'])} "
               f"({c['original_params']} -> {c['params']} params), "
               f"loss {c['original_loss']:.3g} -> {c['loss']:.3g}")
    for line in say:
        console.print(line, markup=False)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("linlab-report"),
              show_default=True, help="Folder for the report, plots, tables and the seed's model.ckpt.")
@click.option("--fast", is_flag=True, help="A smaller sweep (fewer seeds and lrs), for tests.")
@click.option("--quiet", is_flag=True, help="No log lines and no progress bar: the answers only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def reproduce(out, fast, quiet, as_json):
    """Run the seed study end to end and write its report.

    \b
    Examples:
      linlab reproduce
      linlab reproduce --out report --quiet
    """
    from rich.console import Console

    from ..study.run import STEPS, run_study

    check_output_dir("--out", out)
    steps = _Steps(len(STEPS), None if quiet else Console(stderr=True))
    console = Console(highlight=False, soft_wrap=True)
    show = None if (quiet or as_json) else (lambda replay: _print_program(console, replay))
    try:
        study = run_study(out, fast=fast, progress=steps, on_program=show)
    finally:
        steps.close()
    if as_json:
        from .output import jsonable

        click.echo(json.dumps(jsonable(study.to_dict())))
        return
    _print_answers(console, study.answers)
    console.print(f"\nreport: {study.files['report']} ({len(study.files)} files in {out})", markup=False)
