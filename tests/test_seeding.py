"""linlab.seeding: each seed's Generator draws exactly what numpy.random.default_rng(seed) draws."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linlab import TrainConfig
from linlab.config import INITS
from linlab.data import seed_dataset
from linlab.engines.batched import fit_batched
from linlab.models import init_factors
from linlab.seeding import seeded


def draws(rng) -> np.ndarray:
    return np.concatenate([rng.standard_normal(5), rng.uniform(-1, 1, 3), rng.integers(0, 2**62, 2).astype(float)])


def test_the_first_thousand_seeds_and_the_edges_of_the_fast_range_draw_as_default_rng():
    seeds = [*range(1000), 2**31 - 1, 2**31, 2**32 - 1, np.uint32(7), np.int64(2**32 - 2)]
    for seed, rng in zip(seeds, seeded(seeds), strict=True):
        assert np.array_equal(draws(rng), draws(np.random.default_rng(seed))), seed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**70), min_size=1, max_size=20))
def test_any_seeds_in_any_order_draw_as_default_rng(seeds):
    # seeds from 2**32 on take numpy's own path; repeats and order must not matter
    for seed, rng in zip(seeds, seeded(seeds), strict=True):
        assert np.array_equal(draws(rng), draws(np.random.default_rng(seed)))


@pytest.mark.parametrize("init", INITS)
def test_fit_batched_starts_every_run_from_init_factors(init):
    configs = [TrainConfig(widths=(10, 3, 2), lr=1e-6, epochs=3, seed=i % 7, init=init, init_scale=0.5)
               for i in range(20)]
    for r, c in zip(fit_batched(seed_dataset(), configs), configs, strict=True):
        expected = init_factors(c.widths, c.init, c.init_scale, c.seed)
        assert all(np.array_equal(a, b) for a, b in zip(r.initial_factors, expected, strict=True))
