"""Write points through the real sink and read them back from VictoriaMetrics (v2 writes)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from streams.core.line_protocol import Point
from streams.settings import Settings
from streams.sinks.influx import InfluxSink


def write_points(settings: Settings, points: Sequence[Point]) -> None:
    """Write ``points`` with the sink the worker uses, and wait until they are acknowledged."""

    async def go() -> None:
        async with InfluxSink.from_settings(settings, linger_ms=10) as sink:
            await sink.write(list(points))

    asyncio.run(go())


def victoria_export(url: str, selector: str) -> list[dict[str, Any]]:
    """Every series VictoriaMetrics at ``url`` holds for ``selector``, flushed first."""
    urllib.request.urlopen(f"{url}/internal/force_flush").close()
    match = urllib.parse.quote(selector)
    with urllib.request.urlopen(f"{url}/api/v1/export?match[]={match}") as r:
        return [json.loads(line) for line in r.read().splitlines()]
