"""The RUL network: LSTMs over a window of normalised sensors, emitting ordered quantiles.

:class:`QuantileLSTM` is one model; :class:`QuantileEnsemble` averages the quantiles of several
(trained on different folds of the engines), which is what an artifact holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class QuantileLSTM(nn.Module):
    """LSTM encoder + small MLP head that predicts RUL quantiles, monotone by construction.

    The head predicts the median directly and every other quantile as a positive (softplus)
    step away from its neighbour towards the median, so ``P10 <= P50 <= P90`` always holds.

    Parameters
    ----------
    n_features
        Number of sensor features per time step (``F``).
    quantiles
        Increasing quantile levels, the median among them, e.g. ``(0.1, 0.5, 0.9)``.
    hidden
        LSTM hidden size.
    layers
        Number of stacked LSTM layers.
    dropout
        Dropout between LSTM layers and in the head.
    output_scale
        The network works in units of ``output_scale`` (the RUL cap) and returns cycles.

    Shapes
    ------
    ``forward(x)``: ``x (B, W, F)`` float32 -> ``(B, Q)`` RUL quantiles in cycles, ascending.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = QuantileLSTM(n_features=14).eval()
    >>> q = net(torch.rand(4, 30, 14))
    >>> tuple(q.shape), bool((q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all())
    ((4, 3), True)
    """

    def __init__(
        self,
        n_features: int,
        *,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        hidden: int = 48,
        layers: int = 2,
        dropout: float = 0.1,
        output_scale: float = 125.0,
    ) -> None:
        super().__init__()
        qs = [float(q) for q in quantiles]
        if not qs or any(b <= a for a, b in pairwise(qs)) or 0.5 not in qs:
            raise ValueError(f"quantiles must be increasing and contain 0.5, got {qs}")
        self.n_features = n_features
        self.quantiles = tuple(qs)
        self.median_index = qs.index(0.5)
        self.output_scale = float(output_scale)
        self.lstm = nn.LSTM(
            n_features, hidden, num_layers=layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, len(qs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, W, F)`` -> quantiles ``(B, Q)`` in cycles, ascending along ``Q``."""
        out, _ = self.lstm(x)  # (B, W, H)
        raw = self.head(out[:, -1, :])  # (B, Q)
        m = self.median_index
        median = raw[:, m : m + 1]  # (B, 1)
        steps = nn.functional.softplus(raw)
        upper = median + torch.cumsum(steps[:, m + 1 :], dim=1)  # (B, Q - m - 1)
        lower = median - torch.cumsum(steps[:, :m].flip(1), dim=1).flip(1)  # (B, m)
        return torch.cat([lower, median, upper], dim=1) * self.output_scale


class QuantileEnsemble(nn.Module):
    """The mean of its members' quantiles (each member a :class:`QuantileLSTM`).

    Averaging monotone quantiles keeps them monotone; one member is a plain model. Input and
    output shapes are those of a member.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> ens = QuantileEnsemble([QuantileLSTM(n_features=3, hidden=4) for _ in range(2)]).eval()
    >>> x = torch.rand(5, 30, 3)
    >>> bool(torch.allclose(ens(x), (ens.members[0](x) + ens.members[1](x)) / 2))
    True
    """

    def __init__(self, members: Sequence[QuantileLSTM]) -> None:
        super().__init__()
        if not members or len({m.quantiles for m in members}) != 1:
            raise ValueError("an ensemble needs members with the same quantiles")
        self.members = nn.ModuleList(members)
        self.quantiles = members[0].quantiles
        self.n_features = members[0].n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, W, F)`` -> the members' mean quantiles ``(B, Q)`` in cycles."""
        out: torch.Tensor = sum((member(x) for member in self.members), torch.zeros(()))
        return out / len(self.members)
