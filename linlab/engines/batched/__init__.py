r"""Engine ``batched``: many runs at once, as a few large tensor operations.

Runs that share the data share its statistics (or its pass over the rows); runs of one
depth and one optimizer are stacked, zero-padded to common widths (exact: see
:mod:`.state`), and trained together under the single-run loop's stop rules
(:mod:`.stop`, :mod:`.epochs`). Two ways to a loss and gradient:

- ``"stats"`` (squared loss, no bias): from A = XᵀX, C = XᵀY and the least-squares
  constants, computed once in float64; an epoch costs nothing in n (:mod:`.objective_stats`).
- ``"data"`` (any loss, biases): one shared pass over the rows per epoch, the first layer
  of every run in one product (:mod:`.objective_data`).

What runs where is decided in :mod:`.plan`. Compiled, the statistics path runs SGD stacks in
:mod:`.kernels.fused` (whole blocks of epochs per call: the C kernel of :mod:`.kernels.native`
on the CPU, TorchInductor elsewhere, :mod:`.kernels.gram` for wide depth-2 SGD), each an
implementation of the one step of :mod:`.update`, and the other optimizers in
:mod:`.kernels.compiled`. Results are written by :mod:`.records`.
"""

from .fit import fit_batched
from .plan import choose_path, width_classes

__all__ = ["choose_path", "fit_batched", "width_classes"]
