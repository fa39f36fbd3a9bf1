"""``pmaint demo``: an embedded broker, a simulated fleet, a worker, and a live view."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from models.errors import PmaintError
from streams.broker import EmbeddedBroker, free_port
from streams.gateway import Gateway, simulated
from streams.kafka_clients import ensure_topics
from streams.settings import load_settings

HELP = "Run everything locally: broker, simulated fleet, worker, live view, summary"
EXAMPLES = """examples:
  pmaint demo                          # 60 s with the embedded broker
  pmaint demo --duration 20 --assets 8 --rate 400
  pmaint demo --bootstrap kafka:9092   # use a running Kafka instead"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    parser.add_argument("--assets", type=int, default=12, help="simulated assets")
    parser.add_argument("--rate", type=float, default=300.0, help="records/s from the gateway")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--bootstrap", help="a running Kafka instead of the embedded broker")
    parser.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")


@dataclass
class Snapshot:
    """What the worker reported at one moment."""

    at: float
    ok: float = 0.0
    dead: float = 0.0
    assets: list[dict[str, Any]] = field(default_factory=list)


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return str(r.read().decode())


def snapshot(port: int) -> Snapshot:
    snap = Snapshot(time.monotonic())
    for line in _get(port, "/metrics").splitlines():
        if line.startswith('pmaint_records_total{outcome="ok"}'):
            snap.ok = float(line.split()[-1])
        elif line.startswith('pmaint_records_total{outcome="dead_letter"}'):
            snap.dead = float(line.split()[-1])
    snap.assets = json.loads(_get(port, "/assets"))["assets"]
    return snap


def view(snap: Snapshot, rate: float, elapsed: float, duration: float) -> Group:
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[bold]pmaint demo[/] {elapsed:4.0f}/{duration:.0f} s",
        f"records ok [green]{snap.ok:,.0f}[/]",
        f"dead letters [red]{snap.dead:,.0f}[/]",
        f"{rate:,.0f} records/s",
        f"assets {len(snap.assets)}",
    )
    table = Table(expand=True)
    for column in ("asset", "records", "sensors", "last seen (event time)"):
        table.add_column(column)
    for a in snap.assets[:20]:
        table.add_row(a["asset_id"], f"{a['records']:,}", str(a["sensors"]), a["last_seen"])
    return Group(head, table)


def _start_worker(bootstrap: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PMAINT_KAFKA_BOOTSTRAP": bootstrap, "PMAINT_DATA_DIR": str(workdir)}
    env.setdefault("PMAINT_GROUP_REBALANCE_TIMEOUT_S", "4")
    log = (workdir / "worker.log").open("wb")
    cmd = [sys.executable, "-m", "streams.cli", "worker", "--web-port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PmaintError(f"the worker exited; see {workdir / 'worker.log'}")
        try:
            if json.loads(_get(port, "/ready"))["ready"]:
                return proc, port
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    proc.terminate()
    raise PmaintError(f"the worker did not get ready; see {workdir / 'worker.log'}")


def run(args: argparse.Namespace) -> int:
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="pmaint-demo-"))
    broker = None if args.bootstrap else EmbeddedBroker(workdir / "broker.log")
    bootstrap = args.bootstrap or (broker.bootstrap if broker else "")
    worker: subprocess.Popen[bytes] | None = None
    try:
        settings = load_settings(kafka_bootstrap=bootstrap)
        ensure_topics(settings)
        console.print(f"broker [bold]{bootstrap}[/] {'(embedded)' if broker else ''}")
        worker, port = _start_worker(bootstrap, workdir)
        console.print(f"worker ready: http://127.0.0.1:{port}/metrics  /assets  /health")
        gateway = Gateway(settings, frame=10, rate=args.rate)
        records = simulated(args.assets, int(args.rate * args.duration), args.seed)
        feeder = threading.Thread(target=gateway.send, args=(records,), daemon=True)
        started = time.monotonic()
        feeder.start()
        last = snapshot(port)
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while time.monotonic() - started < args.duration:
                time.sleep(1.0)
                snap = snapshot(port)
                rate = (snap.ok - last.ok) / max(snap.at - last.at, 1e-9)
                if not args.no_live:
                    live.update(view(snap, rate, time.monotonic() - started, args.duration))
                    live.refresh()
                last = snap
        feeder.join(timeout=5)
        gateway.close()
        final = snapshot(port)
        elapsed = time.monotonic() - started
        console.print(view(final, final.ok / elapsed, elapsed, args.duration))
        console.print(
            f"summary: {final.ok:,.0f} records processed, {final.dead:,.0f} dead letters, "
            f"{len(final.assets)} assets, {final.ok / elapsed:,.0f} records/s; logs in {workdir}"
        )
        return 0
    except urllib.error.URLError as exc:
        raise PmaintError(f"worker stopped answering: {exc.reason}") from None
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(20)
        if broker is not None:
            broker.stop()
