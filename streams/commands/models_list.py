"""``pmaint models list``: a registry's versions, their data source and metrics, and which is
current for which asset type."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from models.errors import ConfigError
from models.rul.registry import RegistryEntry, current_versions, list_versions

EXAMPLES = """examples:
  pmaint models list --registry /models
  pmaint models list --registry /models --json"""

SHOWN_METRICS = (
    "rmse", "score", "coverage", "val_cut_rmse", "val_cut_coverage",
    "test_rmse", "test_score", "test_coverage",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint models list``."""
    parser.add_argument("--registry", type=Path, required=True, metavar="DIR", help="registry")
    parser.add_argument("--json", action="store_true", help="one JSON document")


def _serving(entry: RegistryEntry) -> list[str]:
    return ["(no type)" if t is None else t for t in entry.current_for]


def to_json(registry: Path, entries: list[RegistryEntry]) -> dict[str, object]:
    """The ``--json`` document: ``current`` (version for assets without a type, or null),
    ``current_by_type`` and ``versions`` (each with ``version``, ``data_source``, ``metrics``,
    ``promoted_at``, ``current``, ``asset_types`` and ``error`` when unreadable)."""
    current = current_versions(registry)
    versions = []
    for e in entries:
        item: dict[str, object] = {
            "version": e.version,
            "data_source": e.data_source,
            "metrics": e.metrics,
            "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.promoted_at)),
            "current": None in e.current_for,
            "asset_types": sorted(t for t in e.current_for if t is not None),
        }
        if e.error:
            item["error"] = e.error
        versions.append(item)
    return {
        "registry": str(registry),
        "current": current.get(None),
        "current_by_type": {t: current[t] for t in sorted(t for t in current if t is not None)},
        "versions": versions,
    }


def _table(entries: list[RegistryEntry]) -> str:
    rows = [("", "VERSION", "SERVED TO", "DATA SOURCE", "METRICS")]
    for e in entries:
        metrics = " ".join(f"{k}={e.metrics[k]:g}" for k in SHOWN_METRICS if k in e.metrics)
        rows.append(
            (
                "*" if e.current_for else "",
                e.version,
                ",".join(_serving(e)) or "-",
                e.data_source or "-",
                f"unreadable: {e.error}" if e.error else metrics or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ).rstrip()


def run(args: argparse.Namespace) -> int:
    """Print the registry's versions (oldest first)."""
    if not args.registry.is_dir():
        raise ConfigError(f"no model registry at {args.registry}")
    entries = list_versions(args.registry)
    if args.json:
        print(json.dumps(to_json(args.registry, entries)))
    elif not entries:
        print(f"{args.registry}: no models yet (pmaint models promote --registry DIR ARTIFACT)")
    else:
        print(_table(entries))
    return 0
