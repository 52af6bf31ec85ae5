"""Every way of taking a gradient step, behind one loop and one result record.

``numpy`` (hand-derived backprop), ``autograd`` (raw tensors, manual update) and
``module`` (``DeepLinear`` + ``torch.optim``) run one model; all start from the same
NumPy factors and agree to rounding error.
"""

from .loop import Epoch, fit, make_engine

__all__ = ["Epoch", "fit", "make_engine"]
