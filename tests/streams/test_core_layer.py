"""``streams.core`` holds the stream's logic without its wires: its modules import no broker,
HTTP, event-loop or file-system code, and nothing of ``streams`` outside the core but the
settings (where every default lives)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "streams" / "core"
WIRES = frozenset({
    "aiohttp", "aiokafka", "asyncio", "faust", "http", "influxdb_client", "mode", "pathlib",
    "shutil", "socket", "ssl", "subprocess", "tempfile", "threading", "torch", "urllib",
})  # fmt: skip
ALLOWED_IN_STREAMS = ("streams.core", "streams.settings")
HASH_ONLY = "kafka.partitioner"  # routing uses the client's partition hash, not its client


def imported(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (type-checking imports included)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def breaches(names: list[str]) -> list[str]:
    """The imports a core module may not make.

    >>> breaches(["numpy", "streams.core.schema", "kafka.partitioner.default", "models.monitor"])
    []
    >>> breaches(["asyncio", "streams.agents", "kafka", "streams.settings"])
    ['asyncio', 'streams.agents', 'kafka']
    """
    bad = []
    for name in names:
        top = name.partition(".")[0]
        if (
            top in WIRES
            or (top == "kafka" and not name.startswith(HASH_ONLY))
            or (top == "streams" and not name.startswith(ALLOWED_IN_STREAMS))
        ):
            bad.append(name)
    return bad


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_modules_import_no_wires(path: Path) -> None:
    assert breaches(imported(path)) == []


def test_the_core_holds_the_logic_the_worker_runs() -> None:
    held = {p.stem for p in CORE.glob("*.py")}
    assert {"schema", "routing", "pipeline", "alerts", "points", "line_protocol", "offsets"} <= held
