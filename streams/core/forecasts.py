"""What a RUL model answers for a batch of windows: one :class:`RulForecast` each.

>>> RulForecast(120.0, 90.0, 150.0, "v1").unit
'cycles'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError, PmaintError
from models.rul.serve import RulPrediction


class Predictor(Protocol):
    """What the service needs from a model (``RulPredictor`` fits)."""

    @property
    def version(self) -> str: ...

    @property
    def rul_unit(self) -> str: ...

    @property
    def data_source(self) -> str: ...

    @property
    def window(self) -> int: ...

    @property
    def n_features(self) -> int: ...

    def predict(self, windows: NDArray[np.float32]) -> RulPrediction: ...


class RulForecast(NamedTuple):
    """One asset's forecast: median RUL with its P10-P90 band in ``unit`` (cheap to create), and
    whether its window looks like the data the model was trained on (``data_source``)."""

    rul: float
    rul_p10: float
    rul_p90: float
    model_version: str
    in_domain: bool = True
    unit: str = "cycles"
    data_source: str = ""


def forecasts(model: Predictor, windows: Sequence[NDArray[np.float32]]) -> list[RulForecast]:
    """One forward pass of ``model`` over ``windows`` (each ``(W, F)``), one forecast each.

    Raises ``DataError`` for a window of the wrong shape and ``PmaintError`` when the model
    answers with a different number of forecasts.

    >>> from models.rul.serve import RulPrediction
    >>> class Half:
    ...     version, rul_unit, data_source, window, n_features = "v1", "cycles", "sim", 2, 1
    ...     def predict(self, x):
    ...         p50 = x[:, 0, 0] / 2
    ...         return RulPrediction(p50 - 1, p50, p50 + 1)
    >>> [f.rul for f in forecasts(Half(), [np.full((2, 1), 8.0, np.float32)] * 2)]
    [4.0, 4.0]
    """
    shape = (model.window, model.n_features)
    bad = [np.shape(w) for w in windows if np.shape(w) != shape]
    if bad:
        raise DataError(f"{len(bad)} windows of shape {bad[0]}, expected {shape}")
    pred = model.predict(np.stack(windows).astype(np.float32, copy=False))
    p50, p10, p90 = pred.p50.tolist(), pred.p10.tolist(), pred.p90.tolist()
    if not len(p50) == len(p10) == len(p90) == len(windows):
        raise PmaintError(f"{len(p50)} forecasts for {len(windows)} windows")
    version, unit, source = model.version, model.rul_unit, model.data_source
    return [
        RulForecast(mid, low, high, version, ok, unit, source)
        for mid, low, high, ok in zip(p50, p10, p90, pred.in_domain.tolist(), strict=True)
    ]
