"""Reproducible training of the quantile LSTM on run-to-failure data.

Runs (engines) are dealt into folds; one member network per fold is trained with the pinball
loss on the capped RUL target on the other folds' engines and early-stopped on its own, and the
model is the average of the members (a cross-validated ensemble: averaging cancels much of the
seed-to-seed and split-to-split variance of a single LSTM). An exponential moving average of the
weights (EMA) is what gets validated and kept: the averaged weights of the epoch with the lowest
validation loss. Validation also scores the test protocol: held-out engines cut at random rows,
last window against the true, uncapped RUL; these out-of-fold forecasts calibrate the P10-P90
band, and the held-out windows' distances from their folds' training data calibrate the
in-domain measure (:mod:`models.rul.domain`). Seeds, a seeded shuffle and
``torch.use_deterministic_algorithms`` make the same data + seed give the same model on CPU.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from queue import Empty
from typing import TypeAlias

import numpy as np
import torch
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.errors import ConfigError
from models.features import (
    AGE_SCALE,
    INFORMATIVE_SENSORS,
    TREND_ALPHA,
    WINDOW,
    InputSpec,
    Normalizer,
)
from models.metrics import interval_coverage, nasa_score, rmse
from models.rul.artifact import Architecture, ArtifactMetadata
from models.rul.data import (
    RUL_CAP,
    Run,
    cut_windows,
    data_sha256,
    fit_normalizer,
    split_folds,
    windows,
)
from models.rul.device import resolve_device
from models.rul.domain import DomainModel
from models.rul.network import QuantileEnsemble, QuantileLSTM


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (stored in the artifact's metadata).

    ``folds`` members are trained, member ``k`` on all engines but fold ``k`` and early-stopped
    on that fold; the artifact holds their average (``folds == 1``: one member validated on a
    ``val_share`` of the engines). ``trend`` is the smoothing factor of the trend channels and
    ``age_scale`` the scale of the age channel (0: none); ``ema`` the decay of the weight average
    that is validated and kept (0: none). ``val_cuts`` random cuts per validation engine within
    its last ``val_horizon`` cycles give the test-protocol metrics, and the P10-P90 band is
    scaled to cover ``coverage`` of them (0: no calibration).

    >>> TrainConfig(epochs=3).window
    30
    """

    window: int = WINDOW
    cap: float = RUL_CAP
    sensors: tuple[str, ...] = INFORMATIVE_SENSORS
    settings: tuple[str, ...] = ()  # names of the runs' settings columns (empty: C-MAPSS's)
    trend: float = TREND_ALPHA
    age_scale: float = AGE_SCALE
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 48
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 512
    lr: float = 3e-3
    patience: int = 8
    folds: int = 5
    val_share: float = 0.2
    ema: float = 0.995
    val_cuts: int = 10
    val_horizon: float = 150.0
    coverage: float = 0.8
    seed: int = 0
    device: str = "auto"

    def inputs(self, normalizer: Normalizer) -> InputSpec:
        """The input rows these settings train on, with ``normalizer``'s scaling."""
        return InputSpec(normalizer, self.window, self.trend, self.age_scale)

    def architecture(self, n_features: int) -> Architecture:
        """The network these settings train: ``folds`` members over ``n_features`` inputs."""
        return Architecture(
            n_features, self.quantiles, self.hidden, self.layers, self.dropout, self.cap,
            members=self.folds,
        )  # fmt: skip


@dataclass
class TrainResult:
    """A trained ensemble, its metadata (without version yet) and the per-epoch history.

    Each history row is one epoch of one member (``member``, ``epoch``, validation metrics).
    """

    model: QuantileEnsemble
    metadata: ArtifactMetadata
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Fold:
    """One member's data: training windows, validation windows and validation cuts."""

    x: NDArray[np.float32]
    y: NDArray[np.float32]
    xv: NDArray[np.float32]
    yv: NDArray[np.float32]
    xc: NDArray[np.float32]
    yc: NDArray[np.float64]


def pinball_loss(pred: torch.Tensor, y: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean quantile (pinball) loss of ``pred (B, Q)`` against ``y (B,)`` for ``quantiles (Q,)``.

    >>> pinball_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([1.0]), torch.tensor([0.1, 0.9]))
    tensor(0.0500)
    """
    diff = y[:, None] - pred  # (B, Q)
    return torch.mean(torch.maximum(quantiles * diff, (quantiles - 1.0) * diff))


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and turn on deterministic algorithms for the duration of the block.

    >>> with deterministic(1):
    ...     a = torch.rand(2)
    >>> with deterministic(1):
    ...     bool((a == torch.rand(2)).all())
    True
    """
    previous = torch.are_deterministic_algorithms_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn = torch.backends.cudnn
    flags = (cudnn.deterministic, cudnn.benchmark)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        cudnn.deterministic, cudnn.benchmark = flags


def predict_array(
    model: QuantileLSTM | QuantileEnsemble,
    x: NDArray[np.float32],
    device: torch.device,
    batch: int = 4096,
) -> NDArray[np.float32]:
    """Run ``model`` over ``x (N, W, F)`` in chunks -> quantiles ``(N, Q)`` (eval mode, no grad)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(device)
            out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.quantiles)), np.float32)


def _metrics(
    pred: NDArray[np.float32], y: NDArray[np.float32], qs: Sequence[float]
) -> dict[str, float]:
    lo, mid, hi = pred[:, 0], pred[:, qs.index(0.5)], pred[:, -1]
    return {"rmse": rmse(mid, y), "coverage": interval_coverage(lo, hi, y)}


def _cut_metrics(
    pred: NDArray[np.float32], y: NDArray[np.float64], qs: Sequence[float]
) -> dict[str, float]:
    """Test-protocol metrics; the NASA score is per 100 cuts (the size of a C-MAPSS test set)."""
    mid = pred[:, qs.index(0.5)]
    return {
        "cut_rmse": rmse(mid, y),
        "cut_score": nasa_score(mid, y) * 100.0 / len(y),
        "cut_coverage": interval_coverage(pred[:, 0], pred[:, -1], y),
    }


def band_scale(pred: NDArray[np.float32], y: NDArray[np.float64], coverage: float) -> float:
    """Factor on the distances of ``pred (N, 3)`` (P10, P50, P90) from the median that makes the
    band hold ``coverage`` of ``y`` (split-conformal quantile of the needed factors).

    >>> pred = np.array([[8.0, 10.0, 12.0]] * 4, dtype=np.float32)
    >>> band_scale(pred, np.array([9.0, 11.0, 13.0, 14.0]), 0.5)
    1.5
    """
    lo, mid, hi = (pred[:, i].astype(np.float64) for i in range(3))
    below = (mid - y) / np.maximum(mid - lo, 1e-6)
    above = (y - mid) / np.maximum(hi - mid, 1e-6)
    need = np.sort(np.where(y < mid, below, above))
    k = min(len(need), int(np.ceil((len(need) + 1) * coverage)))
    return float(need[max(k, 1) - 1])


def train_rul(
    runs: Sequence[Run],
    config: TrainConfig,
    progress: bool = False,
    data_source: str = "",
    rul_unit: str = "cycles",
    jobs: int = 1,
) -> TrainResult:
    """Train an ensemble of :class:`QuantileLSTM` on ``runs`` (run to failure), one per fold.

    The scaling is fitted on all ``runs``; each member is early-stopped on its held-out fold, and
    the pooled held-out predictions give the validation metrics and the band calibration; their
    distances from their folds' training windows calibrate the in-domain measure. On the CPU,
    ``jobs > 1`` trains that many members at once, each in its own single-threaded process
    (members are independent, so the model is the same as with ``jobs=1``).

    Examples
    --------
    >>> from models.rul.data import simulated_runs
    >>> cfg = TrainConfig(epochs=1, hidden=8, layers=1, device="cpu", folds=2)
    >>> result = train_rul(simulated_runs(assets=4, lives=1), cfg)
    >>> len(result.model.members), sorted(result.metadata.metrics)[:3]
    (2, ['best_epoch', 'val_coverage', 'val_cut_coverage'])
    >>> result.metadata.domain is not None, result.metadata.rul_unit
    (True, 'cycles')
    """
    if config.epochs < 1 or config.batch_size < 1 or config.patience < 1 or jobs < 1:
        raise ConfigError("epochs, batch size, patience and jobs must be at least 1")
    if not (0.0 <= config.ema < 1.0 and 0.0 <= config.coverage < 1.0):
        raise ConfigError("ema and coverage must be in [0, 1)")
    device = resolve_device(config.device)
    spec = config.inputs(fit_normalizer(runs, config.sensors, config.settings))
    n_sensors = len(config.sensors)
    arch = config.architecture(len(spec.names))
    pairs = split_folds(runs, config.folds, config.val_share, config.seed)
    tasks = [_FoldTask(k, tr, val, spec, arch, config, device) for k, (tr, val) in enumerate(pairs)]
    with _progress(progress, len(pairs) * config.epochs) as bar:
        fits = _fit_all(tasks, jobs if device.type == "cpu" else 1, bar)
    members = [f.model for f in fits]
    history = [{"member": float(f.k), **r} for f in fits for r in f.history]
    bests = [f.best for f in fits]
    pooled = [(f.cut_pred, f.cut_true) for f in fits]
    distances = [f.distances for f in fits]
    cut_pred = np.concatenate([p for p, _ in pooled])
    cut_true = np.concatenate([t for _, t in pooled])
    cols = [0, config.quantiles.index(0.5), len(config.quantiles) - 1]
    scale = band_scale(cut_pred[:, cols], cut_true, config.coverage) if config.coverage else 1.0
    cut = _cut_metrics(cut_pred, cut_true, config.quantiles)
    held_out = np.concatenate(distances)
    domain = DomainModel.fit(windows(runs, spec, config.cap)[0], n_sensors).calibrated(held_out)
    metrics = {
        "val_loss": round(float(np.mean([b["val_loss"] for b in bests])), 6),
        "val_rmse": round(float(np.mean([b["rmse"] for b in bests])), 4),
        "val_coverage": round(float(np.mean([b["coverage"] for b in bests])), 4),
        "val_cut_rmse": round(cut["cut_rmse"], 4),
        "val_cut_score": round(cut["cut_score"], 2),
        "val_cut_coverage": round(cut["cut_coverage"], 4),
        "best_epoch": float(np.mean([b["epoch"] for b in bests])),
        "val_cut_out_of_domain_share": round(float(np.mean(held_out > domain.threshold)), 4),
    }
    meta = ArtifactMetadata(
        normalizer=spec.normalizer,
        window=config.window,
        cap=config.cap,
        trend=config.trend,
        age_scale=config.age_scale,
        band_scale=scale,
        domain=domain,
        rul_unit=rul_unit,
        architecture=arch,
        seed=config.seed,
        data_sha256=data_sha256(runs),
        data_source=data_source,
        metrics=metrics,
        training={
            "epochs": config.epochs, "epochs_run": len(history), "batch_size": config.batch_size,
            "lr": config.lr, "patience": config.patience, "folds": config.folds,
            "val_share": config.val_share, "ema": config.ema, "val_cuts": config.val_cuts,
            "val_horizon": config.val_horizon, "runs": len(runs),
            "best_epochs": [int(b["epoch"]) for b in bests],
        },
    )  # fmt: skip
    return TrainResult(QuantileEnsemble(members).eval(), meta, history)


def _train_member(
    arch: Architecture,
    fold: _Fold,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    on_epoch: _OnEpoch,
) -> tuple[QuantileLSTM, list[dict[str, float]], dict[str, float]]:
    """Train one member with early stopping on its fold.

    ``on_epoch(row, advance)`` hears of each epoch and how many of the planned ones it completes
    (the rest at an early stop). Returns the averaged weights of the best epoch, the history and
    that epoch's row.
    """
    qs = torch.tensor(config.quantiles, device=device)
    history: list[dict[str, float]] = []
    with deterministic(seed):
        model = arch.member().to(device)
        averaged = copy.deepcopy(model)  # the EMA of the weights: validated and kept
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        gen = torch.Generator().manual_seed(seed)
        xt = torch.from_numpy(fold.x).to(device)
        yt = torch.from_numpy(fold.y).to(device) / config.cap
        best_state, stale, step = averaged.state_dict(), 0, 0
        best: dict[str, float] = {"val_loss": float("inf")}
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.randperm(len(xt), generator=gen).to(device)
            for i in range(0, len(order), config.batch_size):
                idx = order[i : i + config.batch_size]
                loss = pinball_loss(model(xt[idx]) / config.cap, yt[idx], qs)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                decay = min(config.ema, (1.0 + step) / (10.0 + step))  # short warm-up
                with torch.no_grad():
                    for avg, p in zip(averaged.parameters(), model.parameters(), strict=True):
                        avg.lerp_(p, 1.0 - decay)
            pv = predict_array(averaged, fold.xv, device)
            val_loss = float(
                pinball_loss(
                    torch.from_numpy(pv / config.cap), torch.from_numpy(fold.yv / config.cap),
                    qs.cpu(),
                )
            )  # fmt: skip
            sched.step(val_loss)
            row = {
                "epoch": float(epoch),
                "val_loss": val_loss,
                **_metrics(pv, fold.yv, config.quantiles),
                **_cut_metrics(predict_array(averaged, fold.xc, device), fold.yc, config.quantiles),
            }
            history.append(row)
            if val_loss < best["val_loss"] - 1e-6:
                best, stale = row, 0
                best_state = {k: v.detach().clone() for k, v in averaged.state_dict().items()}
            else:
                stale += 1
            last = stale >= config.patience
            on_epoch(row, config.epochs - epoch + 1 if last else 1)
            if last:
                break
        model.load_state_dict(best_state)
    return model.eval(), history, best


_OnEpoch = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class _FoldTask:
    """What one member is trained from (picklable: it may travel to a worker process)."""

    k: int
    train: list[Run]
    val: list[Run]
    spec: InputSpec
    arch: Architecture
    config: TrainConfig
    device: torch.device


@dataclass(frozen=True)
class _FoldFit:
    """One trained member, its epochs, its best epoch and its held-out cut forecasts."""

    k: int
    model: QuantileLSTM
    history: list[dict[str, float]]
    best: dict[str, float]
    cut_pred: NDArray[np.float32]
    cut_true: NDArray[np.float64]
    distances: NDArray[np.float64]


def _fit_fold(task: _FoldTask, on_epoch: _OnEpoch) -> _FoldFit:
    """Train member ``k`` on its fold; forecast its held-out cuts and measure their distances."""
    config, spec, k = task.config, task.spec, task.k
    check = task.val or task.train
    x, y = windows(task.train, spec, config.cap)
    xv, yv = windows(check, spec, config.cap)
    xc, yc = cut_windows(check, spec, config.val_cuts, config.val_horizon, config.seed + k)
    fold = _Fold(x, y, xv, yv, xc, yc)
    model, rows, best = _train_member(
        task.arch, fold, config, config.seed + k, task.device, on_epoch
    )
    distances = DomainModel.fit(x, len(config.sensors)).distance(xc)
    return _FoldFit(k, model, rows, best, predict_array(model, xc, task.device), yc, distances)


def _fit_all(tasks: Sequence[_FoldTask], jobs: int, bar: Progress | None) -> list[_FoldFit]:
    """Fit every fold, ``jobs`` at a time in worker processes (in this one when ``jobs == 1``)."""

    def show(row: dict[str, float], advance: int) -> None:
        if bar is not None:
            bar.update(bar.task_ids[0], advance=advance, info=_info(row))

    if jobs == 1 or len(tasks) == 1:
        return [_fit_fold(task, show) for task in tasks]
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    queue: _Epochs = context.Queue()
    with ProcessPoolExecutor(
        min(jobs, len(tasks)), context, initializer=_worker_init, initargs=(queue,)
    ) as pool:
        futures = [pool.submit(_fit_fold_in_worker, task) for task in tasks]
        while not all(f.done() for f in futures):
            with suppress(Empty):
                show(*queue.get(timeout=0.2))
        return [f.result() for f in futures]


_Epochs: TypeAlias = "Queue[tuple[dict[str, float], int]]"  # workers' epoch rows, for the bar
_worker_queue: dict[str, _Epochs] = {}  # the epoch queue of a training worker process


def _worker_init(queue: _Epochs) -> None:
    """A training worker: one torch thread (the processes share the cores) and the epoch queue."""
    torch.set_num_threads(1)
    _worker_queue["epochs"] = queue


def _fit_fold_in_worker(task: _FoldTask) -> _FoldFit:
    queue = _worker_queue["epochs"]  # set by _worker_init
    return _fit_fold(task, lambda row, advance: queue.put((row, advance)))


def _info(row: dict[str, float]) -> str:
    return (
        f"val loss {row['val_loss']:.4f}  rmse {row['rmse']:.2f}  cover {row['coverage']:.2f}  "
        f"cut rmse {row['cut_rmse']:.2f}"
    )


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=Console(stderr=True),
    )  # fmt: skip
    with bar:
        bar.add_task("epochs", total=total, info="")
        yield bar
