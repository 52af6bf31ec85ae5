"""`DeepLinear`: a deep linear network as a ``torch.nn.Module`` (steps 5-7 of the seed)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import parse_widths
from .models import init_factors


class DeepLinear(nn.Module):
    r"""A stack of ``nn.Linear`` layers with no activation: ŷ = x W1 W2 … WL.

    Args:
        widths: ``(d, h1, ..., k)``.
        bias: give every layer a bias (default: none, as in the seed).
        factors: initial W_j of shape (widths[j-1], widths[j]) (NumPy); by default
            :func:`linlab.models.init_factors` with `init`, `scale`, `seed`.
        biases: initial biases, one per layer.
        dtype: ``torch.float64`` or ``torch.float32``.

    Shape:
        input (n, d), output (n, k). ``layers[j].weight`` is W_{j+1}ᵀ, as ``nn.Linear`` stores it.

    Examples:
        >>> net = DeepLinear((10, 5, 2), seed=0)
        >>> net(torch.zeros(3, 10, dtype=torch.float64)).shape
        torch.Size([3, 2])
        >>> tuple(net.end_to_end().shape)
        (10, 2)
    """

    def __init__(self, widths, bias: bool = False, factors=None, biases=None, *,
                 init: str = "normal", scale: float = 1.0, seed: int = 0,
                 dtype=torch.float64, device="cpu"):
        super().__init__()
        self.widths = parse_widths(widths)
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=bias, dtype=dtype, device=device)
            for a, b in zip(self.widths[:-1], self.widths[1:])
        )
        if factors is None:
            factors = init_factors(self.widths, init, scale, seed)
        self.set_factors(factors, biases)

    @torch.no_grad()
    def set_factors(self, factors, biases=None) -> None:
        """Copy NumPy factors (and biases) into the layers; ``biases=None`` zeroes the biases
        of a model that has them."""
        shapes = list(zip(self.widths[:-1], self.widths[1:]))
        if [tuple(np.shape(W)) for W in factors] != shapes:
            raise ValueError(
                f"factors have shapes {[np.shape(W) for W in factors]}; widths={self.widths} need {shapes}."
            )
        if biases is not None and self.layers[0].bias is None:
            raise ValueError("biases were given to a DeepLinear made with bias=False; pass bias=True, "
                             "or biases=None.")
        if biases is not None and [tuple(np.shape(b)) for b in biases] != [(w,) for w in self.widths[1:]]:
            raise ValueError(
                f"biases have shapes {[np.shape(b) for b in biases]}; widths={self.widths} need "
                f"{[(w,) for w in self.widths[1:]]}."
            )
        for layer, W in zip(self.layers, factors, strict=True):
            layer.weight.copy_(torch.as_tensor(np.asarray(W).T))
        if biases is not None:
            for layer, b in zip(self.layers, biases, strict=True):
                layer.bias.copy_(torch.as_tensor(np.asarray(b)))
        elif self.layers[0].bias is not None:
            for layer in self.layers:
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def factors(self) -> list[torch.Tensor]:
        """W1..WL in the seed's order, shapes (widths[j-1], widths[j])."""
        return [layer.weight.T for layer in self.layers]

    def end_to_end(self) -> torch.Tensor:
        """The product W1 @ … @ WL of shape (d, k)."""
        out = self.layers[0].weight.T
        for layer in self.layers[1:]:
            out = out @ layer.weight.T
        return out
