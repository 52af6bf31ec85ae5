r"""Many runs of one depth as stacked, zero-padded tensors, and their backward pass.

Run b's factor W_j sits in the top-left corner of ``factors[j][b]``, a tensor of shape
(B, H_{j-1}, H_j) with H_j the largest width of layer j among the runs; its bias sits in
``biases[j][b, 0, :h_j]``. A padded hidden unit u has a zero column in W_j, a zero row in
W_{j+1} and a zero bias, so its activation is zero and so are the gradients of its
entries:

.. math::
    \partial\ell/\partial W_j[:, u] = h_{j-1}^\top G_j[:, u] = 0
    \ \text{since}\ G_j = G_{j+1} W_{j+1}^\top \ \text{has a zero column}\ u,\qquad
    \partial\ell/\partial W_{j+1}[u, :] = h_j[:, u]^\top G_{j+1} = 0.

SGD (with momentum, Nesterov, weight decay), Adam(W), RMSprop and Adagrad map a zero
gradient on a zero parameter with zero state to a zero update, so the padding stays
exactly zero and every run follows its own trajectory.
"""

from __future__ import annotations

import numpy as np
import torch


def padded_widths(widths_list) -> tuple[int, ...]:
    """The layer-wise maximum of architectures of one depth.

    Examples
    --------
    >>> padded_widths([(10, 1, 2), (10, 5, 2), (10, 3, 2)])
    (10, 5, 2)
    """
    depths = {len(w) for w in widths_list}
    if len(depths) != 1:
        raise ValueError(f"widths of different depths {sorted(depths)} cannot share one stack.")
    return tuple(int(max(col)) for col in zip(*widths_list))


def stack_factors(factors_list, widths, dtype, device) -> list[torch.Tensor]:
    """Zero-padded tensors (B, H_{j-1}, H_j), one per layer, from per-run NumPy factors.

    `widths` are the padded widths (H_0, ..., H_L), e.g. from :func:`padded_widths`.

    Examples
    --------
    >>> runs = [[np.ones((2, 1)), np.ones((1, 2))], [np.ones((2, 3)), np.ones((3, 2))]]
    >>> Ws = stack_factors(runs, (2, 3, 2), torch.float64, "cpu")
    >>> [tuple(W.shape) for W in Ws], float(Ws[0][0].sum())
    ([(2, 2, 3), (2, 3, 2)], 2.0)
    """
    B, out = len(factors_list), []
    for j in range(len(widths) - 1):
        host = np.zeros((B, widths[j], widths[j + 1]))
        for b, factors in enumerate(factors_list):
            W = np.asarray(factors[j])
            host[b, : W.shape[0], : W.shape[1]] = W
        out.append(torch.as_tensor(host, device=device).to(dtype))
    return out


def stack_biases(biases_list, widths, dtype, device) -> list[torch.Tensor]:
    """Zero-padded biases (B, 1, H_j), one per layer; runs without biases get zeros.

    Examples
    --------
    >>> bs = stack_biases([[np.ones(2), np.ones(1)], None], (3, 4, 1), torch.float64, "cpu")
    >>> bs[0][:, 0].tolist()
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    B, out = len(biases_list), []
    for j, H in enumerate(widths[1:]):
        host = np.zeros((B, 1, H))
        for b, biases in enumerate(biases_list):
            if biases is not None:
                v = np.asarray(biases[j])
                host[b, 0, : v.shape[0]] = v
        out.append(torch.as_tensor(host, device=device).to(dtype))
    return out


def to_batch_last(t: torch.Tensor) -> torch.Tensor:
    """The same (B, a, b) tensor stored with the run index last in memory: a view of a
    contiguous (a, b, B) tensor, on which per-run products of tiny matrices become
    elementwise operations over B (see :class:`~.batched_stats.StatsPath`).

    Examples
    --------
    >>> t = to_batch_last(torch.arange(6.).view(3, 2, 1))
    >>> t.shape, t.stride(), bool(t.permute(1, 2, 0).is_contiguous())
    (torch.Size([3, 2, 1]), (1, 3, 3), True)
    """
    return t.permute(1, 2, 0).contiguous().permute(2, 0, 1)


def is_batch_last(t: torch.Tensor) -> bool:
    """Whether a (B, a, b) tensor is stored as :func:`to_batch_last` leaves it (a single run,
    B = 1, is stored both ways).

    Examples
    --------
    >>> is_batch_last(to_batch_last(torch.ones(4, 3, 2))), is_batch_last(torch.ones(4, 3, 2))
    (True, False)
    """
    return t.dim() == 3 and t.permute(1, 2, 0).is_contiguous()


def take_rows(t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``t[keep]`` along the run dimension, in the storage order of `t`.

    Examples
    --------
    >>> t = to_batch_last(torch.arange(12.).view(4, 3, 1))
    >>> kept = take_rows(t, torch.tensor([0, 2]))
    >>> kept[:, :, 0].tolist(), is_batch_last(kept)
    ([[0.0, 1.0, 2.0], [6.0, 7.0, 8.0]], True)
    """
    if is_batch_last(t):
        return t.permute(1, 2, 0)[:, :, keep].contiguous().permute(2, 0, 1)
    return t[keep]


def unstack(tensors, rows, widths_list, biases: bool = False) -> list[list[np.ndarray]]:
    """Per-run float64 NumPy copies of stack rows `rows`, cut back to each run's widths.

    Examples
    --------
    >>> Ws = [torch.ones(2, 3, 4), torch.ones(2, 4, 1)]
    >>> [W.shape for W in unstack(Ws, np.array([1]), [(3, 2, 1)])[0]]
    [(3, 2), (2, 1)]
    """
    host = [t[torch.as_tensor(rows, device=t.device)].detach().cpu().double().numpy() for t in tensors]
    out = []
    for i, widths in enumerate(widths_list):
        if biases:
            out.append([h[i, 0, : widths[j + 1]].copy() for j, h in enumerate(host)])
        else:
            out.append([h[i, : widths[j], : widths[j + 1]].copy() for j, h in enumerate(host)])
    return out


def backward(hs, G, factors, with_bias: bool):
    r"""Gradients of layers 2..L (and all biases) from the gradient at the output.

    .. math::
        \partial\ell/\partial W_j = h_{j-1}^\top G_j,\quad
        \partial\ell/\partial b_j = \mathbf 1^\top G_j,\quad G_{j-1} = G_j W_j^\top

    Parameters
    ----------
    hs : list of Tensor
        ``hs[j]`` of shape (B, m, H_j) for j = 1..L-1 (``hs[0]`` is unused: the first layer's
        input is shared by all runs and its gradient is the caller's business).
    G : Tensor of shape (B, m, k)
        ∂ℓ/∂(output of layer L).
    factors : list of Tensor
        W_j of shape (B, H_{j-1}, H_j).
    with_bias : bool

    Returns
    -------
    grads_W : list
        ``grads_W[j]`` for j >= 1; ``grads_W[0]`` is None.
    grads_b : list or None
    G1 : Tensor of shape (B, m, H_1)
        ∂ℓ/∂(output of layer 1), from which the caller forms layer 1's gradient.

    Examples
    --------
    >>> W = [torch.ones(1, 2, 3), torch.ones(1, 3, 1)]
    >>> hs = [None, torch.ones(1, 4, 3)]
    >>> gW, gb, G1 = backward(hs, torch.ones(1, 4, 1), W, False)
    >>> gW[1].flatten().tolist(), tuple(G1.shape)
    ([4.0, 4.0, 4.0], (1, 4, 3))
    """
    L = len(factors)
    grads_W, grads_b = [None] * L, [None] * L
    for j in reversed(range(L)):
        if with_bias:
            grads_b[j] = G.sum(dim=1, keepdim=True)
        if j:
            grads_W[j] = torch.bmm(hs[j].transpose(1, 2), G)
            G = torch.bmm(G, factors[j].transpose(1, 2))
    return grads_W, (grads_b if with_bias else None), G


def map_state(state, fn):
    """Apply ``fn`` to every tensor of an optimizer state (a NamedTuple of lists and numbers).

    Examples
    --------
    >>> from linlab import optim
    >>> s = optim.init("adam", [torch.ones(3, 1, 1)])
    >>> map_state(s, lambda t: t[:2]).exp_avg[0].shape
    torch.Size([2, 1, 1])
    """
    return type(state)(*[[fn(t) for t in v] if isinstance(v, list) else v for v in state])
