"""Batched RUL inference and the per-asset window keeper used by the worker.

The worker keeps one :class:`AssetWindow` per asset (a small float32 ring buffer of already
normalised rows, and the trend state of the models that use trend channels) and, once it is
``ready``, hands its window with those of the other assets of a batch to one
:meth:`RulPredictor.predict` call (:mod:`streams.rul_service`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.jit._trace import TracerWarning

from models.errors import DataError
from models.features import InputSpec, trend_weights, with_age
from models.metrics import interval_coverage, nasa_score, rmse
from models.rul.artifact import ArtifactMetadata, load_artifact
from models.rul.data import Run, final_windows
from models.rul.device import resolve_device
from models.rul.fused import FusedEnsemble
from models.rul.network import QuantileEnsemble


@dataclass(frozen=True)
class RulPrediction:
    """Quantile forecasts of a batch, each ``(B,)`` float32 in the model's unit
    (``p10 <= p50 <= p90``), and each window's domain score (see :mod:`models.rul.domain`;
    ``None``: the model has no in-domain measure).

    >>> p = RulPrediction(*np.ones((3, 2), np.float32), domain_score=np.array([0.5, 2.0]))
    >>> p.in_domain.tolist()
    [True, False]
    """

    p10: NDArray[np.float32]
    p50: NDArray[np.float32]
    p90: NDArray[np.float32]
    domain_score: NDArray[np.float64] | None = None

    @property
    def in_domain(self) -> NDArray[np.bool_]:
        """Whether each window looks like the training data (domain score at most 1)."""
        if self.domain_score is None:
            return np.ones(len(self.p50), dtype=bool)
        return np.asarray(self.domain_score <= 1.0)


class Forecaster(nn.Module):
    """A batch's forecasts in one call: ``model``'s P10, P50 and P90 for windows ``x``, the band
    around the median scaled by ``factor`` (one per window), clipped at 0.

    >>> from models.rul.artifact import Architecture
    >>> _ = torch.manual_seed(0)
    >>> model = Architecture(3, hidden=4, layers=1).build().eval()
    >>> q = Forecaster(model)(torch.randn(5, 6, 3), torch.ones(5))
    >>> q.shape, bool((q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all())
    (torch.Size([5, 3]), True)
    """

    def __init__(self, model: QuantileEnsemble | FusedEnsemble) -> None:
        super().__init__()
        self.model = model
        qs = list(model.quantiles)
        self.columns = [0, qs.index(0.5), len(qs) - 1]

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        q: torch.Tensor = self.model(x)[:, self.columns]
        mid = q[:, 1:2]
        return (mid + (q - mid) * factor[:, None]).clamp_min(0.0).float()


def gil_free(forecaster: Forecaster, window: int, features: int) -> torch.jit.ScriptModule:
    """``forecaster`` (in eval mode, on the CPU) traced and frozen, with no pass that changes
    numerics, into one TorchScript call: the same forecasts. Eager, each layer of each member
    is a call that gives the GIL up and waits for it again; beside a busy Python thread (the
    worker's event loop) each wait lasts up to the interpreter's switch interval (5 ms), so a
    forward pass of 7 ms took over half a second. The traced call holds the GIL only to start
    and to return.

    >>> from models.rul.artifact import Architecture
    >>> _ = torch.manual_seed(0)
    >>> eager = Forecaster(Architecture(3, hidden=4, layers=1).build().eval())
    >>> x, factor = torch.randn(5, 6, 3), torch.full((5,), 1.5)
    >>> with torch.no_grad():
    ...     bool(torch.equal(gil_free(eager, 6, 3)(x, factor), eager(x, factor)))
    True
    """
    example = (torch.zeros((2, window, features)), torch.ones(2))
    with torch.no_grad(), warnings.catch_warnings():
        # the LSTM checks its initial state's shape in Python: the trace keeps that check as a
        # constant, and builds the state from the input's batch size (any batch size works)
        warnings.simplefilter("ignore", TracerWarning)
        traced = torch.jit.trace(forecaster.eval(), example, check_trace=False)  # type: ignore[no-untyped-call]
    frozen: torch.jit.ScriptModule = torch.jit.freeze(traced, optimize_numerics=False)
    return frozen


class RulPredictor:
    """Synchronous batched inference with a trained artifact.

    ``model`` is the ensemble as loaded (its members run one after another: on a CPU the
    fastest, see :mod:`models.rul.fused`; on the CPU it runs as one :func:`gil_free` call) or its
    :class:`FusedEnsemble`; both give the same forecasts to float32 rounding.

    Examples
    --------
    >>> import tempfile
    >>> from models.rul.artifact import Architecture, ArtifactMetadata, save_artifact
    >>> from models.features import Normalizer
    >>> norm = Normalizer.fit(np.eye(2), np.zeros((2, 3)), ("s2", "s3"))
    >>> arch = Architecture(2, hidden=4, layers=1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_artifact(d, arch.build(), ArtifactMetadata(norm, 5, 125.0, arch, 0, "0"))
    ...     predictor = RulPredictor.load(d, device="cpu")
    >>> pred = predictor.predict(np.zeros((3, 5, 2), dtype=np.float32))
    >>> pred.p50.shape, bool(np.all(pred.p10 <= pred.p90))
    ((3,), True)
    """

    def __init__(
        self,
        model: QuantileEnsemble | FusedEnsemble,
        metadata: ArtifactMetadata,
        device: torch.device | str = "cpu",
        max_batch: int = 4096,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.metadata = metadata
        self.max_batch = max_batch
        self._inputs = metadata.inputs  # one spec, shared by every asset's window keeper
        forecaster = Forecaster(self.model)
        self._forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = forecaster
        if self.device.type == "cpu" and isinstance(self.model, QuantileEnsemble):
            self._forward = gil_free(forecaster, metadata.window, self.n_features)

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> RulPredictor:
        """Load an artifact directory onto ``auto`` (CUDA if present), ``cpu`` or ``cuda``."""
        dev = resolve_device(device)
        model, meta = load_artifact(directory, dev)
        return cls(model, meta, dev)

    @property
    def version(self) -> str:
        """The model version (from the artifact)."""
        return self.metadata.version

    @property
    def rul_unit(self) -> str:
        """``cycles`` or ``hours`` (from the artifact)."""
        return self.metadata.rul_unit

    @property
    def data_source(self) -> str:
        """What the model was trained on (from the artifact)."""
        return self.metadata.data_source

    @property
    def window(self) -> int:
        """Rows per window (``W``)."""
        return self.metadata.window

    @property
    def n_features(self) -> int:
        """Features per row (``F``)."""
        return len(self._inputs.names)

    def new_window(self) -> AssetWindow:
        """An empty window keeper matching this model."""
        return AssetWindow(self._inputs)

    def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
        """Forecast RUL for normalised ``windows (B, W, F)`` -> ``RulPrediction`` of ``(B,)``.

        The band's distance from the median is scaled by the artifact's ``band_scale`` (its
        calibration on validation engines) and, out of domain, also by the window's domain
        score (the band widens with the distance from the training data); predictions are
        clipped at 0. Raises ``DataError`` on a wrong shape or non-finite values.
        """
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, self.n_features):
            raise DataError(
                f"expected windows of shape (B, {self.window}, {self.n_features}), got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise DataError("windows contain non-finite values")
        domain = self.metadata.domain
        score = domain.score(x) if domain is not None else None
        widen = np.maximum(score, 1.0) if score is not None else np.ones(len(x))
        factor = torch.from_numpy((widen * self.metadata.band_scale).astype(np.float32))
        parts = []
        with torch.inference_mode():
            for i in range(0, len(x), self.max_batch):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + self.max_batch]))
                fb = factor[i : i + self.max_batch]
                if self.device.type != "cpu":
                    xb, fb = xb.to(self.device, non_blocking=True), fb.to(self.device)
                parts.append(self._forward(xb, fb).numpy(force=True))
        q3 = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)
        return RulPrediction(q3[:, 0].copy(), q3[:, 1].copy(), q3[:, 2].copy(), score)


class AssetWindow:
    """The last ``window`` normalised rows of one asset's life, in a float32 ring buffer.

    Windows are built exactly as in training (:class:`~models.features.InputSpec`): with
    ``trend > 0`` they carry the trend channels from the life's first pushed record on (the
    keeper holds the trend at the row before its oldest row and derives the window's trend from
    it); with ``age_scale > 0`` the age channel, from the records' ``cycle`` counter when they
    carry one (cycle 1 is the first of a life) or else from the count of pushed records. A cycle
    lower than the last one starts a new life (a repair): the keeper forgets the old one.
    Memory is one ``(window, S)`` float32 array, the trend state (``S`` float64) and a few slots
    (see :attr:`nbytes`).

    Examples
    --------
    >>> from models.features import InputSpec, Normalizer
    >>> norm = Normalizer.fit([[0.0], [10.0]], np.zeros((2, 3)), ("s2",))
    >>> w = AssetWindow(InputSpec(norm, window=3))
    >>> for v in (1.0, 2.0, 3.0, 4.0):
    ...     w.push({"s2": v})
    >>> w.ready, [round(float(v), 2) for v in w.array().ravel()]
    (True, [0.2, 0.3, 0.4])
    >>> t = AssetWindow(InputSpec(norm, window=2, trend=0.5, age_scale=10.0))
    >>> for cycle, v in enumerate((0.0, 10.0, 10.0), start=1):
    ...     t.push({"s2": v}, cycle=cycle)
    >>> t.array().tolist()  # scaled sensor, trend, age
    [[1.0, 0.5, 0.10000000149011612], [1.0, 0.75, 0.20000000298023224]]
    >>> t.push({"s2": 0.0}, cycle=1)  # a new life
    >>> t.count
    1
    """

    __slots__ = ("_age", "_before", "_buf", "_count", "_pos", "_spec")

    def __init__(self, spec: InputSpec) -> None:
        self._spec = spec
        self._buf = np.zeros((spec.window, len(spec.normalizer.sensors)), dtype=np.float32)
        self._before: NDArray[np.float64] | None = None  # trend at the row before the oldest
        self._pos = 0
        self._count = 0
        self._age = -1  # cycles into life of the newest row

    @property
    def ready(self) -> bool:
        """Whether ``window`` rows have been seen."""
        return self._count >= len(self._buf)

    @property
    def count(self) -> int:
        """Rows held (at most ``window``)."""
        return min(self._count, len(self._buf))

    @property
    def nbytes(self) -> int:
        """Bytes held by this keeper: its slots object, the ring buffer and the trend state.

        The input spec is shared by all keepers of one model and not counted.
        """
        before = sys.getsizeof(self._before) if self._before is not None else 0
        return sys.getsizeof(self) + sys.getsizeof(self._buf) + before

    def push(
        self,
        sensors: Mapping[str, float],
        settings: Mapping[str, float] | None = None,
        cycle: int | None = None,
    ) -> None:
        """Normalise and append one record (``cycle``: its cycle in life, counted from 1).

        Raises ``DataError`` if a model sensor is missing or not finite (the window is unchanged).
        """
        row = self._spec.normalizer.transform_one(sensors, settings)
        if not np.isfinite(row).all():
            raise DataError("non-finite sensor value")
        age = self._age + 1 if cycle is None else cycle - 1
        if age < self._age:
            self.clear()
        a = self._spec.trend
        if a and self.ready:  # the oldest row leaves: fold it into the trend state
            old = self._buf[self._pos].astype(np.float64)
            self._before = old if self._before is None else a * old + (1.0 - a) * self._before
        self._buf[self._pos] = row
        self._pos = (self._pos + 1) % len(self._buf)
        self._count = min(self._count + 1, len(self._buf))
        self._age = age

    def array(self, pad: bool = False) -> NDArray[np.float32]:
        """The window, oldest row first, as a new ``(window, F)`` array of model inputs.

        With ``pad`` a window that is not yet full is front-padded with its first row (as in
        training); otherwise it raises ``DataError``.
        """
        if self._count == 0:
            raise DataError("no rows yet")
        if not self.ready:
            if not pad:
                raise DataError(f"window not full ({self._count}/{len(self._buf)} rows)")
            rows = self._channels(self._buf[: self._count])
            return np.concatenate([np.repeat(rows[:1], len(self._buf) - self._count, 0), rows])
        return self._channels(np.roll(self._buf, -self._pos, axis=0))

    def _channels(self, rows: NDArray[np.float32]) -> NDArray[np.float32]:
        spec = self._spec
        if spec.trend:
            x = rows.astype(np.float64)
            m, c = trend_weights(len(x), spec.trend)
            before = x[0] if self._before is None else self._before  # e[0] = x[0] at the start
            e = m @ x + c[:, None] * before
            rows = np.concatenate([rows, e.astype(np.float32)], axis=1)
        return with_age(rows, spec.age_scale, first=self._age - len(rows) + 1)

    def clear(self) -> None:
        """Forget all rows (a new life, e.g. after a repair)."""
        self._pos = self._count = 0
        self._before = None
        self._age = -1


@dataclass(frozen=True)
class Evaluation:
    """Forecasts on each run's last window against its true RUL, with the summary metrics.

    ``true`` is the RUL as given (e.g. ``RUL_FD001.txt``, not capped); ``cap`` is the model's
    training cap, used only by the ``*_capped`` metrics of the piecewise-linear protocol.
    """

    run_ids: tuple[str, ...]
    prediction: RulPrediction
    true: NDArray[np.float64]
    cap: float

    def metrics(self) -> dict[str, float]:
        """``rmse``, ``score`` (NASA), ``coverage`` (P10-P90), ``n_engines``, capped variants and
        ``out_of_domain_share`` (runs whose last window the model flags as out of domain)."""
        p = self.prediction
        capped = np.minimum(self.true, self.cap)
        return {
            "rmse": rmse(p.p50, self.true),
            "score": nasa_score(p.p50, self.true),
            "coverage": interval_coverage(p.p10, p.p90, self.true),
            "n_engines": float(len(self.true)),
            "rmse_capped": rmse(p.p50, capped),
            "score_capped": nasa_score(p.p50, capped),
            "out_of_domain_share": float(np.mean(~p.in_domain)) if len(self.true) else 0.0,
        }


def evaluate(predictor: RulPredictor, runs: Sequence[Run]) -> Evaluation:
    """Score ``predictor`` on the last window of each run (C-MAPSS test protocol).

    >>> from models.rul.artifact import Architecture, ArtifactMetadata
    >>> from models.rul.data import fit_normalizer, simulated_runs
    >>> runs = simulated_runs(assets=2, lives=1)
    >>> norm = fit_normalizer(runs, ("s2", "s3"))
    >>> arch = Architecture(2, hidden=4, layers=1)
    >>> predictor = RulPredictor(arch.build(), ArtifactMetadata(norm, 30, 125.0, arch, 0, "0"))
    >>> sorted(evaluate(predictor, runs).metrics())[:3]
    ['coverage', 'n_engines', 'out_of_domain_share']
    """
    meta = predictor.metadata
    x, y = final_windows(runs, meta.inputs)
    pred = predictor.predict(x)
    return Evaluation(tuple(r.run_id for r in runs), pred, y, meta.cap)
