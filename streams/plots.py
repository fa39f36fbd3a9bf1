"""What every PNG pmaint writes shares: a headless backend and one clear error on a bad path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.errors import ConfigError


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend (imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out, write and close ``fig``; an unwritable ``path`` is one ``ConfigError``."""
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise ConfigError(f"cannot write plot {path}: {exc}") from None
    finally:
        pyplot().close(fig)
    return path
