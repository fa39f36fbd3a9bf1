"""Reproducible training of the quantile LSTM on run-to-failure data.

Runs are split into training and validation *by engine*, the scaling is fitted on the training
engines only, and the network is trained with the pinball loss on the capped RUL target. The
weights of the epoch with the lowest validation loss are kept (early stopping). Seeds, a seeded
shuffle and ``torch.use_deterministic_algorithms`` make the same data + seed give the same model
on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.errors import ConfigError
from models.features import INFORMATIVE_SENSORS, WINDOW
from models.metrics import interval_coverage, rmse
from models.rul.artifact import Architecture, ArtifactMetadata
from models.rul.data import RUL_CAP, Run, data_sha256, fit_normalizer, split_runs, windows
from models.rul.device import resolve_device
from models.rul.network import QuantileLSTM


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (stored in the artifact's metadata).

    >>> TrainConfig(epochs=3).window
    30
    """

    window: int = WINDOW
    cap: float = RUL_CAP
    sensors: tuple[str, ...] = INFORMATIVE_SENSORS
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 48
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 25
    batch_size: int = 256
    lr: float = 2e-3
    patience: int = 6
    val_share: float = 0.2
    seed: int = 0
    device: str = "auto"


@dataclass
class TrainResult:
    """A trained model, its metadata (without version yet) and the per-epoch history."""

    model: QuantileLSTM
    metadata: ArtifactMetadata
    history: list[dict[str, float]] = field(default_factory=list)


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
    model: QuantileLSTM, x: NDArray[np.float32], device: torch.device, batch: int = 4096
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


def train_rul(
    runs: Sequence[Run], config: TrainConfig, progress: bool = False, data_source: str = ""
) -> TrainResult:
    """Train a :class:`QuantileLSTM` on ``runs`` (run to failure) with early stopping.

    Examples
    --------
    >>> from models.rul.data import simulated_runs
    >>> cfg = TrainConfig(epochs=1, hidden=8, layers=1, device="cpu", val_share=0.25)
    >>> result = train_rul(simulated_runs(assets=4, lives=1), cfg)
    >>> sorted(result.metadata.metrics)
    ['best_epoch', 'val_coverage', 'val_loss', 'val_rmse']
    """
    if config.epochs < 1 or config.batch_size < 1 or config.patience < 1:
        raise ConfigError("epochs, batch size and patience must be at least 1")
    device = resolve_device(config.device)
    train_runs, val_runs = split_runs(runs, config.val_share, config.seed)
    norm = fit_normalizer(train_runs, config.sensors)
    x, y = windows(train_runs, norm, config.window, config.cap)
    xv, yv = windows(val_runs, norm, config.window, config.cap) if val_runs else (x, y)
    arch = Architecture(
        len(config.sensors), config.quantiles, config.hidden, config.layers, config.dropout,
        config.cap,
    )  # fmt: skip
    qs = torch.tensor(config.quantiles, device=device)
    history: list[dict[str, float]] = []
    with deterministic(config.seed):
        model = arch.build().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        gen = torch.Generator().manual_seed(config.seed)
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device) / config.cap
        best_loss, best_state, best_epoch, stale = float("inf"), model.state_dict(), 0, 0
        with _progress(progress, config.epochs) as bar:
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
                pv = predict_array(model, xv, device)
                val_loss = float(
                    pinball_loss(
                        torch.from_numpy(pv / config.cap),
                        torch.from_numpy(yv / config.cap),
                        qs.cpu(),
                    )
                )
                sched.step(val_loss)
                row = {
                    "epoch": float(epoch),
                    "val_loss": val_loss,
                    **_metrics(pv, yv, config.quantiles),
                }
                history.append(row)
                if val_loss < best_loss - 1e-6:
                    best_loss, best_epoch, stale = val_loss, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=1, info=_info(row))
                if stale >= config.patience:
                    break
        model.load_state_dict(best_state)
    model.eval()
    best = history[best_epoch - 1]
    metrics = {
        "val_loss": round(best["val_loss"], 6),
        "val_rmse": round(best["rmse"], 4),
        "val_coverage": round(best["coverage"], 4),
        "best_epoch": float(best_epoch),
    }
    meta = ArtifactMetadata(
        normalizer=norm,
        window=config.window,
        cap=config.cap,
        architecture=arch,
        seed=config.seed,
        data_sha256=data_sha256(runs),
        data_source=data_source,
        metrics=metrics,
        training={
            "epochs": config.epochs, "epochs_run": len(history), "batch_size": config.batch_size,
            "lr": config.lr, "patience": config.patience, "val_share": config.val_share,
            "train_runs": len(train_runs), "val_runs": len(val_runs), "train_windows": len(x),
        },
    )  # fmt: skip
    return TrainResult(model.cpu(), meta, history)


def _info(row: dict[str, float]) -> str:
    return f"val loss {row['val_loss']:.4f}  rmse {row['rmse']:.2f}  cover {row['coverage']:.2f}"


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
