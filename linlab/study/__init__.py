"""The seed study, run end to end: its seven programs replayed to the digit, then its
questions answered with theory, runs and sweeps (``linlab reproduce``)."""

from .programs import SEED_PROGRAMS, Program, Replay, outcome_of, program, replay, save_seed_checkpoint

__all__ = ["SEED_PROGRAMS", "Program", "Replay", "outcome_of", "program", "replay", "save_seed_checkpoint"]
