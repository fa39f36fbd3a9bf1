"""``pmaint models promote``: copy an artifact into a model registry and make it current."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.errors import ConfigError
from models.rul.registry import check_asset_type, promote

EXAMPLES = """examples:
  pmaint models promote --registry /models artifacts/rul-sim
  pmaint models promote --registry /models artifacts/rul-pumps --asset-type pump

The artifact is verified first (a broken one changes nothing); then CURRENT (or
CURRENT.<type>) is switched atomically. Workers with PMAINT_RUL_MODEL=/models serve it
within PMAINT_RUL_RELOAD_S seconds, without a restart. Promote an older version again to
roll back."""


def asset_type(text: str) -> str | None:
    """``--asset-type``: a name that can label a ``CURRENT.<type>`` file."""
    try:
        return check_asset_type(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint models promote``."""
    parser.add_argument("--registry", type=Path, required=True, metavar="DIR", help="registry")
    parser.add_argument("artifact", type=Path, metavar="ARTIFACT_DIR", help="artifact to promote")
    parser.add_argument(
        "--asset-type",
        type=asset_type,
        metavar="T",
        help="serve it to assets whose records carry type T (default: assets without a type)",
    )


def run(args: argparse.Namespace) -> int:
    """Promote and print what changed as one JSON line."""
    done = promote(args.registry, args.artifact, args.asset_type)
    report = {
        "version": done.version,
        "asset_type": done.asset_type,
        "previous": done.previous,
        "registry": str(args.registry),
    }
    print(json.dumps(report))
    return 0
