"""``benchmarks/RESULTS.md``: each ``make bench`` run's table added as its newest section, above
the runs before (which keep the commands and notes written beside them)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TITLE = "# Benchmark results\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def with_run(existing: str, run: str) -> str:
    """RESULTS.md's text with ``run`` (a section) as its newest run, above the runs before.

    >>> with_run("# Benchmark results\\n\\n## older\\n", "## newer\\n")
    '# Benchmark results\\n\\n## newer\\n\\n## older\\n'
    >>> with_run("", "## first\\n")
    '# Benchmark results\\n\\n## first\\n'
    """
    before = existing.removeprefix(TITLE).lstrip("\n")
    return TITLE + "\n" + run + ("\n" + before if before else "")


def table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The JSON lines of a run (with the command that printed each) as a Markdown table.

    >>> line = {"name": "x", "value": 2.0, "unit": "s", "baseline": 1.0, "ratio": 2.0}
    >>> print(table([("python -m benchmarks.x", line)]))
    | benchmark | value | unit | baseline | ratio | command |
    | --- | --- | --- | --- | --- | --- |
    | x | 2.0 | s | 1.0 (baseline) | 2.0 | `python -m benchmarks.x` |
    """
    lines = [
        "| benchmark | value | unit | baseline | ratio | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for command, r in rows:
        lines.append(
            f"| {r['name']} | {r['value']} | {r['unit']} | {r['baseline']} "
            f"({r.get('baseline_name', 'baseline')}) | {r['ratio']} | `{command}` |"
        )
    return "\n".join(lines)


def add_run(
    path: Path, rows: Sequence[tuple[str, dict[str, Any]]], failed: int, args: Sequence[str]
) -> None:
    """Write the run's table into ``path`` as its newest section."""
    options = f" ({' '.join(args)})" if args else ""
    failures = f" Failed: {failed} benchmark(s), see the run log." if failed else ""
    run = (
        f"## `make bench`{options}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {machine()}. Each ratio is against a baseline measured in the same run."
        f"{failures}\n\n{table(rows)}\n"
    )
    path.write_text(with_run(path.read_text() if path.exists() else "", run))
