"""The whole study in order: the seed's programs, the answers, the report folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .programs import SEED_PROGRAMS, Replay, replay, save_seed_checkpoint

STEPS = (*(f"step {p.step}: {p.name}" for p in SEED_PROGRAMS), "report")


@dataclass
class Study:
    """Everything ``linlab reproduce`` computed: replays, answers and the files written."""

    replays: list[Replay]
    answers: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # what -> path
    fast: bool = False

    def to_dict(self) -> dict:
        """JSON-ready: each program's lines and summary, the answers, the files."""
        return {
            "programs": [{**r.summary(), "lines": r.lines} for r in self.replays],
            "answers": self.answers, "files": {k: str(v) for k, v in self.files.items()}, "fast": self.fast,
        }


def run_study(out, *, fast: bool = False, progress: Callable[[str], None] | None = None,
              on_program: Callable[[Replay], None] | None = None) -> Study:
    """Run the seed study and write its report folder `out`.

    Parameters
    ----------
    out : path
        The report folder (made if missing).
    fast : bool
        Cut the sweep to a few seeds and learning rates (for tests).
    progress : callable, optional
        Called with the name of each step as it starts (see `STEPS`).
    on_program : callable, optional
        Called with each program's :class:`~linlab.study.programs.Replay` as it finishes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda name: None)
    replays = []
    for p, name in zip(SEED_PROGRAMS, STEPS):
        say(name)
        replays.append(replay(p))
        if on_program is not None:
            on_program(replays[-1])
    study = Study(replays, fast=fast)
    say("report")
    study.files["model"] = out / "model.ckpt"
    save_seed_checkpoint(replays[-1], study.files["model"])
    study.files["report"] = _write_log(study, out / "seed-programs.txt")
    return study


def _write_log(study: Study, path: Path) -> Path:
    from ..atomic import atomic_write

    text = "\n".join(f"== step {r.program.step}: {r.program.title} [{r.program.name}] ==\n" + "\n".join(r.lines)
                     + f"\n-> {r.outcome}: {r.message}\n" for r in study.replays)
    atomic_write(path, lambda f: f.write(text.encode()))
    return path
