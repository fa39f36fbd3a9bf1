"""``python -m benchmarks``: run every benchmark, print their JSON lines, and add their table to
RESULTS.md as its newest run, above the runs before."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import results

HERE = Path(__file__).parent
SCRIPTS = (
    "ingest",
    "gateway",
    "rul",
    "anomaly",
    "sink",
    "latency",
    "scaling",
    "memory",
    "web",
    "fleet_state",
    "model_stage",
)


def main() -> int:
    rows: list[tuple[str, dict[str, object]]] = []
    failed = 0
    for name in SCRIPTS:
        command = f"python -m benchmarks.{name}"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *sys.argv[1:]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            failed += 1
            print(f"{name} failed: {proc.stderr[-2000:]}", file=sys.stderr)
        for line in lines:
            print(line, flush=True)
            rows.append((command, json.loads(line)))
        print(f"# {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    results.add_run(HERE / "RESULTS.md", rows, failed, sys.argv[1:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
