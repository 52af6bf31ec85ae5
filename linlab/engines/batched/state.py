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

import itertools
import operator

import numpy as np
import torch

from ... import optim
from .update import sgd_into


def padded_widths(widths_list) -> tuple[int, ...]:
    """The layer-wise maximum of architectures of one depth.

    Examples
    --------
    >>> padded_widths([(10, 1, 2), (10, 5, 2), (10, 3, 2)])
    (10, 5, 2)
    """
    distinct = set(map(tuple, widths_list))
    depths = set(map(len, distinct))
    if len(depths) != 1:
        raise ValueError(f"widths of different depths {sorted(depths)} cannot share one stack.")
    return tuple(int(max(col)) for col in zip(*distinct))


class RunRows(list):
    """Each run's list of arrays where run i's layer j is row i of ``layers[j]`` (a view): made
    from one array per layer in a pass, and read back as those arrays by :func:`stack_factors`
    and :func:`~.records.distances` without a copy of each run's.

    Examples
    --------
    >>> rows = RunRows([np.zeros((2, 3, 1)), np.ones((2, 1, 4))])
    >>> len(rows), rows[1][1].shape, rows[1][0].base is rows.layers[0]
    (2, (1, 4), True)
    """

    def __init__(self, layers: list[np.ndarray]):
        super().__init__(map(list, zip(*layers)))
        self.layers = layers

    def take(self, indices) -> RunRows:
        """The runs `indices`, in that order, as RunRows of their own (one copy per layer)."""
        return RunRows([layer[indices] for layer in self.layers])


class Finals(list):
    """Each run's (factors, None: no biases), with ``layers`` the factors' arrays where they are
    :class:`RunRows` (else None)."""

    def __init__(self, factors: list):
        super().__init__(zip(factors, itertools.repeat(None)))
        self.layers = getattr(factors, "layers", None)


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
    stacked = getattr(factors_list, "layers", None)
    for j in range(len(widths) - 1):
        shape = (widths[j], widths[j + 1])
        try:  # no run padded: one copy (of one array from RunRows, not of each run's)
            layer = stacked[j] if stacked is not None else [fs[j] for fs in factors_list]
            host = np.array(layer, dtype=np.float64)
        except ValueError:  # runs of several shapes
            host = None
        if host is None or host.shape != (B, *shape):
            host = np.zeros((B, *shape))
            for b, W in enumerate(map(operator.itemgetter(j), factors_list)):
                W = np.asarray(W)
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
    elementwise operations over B (see :class:`~.objective_stats.StatsPath`).

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
    """Per-run float64 NumPy arrays of stack rows `rows`, cut back to each run's widths: views
    of one copy of the rows per layer, which nothing else holds.

    Examples
    --------
    >>> Ws = [torch.ones(2, 3, 4), torch.ones(2, 4, 1)]
    >>> [W.shape for W in unstack(Ws, np.array([1]), [(3, 2, 1)])[0]]
    [(3, 2), (2, 1)]
    """
    host = [t[torch.as_tensor(rows, device=t.device)].detach().cpu().double().numpy() for t in tensors]
    padded = tuple(t.shape[1] for t in tensors) + (tensors[-1].shape[2],)
    if not biases and set(map(tuple, widths_list)) == {padded}:  # whole rows: views as NumPy iterates
        return RunRows(host)
    if biases:
        return [[h[i, 0, : w[j + 1]] for j, h in enumerate(host)] for i, w in enumerate(widths_list)]
    return [[h[i, : w[j], : w[j + 1]] for j, h in enumerate(host)] for i, w in enumerate(widths_list)]


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


class Stack:
    """The stacked parameters and optimizer state of the runs still in the tensors.

    ``alive[row]`` is the run held in stack row `row`; ``frozen[row]`` marks rows whose run
    has stopped but which have not been dropped yet.

    Examples
    --------
    >>> from linlab import TrainConfig
    >>> configs = [TrainConfig(widths=(3, 2, 1)), TrainConfig(widths=(3, 4, 1))]
    >>> stack = Stack(configs, [[np.ones((3, 2)), np.ones((2, 1))], [np.ones((3, 4)), np.ones((4, 1))]],
    ...               (3, 4, 1), torch.float64, "cpu")
    >>> [tuple(p.shape) for p in stack.params], [W.shape for W in stack.finals(np.array([0]), configs)[0][0]]
    ([(2, 3, 4), (2, 4, 1)], [(3, 2), (2, 1)])
    """

    def __init__(self, configs, factors, widths, dtype, device, batch_last: bool = False):
        self.L, self.bias, self.device, self.dtype = len(widths) - 1, configs[0].bias, device, dtype
        self.params = stack_factors(factors, widths, dtype, device)
        if batch_last:  # the run index last in memory (see to_batch_last)
            self.params = [to_batch_last(p) for p in self.params]
        if self.bias:
            self.params += stack_biases([None] * len(configs), widths, dtype, device)
        self.state = optim.init(configs[0].optimizer, self.params)
        self.prev = [torch.empty_like(p) for p in self.params]  # the state before the last update
        self.alive, self.frozen = np.arange(len(configs)), np.zeros(len(configs), dtype=bool)

    def split(self):
        return self.params[: self.L], (self.params[self.L:] if self.bias else None)

    def freeze(self, rows: np.ndarray, diverged: np.ndarray, grads, t: int) -> None:
        """Stop `rows`: diverged ones go back to the last finite state; nothing of theirs moves again."""
        back = torch.as_tensor(rows[diverged], device=self.device)
        if t and len(back):
            for p, q in zip(self.params, self.prev):
                p[back] = q[back]
        idx = torch.as_tensor(rows, device=self.device)
        for g in grads:
            g[idx] = 0
        map_state(self.state, lambda s: s.index_fill_(0, idx, 0))
        self.frozen[rows] = True

    def compact(self, grads) -> list:
        """Drop frozen rows once they are an eighth of the stack; returns the kept gradients."""
        if self.frozen.sum() < max(1, len(self.alive) // 8):
            return grads
        keep_host = np.flatnonzero(~self.frozen)
        keep = torch.as_tensor(keep_host, device=self.device)
        self.params = [take_rows(p, keep) for p in self.params]
        self.state = map_state(self.state, lambda s: take_rows(s, keep))
        self.prev = [torch.empty_like(p) for p in self.params]
        self.alive, self.frozen = self.alive[keep_host], np.zeros(len(keep_host), dtype=bool)
        return [take_rows(g, keep) for g in grads]

    def lr_tensor(self, lr: np.ndarray) -> torch.Tensor:
        """Per-row learning rates (B,) as the (B, 1, 1) tensor `update` takes."""
        return torch.as_tensor(lr, device=self.device).to(self.dtype).view(-1, 1, 1)

    def update(self, grads, lr: torch.Tensor, config) -> None:
        """One optimizer step with per-row learning rates `lr` (B, 1, 1), keeping the current
        state in `prev`."""
        if config.optimizer == "sgd":
            new, self.state = sgd_into(self.prev, self.params, grads, self.state, lr, config)
            self.prev, self.params = self.params, new
            return
        for p, q in zip(self.params, self.prev):
            q.copy_(p)
        self.state = optim.step(config.optimizer, self.params, grads, self.state, lr, config)

    def finals(self, rows: np.ndarray, configs) -> list:
        """(factors, biases) of `rows` as float64 NumPy arrays cut to each run's widths."""
        widths = [configs[i].widths for i in self.alive[rows]]
        Ws = unstack(self.params[: self.L], rows, widths)
        bs = unstack(self.params[self.L:], rows, widths, biases=True) if self.bias else [None] * len(rows)
        return list(zip(Ws, bs))
