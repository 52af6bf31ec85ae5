"""Theory in NumPy and SciPy (never torch): what gradient descent should do, in closed form.

- :mod:`.least_squares`: the least-squares optimum and the reduced-rank floor of a
  bottleneck network.
- :mod:`.spectrum`: depth 1's Hessian spectrum, learning-rate bounds and the exact loss
  forecast of gradient descent.
- :mod:`.deep`: gradients, Hessian-vector products and sharpness of deep networks,
  balancedness, Arora et al.'s end-to-end update.
- :mod:`.saxe`: Saxe et al.'s exact mode dynamics for whitened inputs, at any depth.
- :mod:`.lr`: the rules behind ``lr="auto"``.
- :mod:`.robust`: the optimum of the ℓp and huber losses (convex at depth 1).
- :mod:`.advice`: all of it for one dataset and architecture (``linlab advise``).
"""

from .advice import Advice, advise
from .deep import (
    balancedness,
    end_to_end_trajectory,
    end_to_end_update,
    gradient,
    hessian,
    hessian_vector_product,
    layer_balancedness,
    network_loss,
    sharpness,
    stability_lr,
)
from .least_squares import (
    LeastSquares,
    RankFloor,
    as_stats,
    centered,
    fitted_values,
    least_squares,
    narrowest_width,
    rank_floor,
)
from .lr import SAFETY, auto_lr, reestimate_lr, top_curvature
from .robust import ConvexOptimum, convex_optimum
from .saxe import (
    mode_strengths,
    saxe_dataset,
    saxe_factors,
    saxe_tau,
    saxe_time_to_learn,
    saxe_trajectory,
    target_modes,
    whiten,
)
from .spectrum import (
    LRBounds,
    Modes,
    bounds_from_spectrum,
    epochs_to_tol,
    heavy_ball_rate,
    hessian_eigh,
    hessian_spectrum,
    loss_forecast,
    lr_bounds,
    modes,
    momentum_lr,
)

__all__ = [
    "SAFETY", "ConvexOptimum", "LRBounds", "LeastSquares", "Modes", "RankFloor", "as_stats", "auto_lr",
    "balancedness", "bounds_from_spectrum", "centered", "convex_optimum", "end_to_end_trajectory",
    "end_to_end_update", "epochs_to_tol", "fitted_values", "gradient", "heavy_ball_rate",
    "hessian", "hessian_eigh", "hessian_spectrum", "hessian_vector_product",
    "layer_balancedness", "least_squares", "loss_forecast", "lr_bounds", "modes",
    "momentum_lr", "narrowest_width", "network_loss", "rank_floor", "reestimate_lr",
    "sharpness", "stability_lr", "top_curvature", "Advice", "advise",
    "mode_strengths", "saxe_dataset", "saxe_factors", "saxe_tau", "saxe_time_to_learn",
    "saxe_trajectory", "target_modes", "whiten",
]
