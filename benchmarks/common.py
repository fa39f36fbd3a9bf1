"""Shared pieces of the benchmarks: one JSON line per figure, a broker, a timed consumer, and the
CPU each process used."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import faust
from kafka import KafkaProducer

from models.simulator import FleetSimulator


def emit(name: str, value: float, unit: str, baseline: float, **extra: Any) -> dict[str, Any]:
    """Print and return one result line; ``ratio`` is value / baseline."""
    line = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": round(baseline, 3),
        "ratio": round(value / baseline, 3) if baseline else None,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        **extra,
    }
    print(json.dumps(line), flush=True)
    return line


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """How many cores each named process used over a span (its CPU seconds / the wall
    seconds), so a line can say what shared the machine's cores while it was measured.

    ``/proc`` counts CPU time in clock ticks (10 ms), so a span should be long against them:

    >>> share = CpuShare({"me": os.getpid()})
    >>> share.start()
    >>> until = time.monotonic() + 0.3
    >>> while time.monotonic() < until:  # one core busy for 0.3 s
    ...     pass
    >>> used = share.stop()
    >>> list(used), 0 < used["me"] <= os.cpu_count() + 0.1  # (two ticks over 0.3 s: 0.07)
    (['me'], True)
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._began = 0.0
        self._cpu: dict[str, float] = {}

    def start(self) -> None:
        self._began = time.monotonic()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        """Cores used by each process since :meth:`start`."""
        wall = max(time.monotonic() - self._began, 1e-9)
        return {
            name: round((cpu_seconds(pid) - self._cpu[name]) / wall, 2)
            for name, pid in self.pids.items()
        }


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce_frames(bootstrap: str, topic: str, records: int, frame: int, assets: int) -> None:
    """Simulated telemetry onto ``topic``, ``frame`` records per message, keyed per partition."""
    import orjson

    from streams.core.routing import partition_for

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1
    )
    partitions = len(producer.partitions_for(topic) or [1])
    now_ms = int(time.time() * 1000)
    sim = FleetSimulator(assets=assets, seed=1, start_ms=now_ms - records * 1000)
    by_partition: dict[int, list[dict[str, object]]] = {}
    for rec in sim.records(records):
        part = partition_for(rec.asset_id, partitions)
        buf = by_partition.setdefault(part, [])
        buf.append(rec.to_message())
        if len(buf) >= frame:
            value = orjson.dumps(buf[0] if frame == 1 else {"records": buf})
            producer.send(topic, key=rec.asset_id.encode(), value=value, partition=part)
            by_partition[part] = []
    for part, buf in by_partition.items():
        if buf:
            producer.send(topic, value=orjson.dumps({"records": buf}), partition=part)
    producer.flush()
    producer.close()


async def run_until(app: faust.App, done: Callable[[], bool], timeout: float = 300) -> None:
    """Start a faust app in this loop, wait until ``done()``, stop it."""
    logging.getLogger().setLevel(logging.WARNING)
    await app.start()
    try:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark did not finish")
            await asyncio.sleep(0.01)
    finally:
        await app.stop()


class Clock:
    """First-to-last processing time of ``total`` units."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def tick(self, n: int = 1) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += n
        if self.count >= self.total:
            self.last = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.count >= self.total

    def rate(self) -> float:
        return self.total / max(self.last - self.first, 1e-9)
