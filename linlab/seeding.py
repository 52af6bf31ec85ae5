"""Many seeded generators at the price of one: ``numpy.random.default_rng(seed)`` for each of
thousands of seeds, without building thousands of bit generators.

``default_rng(seed)`` is ``Generator(PCG64(SeedSequence(seed)))``; building one costs about
25 µs, more than a sweep spends training a narrow run. The seeding is a fixed, documented
algorithm (NEP 19: NumPy keeps its streams stable), so :func:`seeded` computes every seed's
PCG64 state at once, with NumPy on uint32 words (the SeedSequence hash) and Python integers
(PCG64's 128-bit seeding step), and moves one Generator to each state in turn. What it yields
draws exactly what ``default_rng(seed)`` draws (``tests/test_seeding.py`` checks bit for bit).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# numpy/random/bit_generator.pyx (SeedSequence)
INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R, XSHIFT, POOL = 0xCA01F9DD, 0x4973F715, 16, 4
# numpy/random/src/pcg64 (PCG_DEFAULT_MULTIPLIER_128)
PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
MASK128 = (1 << 128) - 1


def _hashmix(value: np.ndarray, const: int, mult: int = MULT_A) -> tuple[np.ndarray, int]:
    # SeedSequence's hash of a word: with MULT_A while mixing the pool, MULT_B while drawing from it
    value = value ^ np.uint32(const)
    const = (const * mult) & 0xFFFFFFFF
    value = value * np.uint32(const)
    return value ^ (value >> np.uint32(XSHIFT)), const


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(MIX_MULT_L) * x - np.uint32(MIX_MULT_R) * y
    return result ^ (result >> np.uint32(XSHIFT))


def pool(seeds: np.ndarray) -> np.ndarray:
    """The SeedSequence pools (len(seeds), 4) uint32 of seeds in [0, 2**32) (one entropy word each)."""
    mixer, const = [], INIT_A
    for i in range(POOL):  # the entropy padded with zeros to the pool's size
        word, const = _hashmix(seeds if i == 0 else np.zeros_like(seeds), const)
        mixer.append(word)
    for src in range(POOL):  # every word mixed into every other
        for dst in range(POOL):
            if src != dst:
                hashed, const = _hashmix(mixer[src], const)
                mixer[dst] = _mix(mixer[dst], hashed)
    return np.stack(mixer, axis=1)


def pcg64_states(seeds: np.ndarray) -> list[tuple[int, int]]:
    """(state, inc) of ``PCG64(seed)`` for each seed in [0, 2**32)."""
    seeds = np.asarray(seeds, dtype=np.uint32)
    words, const = [], INIT_B
    mixed = pool(seeds)
    for i in range(8):  # generate_state(4, np.uint64): 8 uint32 words, the pool cycled
        word, const = _hashmix(mixed[:, i % POOL], const, MULT_B)
        words.append(word)
    halves = np.stack(words, axis=1).astype("<u4").view("<u8")  # (n, 4) uint64, as NumPy views them
    out = []
    for high, low, inc_high, inc_low in halves.tolist():
        inc = ((((inc_high << 64) | inc_low) << 1) | 1) & MASK128
        state = inc  # state 0, one step: 0 * PCG_MULT + inc
        state = ((state + ((high << 64) | low)) * PCG_MULT + inc) & MASK128  # + initstate, one step
        out.append((state, inc))
    return out


def seeded(seeds) -> Iterator[np.random.Generator]:
    """For each seed in turn, a Generator in the state of ``np.random.default_rng(seed)``: one
    Generator moved from state to state (draw from it before asking for the next). Seeds
    outside [0, 2**32) get their own ``default_rng``.

    Examples
    --------
    >>> [round(float(g.standard_normal()), 6) for g in seeded([0, 1])]
    [0.12573, 0.345584]
    >>> [round(float(np.random.default_rng(s).standard_normal()), 6) for s in (0, 1)]
    [0.12573, 0.345584]
    """
    seeds = list(seeds)
    small = [isinstance(s, (int, np.integer)) and 0 <= s < 2**32 for s in seeds]
    states = iter(pcg64_states(np.array([s for s, ok in zip(seeds, small) if ok], dtype=np.uint32)))
    bit_generator = np.random.PCG64(0)
    generator = np.random.Generator(bit_generator)
    for seed, ok in zip(seeds, small):
        if not ok:
            yield np.random.default_rng(seed)
            continue
        state, inc = next(states)
        bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                               "has_uint32": 0, "uinteger": 0}
        yield generator
