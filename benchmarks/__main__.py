"""``python -m benchmarks``: run every benchmark, print their JSON lines, write RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

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
    table = [
        "| benchmark | value | unit | baseline | ratio | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for command, r in rows:
        table.append(
            f"| {r['name']} | {r['value']} | {r['unit']} | {r['baseline']} "
            f"({r.get('baseline_name', 'baseline')}) | {r['ratio']} | `{command}` |"
        )
    (HERE / "RESULTS.md").write_text(
        "# Benchmark results\n\n"
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        "Produced by `make bench` (`python -m benchmarks`); each ratio is against a baseline "
        "measured in the same run.\n\n" + "\n".join(table) + "\n"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
