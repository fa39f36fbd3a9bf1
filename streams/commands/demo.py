"""``pmaint demo``: embedded broker, simulated fleet, worker with a RUL model, live view."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
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
from streams.commands.alerts import catch_up
from streams.core.alert_event import AlertEvent, to_rfc3339
from streams.demo_report import (
    Truth,
    cmapss_feed,
    fault_lines,
    judge,
    last_forecasts,
    plot,
    threshold_lines,
)
from streams.embedded import EmbeddedBroker, EmbeddedInfluxDB
from streams.gateway import Gateway, fleet
from streams.harness import start_worker
from streams.kafka_clients import ensure_topics
from streams.redact import redact_url
from streams.settings import Settings, load_settings

EXAMPLES = """examples:
  pmaint demo                          # 60 s with the embedded broker
  pmaint demo --duration 20 --assets 8 --rate 400
  pmaint demo --model artifacts/fd001  # use a trained RUL model
  pmaint demo --cmapss data/cmapss     # replay the FD001 test engines (trains on FD001)
  pmaint demo --bootstrap kafka:9092   # use a running Kafka instead"""

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
DRAIN_S = 60.0  # the longest the summary waits for the worker to take what was sent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    parser.add_argument("--assets", type=int, default=12, help="simulated assets")
    parser.add_argument("--rate", type=float, default=400.0, help="records/s from the gateway")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--model", type=Path, help="RUL model artifact (default: train one)")
    parser.add_argument("--bootstrap", help="a running Kafka instead of the embedded broker")
    parser.add_argument(
        "--cmapss", type=Path, metavar="DIR",
        help="replay NASA C-MAPSS FD001 test engines from DIR instead of the simulator",
    )  # fmt: skip
    parser.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")
    parser.add_argument(
        "--no-influx", action="store_true", help="do not start a local InfluxDB (influxd)"
    )


@dataclass
class Snapshot:
    """What the worker reported at one moment."""

    at: float
    ok: float = 0.0
    dead: float = 0.0
    alerts: dict[str, float] = field(default_factory=dict)  # kind -> opened
    assets: list[dict[str, Any]] = field(default_factory=list)

    def merge_into(self, history: dict[str, dict[float, dict[str, Any]]]) -> None:
        """Keep every history point seen so far, per asset and event time."""
        for a in self.assets:
            history.setdefault(a["asset_id"], {}).update({p["ts"]: p for p in a["history"]})


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def snapshot(port: int) -> Snapshot:
    snap = Snapshot(time.monotonic())
    for line in _get(port, "/metrics").splitlines():
        value = line.split()[-1] if line and not line.startswith("#") else "0"
        if line.startswith('pmaint_records_total{outcome="ok"}'):
            snap.ok = float(value)
        elif line.startswith('pmaint_records_total{outcome="dead_letter"}'):
            snap.dead = float(value)
        elif line.startswith("pmaint_alerts_total{") and 'state="open"' in line:
            kind = line.split('kind="')[1].split('"')[0]
            snap.alerts[kind] = snap.alerts.get(kind, 0.0) + float(value)
    snap.assets = json.loads(_get(port, "/assets?history=1&limit=500"))["assets"]
    return snap


def drained(port: int, sent: int, timeout: float) -> Snapshot:
    """The worker's snapshot once it has taken every record sent, or after ``timeout`` s: on a
    busy machine the worker lags the gateway, and the summary is of the whole feed."""
    deadline = time.monotonic() + timeout
    snap = snapshot(port)
    while snap.ok + snap.dead < sent and time.monotonic() < deadline:
        time.sleep(0.5)
        snap = snapshot(port)
    return snap


def risk(asset: dict[str, Any]) -> tuple[float, float]:
    """Lowest RUL P10 first, then the highest score over threshold."""
    over = asset.get("score", 0.0) / max(asset.get("threshold", 1.0), 1e-9)
    return (asset.get("rul_p10", float("inf")), -over)


def view(snap: Snapshot, rate: float, elapsed: float, duration: float) -> Group:
    head = Table.grid(padding=(0, 3))
    opened = ", ".join(f"{k} {v:.0f}" for k, v in sorted(snap.alerts.items())) or "none"
    head.add_row(
        f"[bold]pmaint demo[/] {elapsed:4.0f}/{duration:.0f} s",
        f"records [green]{snap.ok:,.0f}[/]",
        f"dead letters [red]{snap.dead:,.0f}[/]",
        f"{rate:,.0f} records/s",
        f"alerts opened: {opened}",
    )
    table = Table(expand=True, title="assets by risk (lowest RUL P10 first)")
    for column in ("asset", "records", "score / threshold", "RUL (P10–P90)", "top sensors"):
        table.add_column(column)
    table.add_column("open alerts")
    for a in sorted(snap.assets, key=risk)[:15]:
        mark = "[bold red]" if a.get("is_anomaly") else ""
        score = (
            "warming up"
            if a.get("warming_up", True)
            else f"{mark}{a['score']:.2f} / {a['threshold']:.2f}"
        )
        rul = f"{a['rul']:.0f} ({a['rul_p10']:.0f}–{a['rul_p90']:.0f})" if "rul" in a else "–"
        top = ", ".join(f"{s} {c:+.1f}" for s, c in a.get("top_sensors", [])[:2])
        alerts = " ".join(
            f"[{SEVERITY_STYLE[sev]}]{kind}[/]" for kind, sev in a["open_alerts"].items()
        )
        table.add_row(a["asset_id"], f"{a['records']:,}", score, rul, top, alerts)
    return Group(head, table)


def demo_model(settings: Settings, console: Console, cmapss: Path | None) -> Path:
    """A small RUL model trained on the simulator (or on C-MAPSS FD001), cached under the
    data dir."""
    from models.errors import ArtifactError
    from models.rul.artifact import METADATA, load_artifact, save_artifact
    from models.rul.data import read_cmapss, simulated_runs
    from models.rul.train import TrainConfig, train_rul

    out = settings.data_dir / ("demo-model-fd001" if cmapss else "demo-model")
    if (out / METADATA).exists():
        try:
            load_artifact(out)
            console.print(f"RUL model: cached {out}")
            return out
        except ArtifactError as exc:
            console.print(f"RUL model: not using the cached one ({exc})")
    source = "C-MAPSS FD001 training engines" if cmapss else "simulated run-to-failure data"
    console.print(f"RUL model: training a small LSTM on {source} …")
    config = TrainConfig(
        epochs=8 if cmapss else 6, hidden=32, layers=1, folds=1, device="cpu", seed=0
    )
    if cmapss:
        runs = read_cmapss(cmapss / "train_FD001.txt")
    else:
        runs = simulated_runs(assets=16, lives=2, seed=1)
    result = train_rul(runs, config, progress=True, data_source=f"demo {source}")
    save_artifact(out, result.model, result.metadata)
    return out


def local_influx(settings: Settings, workdir: Path, skip: bool) -> EmbeddedInfluxDB | None:
    """A throwaway InfluxDB 1.x when none is configured and ``influxd`` is installed."""
    if skip or settings.influx_url or shutil.which("influxd") is None:
        return None
    (workdir / "influxdb").mkdir()
    return EmbeddedInfluxDB(workdir / "influxdb")


def _start_worker(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    try:
        worker = start_worker(env, workdir, ready_timeout=120, data_dir=workdir)
    except RuntimeError:
        raise PmaintError(f"the worker did not get ready; see its log in {workdir}") from None
    return worker.proc, worker.port


def summary(
    console: Console,
    final: Snapshot,
    elapsed: float,
    truth: Truth,
    alerts: list[AlertEvent],
    quantile: float,
) -> None:
    failures, false_alarms = judge(truth, alerts)
    console.print(view(final, final.ok / elapsed, elapsed, elapsed))
    console.print(
        f"[bold]summary[/]: {final.ok:,.0f} records from {len(final.assets)} assets in "
        f"{elapsed:.0f} s ({final.ok / elapsed:,.0f} records/s), {final.dead:,.0f} dead letters; "
        f"alerts opened: {sum(final.alerts.values()):.0f} "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(final.alerts.items())) or 'none'})."
    )
    if truth.episodes:
        console.print("injected faults: " + "; ".join(fault_lines(truth, alerts)))
    flagged = [f.flagged_by for f in failures if f.flagged_by is not None]
    first = ", ".join(f"{k} {flagged.count(k)}" for k in sorted(set(flagged)))
    console.print(
        f"failures: {len(failures)}, flagged before failing: {len(flagged)}"
        f"{f' (first by {first})' if first else ''}; "
        f"anomaly alerts away from any injected fault (false alarms): {false_alarms}"
    )
    for asset in sorted({f.asset_id for f in failures}):
        mine = [f for f in failures if f.asset_id == asset]
        leads = [f.lead_s / 60 for f in mine if f.lead_s is not None]
        kinds = sorted({f.flagged_by for f in mine if f.flagged_by is not None})
        missed = len(mine) - len(leads)
        mean = sum(leads) / max(len(leads), 1)
        ahead = (
            f"flagged {min(leads):.0f}–{max(leads):.0f} cycles ahead (mean {mean:.0f}), "
            f"first by {' / '.join(kinds)}"
            if leads
            else ""
        )
        console.print(
            f"  {asset}: {len(mine)} failure(s), last at {to_rfc3339(mine[-1].failed_at)}; "
            f"{ahead}{'; ' if ahead and missed else ''}"
            f"{f'[red]{missed} not flagged[/]' if missed else ''}"
        )
    for line in threshold_lines(final.assets, truth, quantile):
        console.print(line)


def run(args: argparse.Namespace) -> int:
    console = Console()
    settings = load_settings()
    workdir = Path(tempfile.mkdtemp(prefix="pmaint-demo-"))
    model = args.model or demo_model(settings, console, args.cmapss)
    broker = None if args.bootstrap else EmbeddedBroker(workdir / "broker.log")
    bootstrap = args.bootstrap or (broker.bootstrap if broker else "")
    worker: subprocess.Popen[bytes] | None = None
    influx = local_influx(settings, workdir, args.no_influx)
    try:
        settings = load_settings(kafka_bootstrap=bootstrap)
        ensure_topics(settings)
        console.print(f"broker {bootstrap} {'(embedded)' if broker else ''}")
        env = {
            **os.environ,
            "PMAINT_KAFKA_BOOTSTRAP": bootstrap,
            "PMAINT_DATA_DIR": str(workdir),
            "PMAINT_RUL_MODEL": str(model),
            "PMAINT_RUL_REQUIRED": "true",
            "PMAINT_ANOMALY_WARM_UP": os.environ.get("PMAINT_ANOMALY_WARM_UP", "100"),
        }
        if influx is not None:
            env |= {"PMAINT_INFLUX_URL": influx.url, "PMAINT_INFLUX_API": "v1",
                    "PMAINT_INFLUX_DATABASE": "pmaint"}  # fmt: skip
            settings = load_settings(kafka_bootstrap=bootstrap, influx_url=influx.url)
        env.setdefault("PMAINT_GROUP_REBALANCE_TIMEOUT_S", "4")
        worker, port = _start_worker(env, workdir)
        console.print(
            f"worker ready: http://127.0.0.1:{port}/ (fleet page) /assets /metrics /health"
        )
        gateway = Gateway(settings, frame=10, rate=args.rate)
        total = int(args.rate * args.duration)
        if args.cmapss:
            messages, truth = cmapss_feed(args.cmapss, int(time.time() * 1000))
            messages = messages[:total]
        else:
            records = list(fleet(args.assets, total, args.seed).records(total))
            messages, truth = [r.to_message() for r in records], Truth.of(records)
        feeder = threading.Thread(target=gateway.send, args=(messages,), daemon=True)
        started = time.monotonic()
        feeder.start()
        last = snapshot(port)
        history: dict[str, dict[float, dict[str, Any]]] = {}
        with Live(console=console, auto_refresh=False, transient=True) as live:
            while time.monotonic() - started < args.duration:
                time.sleep(1.0)
                snap = snapshot(port)
                rate = (snap.ok - last.ok) / max(snap.at - last.at, 1e-9)
                if not args.no_live:
                    live.update(view(snap, rate, time.monotonic() - started, args.duration))
                    live.refresh()
                snap.merge_into(history)
                last = snap
        feeder.join(timeout=10)
        gateway.close()
        final = drained(port, gateway.sent, DRAIN_S)
        final.merge_into(history)
        elapsed = time.monotonic() - started
        raw: list[bytes | None] = []
        asyncio.run(catch_up(settings, raw.append))
        alerts = [AlertEvent.from_json(v) for v in raw if v]
        summary(console, final, elapsed, truth, alerts, settings.anomaly_quantile)
        engines, rmse, coverage = last_forecasts(final.assets, truth)
        console.print(
            f"RUL at each asset's latest record vs truth: {engines} assets, RMSE {rmse:.1f} "
            f"cycles, P10–P90 coverage {coverage:.2f}"
        )
        png = plot(history, truth, workdir / "demo.png")
        where = (
            f"InfluxDB {influx.url} database pmaint (stopped with the demo)"
            if influx
            else redact_url(settings.influx_url)
            if settings.influx_url
            else "nowhere (set PMAINT_INFLUX_URL, or install influxd)"
        )
        console.print(f"alert events: Kafka topic {settings.topic_alerts}; points: {where}")
        console.print(f"plots: {png}; logs: {workdir}")
        return 0
    except urllib.error.URLError as exc:
        raise PmaintError(f"worker stopped answering: {exc.reason}") from None
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(20)
        if broker is not None:
            broker.stop()
        if influx is not None:
            influx.stop()
