"""Data: the seed's arrays, synthetic problems, users' files, all as validated `Dataset`s."""

from .dataset import Dataset
from .seed import seed_dataset, seed_factors
from .synthetic import synthetic

__all__ = ["Dataset", "seed_dataset", "seed_factors", "synthetic"]
