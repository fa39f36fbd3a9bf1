"""All members of a :class:`~models.rul.network.QuantileEnsemble` in one forward pass.

The members' weights are stacked along a leading member axis ``M`` and the LSTMs are unrolled by
hand: the first layer's input projection of every member is one matrix product (the members
share their input), each time step is one batched product per layer (``baddbmm`` over ``M``)
and the gates are computed for all members at once; the heads run the same way and the
members' quantiles are averaged as the ensemble does. ``torch.func.vmap`` cannot do this: it
has no batching rule for ``aten::lstm``.

What it costs, measured (``python -m benchmarks.rul``, line ``rul_fused_windows_per_s``): on a
CPU the members one after another are faster. PyTorch runs each member's LSTM as one oneDNN
kernel that keeps the gate arithmetic in cache, and at a batch of a few dozen windows or more
an LSTM step is compute-bound, so stacking members removes no arithmetic, only call overhead
that is already small; the unrolled loop pays for its separate element-wise passes. The
serving path (:class:`~models.rul.serve.RulPredictor`) therefore keeps the members' own
forward; this module is its tested and measured alternative (``RulPredictor`` takes either), to
be measured on a GPU, where per-call overhead weighs more, before it serves there.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from models.rul.network import QuantileEnsemble, QuantileLSTM


def _gates(t: torch.Tensor) -> torch.Tensor:
    """Rows of an LSTM gate tensor reordered from PyTorch's ``i, f, g, o`` to ``i, f, o, g``
    along dim 0, so the three sigmoid gates are adjacent."""
    i, f, g, o = torch.chunk(t, 4, dim=0)
    return torch.cat([i, f, o, g], dim=0)


class FusedEnsemble(nn.Module):
    """The forward of ``ensemble`` as one pass over stacked member weights (same results to
    float32 rounding); ``tile`` windows are processed at a time so a step's gates stay in cache.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> ens = QuantileEnsemble([QuantileLSTM(3, hidden=4, layers=2) for _ in range(3)]).eval()
    >>> x = torch.rand(5, 30, 3)
    >>> bool(torch.allclose(FusedEnsemble(ens)(x), ens(x), atol=1e-5))
    True
    """

    def __init__(self, ensemble: QuantileEnsemble, tile: int = 64) -> None:
        super().__init__()
        members: list[QuantileLSTM] = list(ensemble.members)  # type: ignore[arg-type]
        first = members[0]
        self.quantiles = ensemble.quantiles
        self.n_features = ensemble.n_features
        self.median_index = first.median_index
        self.output_scale = first.output_scale
        self.hidden = first.lstm.hidden_size
        self.layers = first.lstm.num_layers
        self.members = len(members)
        self.tile = tile
        with torch.no_grad():
            for layer in range(self.layers):

                def stack(name: str, layer: int = layer) -> torch.Tensor:
                    return torch.stack(
                        [_gates(getattr(m.lstm, f"{name}_l{layer}")) for m in members]
                    )

                w_ih = stack("weight_ih").transpose(1, 2).contiguous()  # (M, in, 4H)
                bias = stack("bias_ih") + stack("bias_hh")  # (M, 4H)
                if layer == 0:  # shared input: one product for all members, (F, M * 4H)
                    w_ih = w_ih.permute(1, 0, 2).reshape(self.n_features, -1).contiguous()
                    bias = bias.reshape(-1)
                else:
                    bias = bias[:, None, :]
                self.register_buffer(f"w_ih{layer}", w_ih)
                self.register_buffer(f"b{layer}", bias)
                self.register_buffer(
                    f"w_hh{layer}", stack("weight_hh").transpose(1, 2).contiguous()
                )
            for k, i in (("hidden", 0), ("out", 3)):
                linears = [cast(nn.Linear, m.head[i]) for m in members]
                w = torch.stack([lin.weight.t() for lin in linears]).contiguous()
                self.register_buffer(f"head_w_{k}", w)  # (M, in, out)
                self.register_buffer(
                    f"head_b_{k}", torch.stack([lin.bias for lin in linears])[:, None]
                )

    def _buffer(self, name: str) -> torch.Tensor:
        t: torch.Tensor = self.get_buffer(name)
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, W, F)`` -> the members' mean quantiles ``(B, Q)`` in cycles."""
        if len(x) <= self.tile:
            return self._forward(x)
        return torch.cat([self._forward(x[i : i + self.tile]) for i in range(0, len(x), self.tile)])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._lstm(x)  # (M, B, H)
        z = torch.relu(
            torch.baddbmm(self._buffer("head_b_hidden"), h, self._buffer("head_w_hidden"))
        )
        raw = torch.baddbmm(self._buffer("head_b_out"), z, self._buffer("head_w_out"))  # (M, B, Q)
        m = self.median_index
        median = raw[..., m : m + 1]
        steps = nn.functional.softplus(raw)
        upper = median + torch.cumsum(steps[..., m + 1 :], dim=-1)
        lower = median - torch.cumsum(steps[..., :m].flip(-1), dim=-1).flip(-1)
        return (torch.cat([lower, median, upper], dim=-1) * self.output_scale).mean(0)

    def _lstm(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's final hidden state of every member, ``(M, B, H)``."""
        b, t, f = x.shape
        m, h = self.members, self.hidden
        proj = torch.addmm(self._buffer("b0"), x.reshape(b * t, f), self._buffer("w_ih0"))
        proj = proj.view(b, t, m, 4 * h).permute(1, 2, 0, 3).contiguous()  # (T, M, B, 4H)
        tanh_c = x.new_empty(m, b, h)
        seq = x.new_empty(t, m, b, h)  # a layer's outputs, the next layer's inputs
        state = seq[0]
        for layer in range(self.layers):
            if layer:
                inputs = seq.transpose(0, 1).reshape(m, t * b, h)
                proj = torch.baddbmm(
                    self._buffer(f"b{layer}"), inputs, self._buffer(f"w_ih{layer}")
                )
                proj = proj.view(m, t, b, 4 * h).transpose(0, 1).contiguous()
            w_hh = self._buffer(f"w_hh{layer}")
            state = x.new_zeros(m, b, h)
            cell = x.new_zeros(m, b, h)
            last = layer == self.layers - 1
            for step in range(t):
                gates = proj[step].baddbmm_(state, w_hh)  # in place: no copy of the step
                sig = gates[..., : 3 * h].sigmoid_()
                cand = gates[..., 3 * h :].tanh_()
                cell.mul_(sig[..., h : 2 * h]).addcmul_(sig[..., :h], cand)
                torch.tanh(cell, out=tanh_c)
                state = state if last else seq[step]
                torch.mul(sig[..., 2 * h :], tanh_c, out=state)
        return state
