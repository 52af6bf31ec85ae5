"""The seed's question "do more parameters converge faster?" as a sweep over hidden widths.

Networks X·W1·W2 with widths (10, h, 2) on the seed's data, from several random initial
factors (the seed's randn, std 1), each trained by SGD and by Adam at a grid of learning
rates. The comparison is fair: every width at its own best lr, with the spread over seeds.
"""

from __future__ import annotations

import pyarrow as pa

from ..data import Dataset

WIDTHS = (1, 2, 3, 5, 10, 20, 50, 100, 200)
SEED_LR = 1e-5  # the seed's fixed learning rate
EPOCHS = 1500
TOL = 1e-4


def scaling_grids(fast: bool = False) -> list:
    """The two grids (SGD, Adam): widths × lrs × seeds; `fast` keeps 2 seeds and fewer lrs."""
    from ..sweeps import Grid

    seeds = [0, 1] if fast else [0, 1, 2]
    sgd_lrs = {"log_range": [1e-7, 1e-3, 5 if fast else 9]}  # decades or half decades: 1e-5 is in
    adam_lrs = [0.1, 0.3, 1.0] if fast else [0.03, 0.1, 0.3, 1.0]  # the seed's 0.1 is in
    fixed = {"init": "normal", "engine": "batched", "epochs": 1000 if fast else EPOCHS, "tol": TOL}
    return [
        Grid(fixed={**fixed, "optimizer": name},
             axes={"depth": [2], "width": list(WIDTHS), "lr": lrs, "seed": seeds})
        for name, lrs in (("sgd", sgd_lrs), ("adam", adam_lrs))
    ]


def scaling_sweep(data: Dataset, fast: bool = False) -> pa.Table:
    """Run both grids on `data`; one table (the sweep `SCHEMA`), SGD rows first."""
    from ..sweeps import sweep

    return pa.concat_tables([sweep(grid, data=data) for grid in scaling_grids(fast)])
