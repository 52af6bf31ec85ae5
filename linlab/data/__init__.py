"""Data: the seed's arrays, synthetic problems, users' files, all as validated `Dataset`s."""

from .dataset import Dataset
from .errors import DataError
from .files import file_stats, iter_chunks, load_features, load_file
from .scaling import Scaler
from .seed import seed_dataset, seed_factors
from .synthetic import synthetic

__all__ = [
    "Dataset", "seed_dataset", "seed_factors", "synthetic",
    "DataError", "Scaler", "load_file", "load_features", "iter_chunks", "file_stats",
]
