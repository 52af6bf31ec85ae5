"""linlab: a laboratory for linear regression and deep linear networks trained by
gradient descent.

Data flows one way: ``data`` → ``models`` → ``engines`` → ``results`` → ``diagnose``/``report``,
with ``stats`` and ``theory`` (NumPy/SciPy only) beside them.
"""

from .config import TrainConfig
from .data import Dataset, seed_dataset, seed_factors, synthetic
from .diagnose import diagnose  # the function, eagerly: the name would otherwise turn into the submodule
from .engines import fit
from .models import end_to_end, init_factors, initial_factors, n_params
from .results import RunResult

__version__ = "0.1.0"


def train(data: Dataset, config: TrainConfig | None = None, **settings) -> RunResult:
    """Train one model on `data`; settings are :class:`TrainConfig` fields.

    The run starts from :func:`~linlab.models.initial_factors`: on the seed data with
    ``seed=0`` the seed's own weights, as ``linlab train`` does; otherwise ``init`` drawn
    from ``seed``.

    Examples
    --------
    >>> r = train(seed_dataset(), widths=(10, 1, 2), lr=1e-5, epochs=300)
    >>> r.outcome
    'stalled'
    """
    config = TrainConfig(**settings) if config is None else config.replace(**settings)
    return fit(data, config, factors=initial_factors(data, config))


_LAZY = {  # public names whose modules pull in torch or pyarrow: imported on first use
    "DeepLinear": "linlab._module",
    "GDRegressor": "linlab.sklearn",  # needs scikit-learn: pip install "linlab[sklearn]"
    "advise": "linlab.theory.advice",
    "sweep": "linlab.sweeps",
    "load_file": "linlab.data.files",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'linlab' has no attribute {name!r}")


__all__ = [
    "Dataset", "DeepLinear", "GDRegressor", "RunResult", "TrainConfig", "advise", "diagnose", "end_to_end", "fit",
    "init_factors", "load_file", "n_params", "seed_dataset", "seed_factors", "sweep", "synthetic", "train",
]
