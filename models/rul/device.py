"""Device choice shared by training and serving: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch

from models.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda`` (or ``cuda:N``) to a torch device; ``auto`` prefers CUDA.

    Raises ``ConfigError`` for an unknown name or when CUDA is asked for but absent.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    models.errors.ConfigError: unknown device 'tpu'; expected auto, cpu or cuda
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device(device)
    raise ConfigError(f"unknown device {device!r}; expected auto, cpu or cuda")
