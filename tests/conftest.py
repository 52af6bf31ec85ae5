import numpy as np
import pytest

from linlab.data import seed_dataset


@pytest.fixture(scope="session")
def seed_data():
    return seed_dataset("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
