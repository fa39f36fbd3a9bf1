"""The worker's model stage alone, in process: what a record costs in the pipeline's models,
against what it costs to decode.

Simulator records of ``ASSETS`` (200) assets, as a gateway sends them (frames of 100, JSON), are
decoded and validated (:func:`streams.core.schema.decode`), then fed to
:meth:`streams.core.pipeline.ModelPipeline.observe_run` the way the agent feeds a part: each asset's
records of the part as one run. ``WARM`` records an asset are fed first (every detector past its
warm-up), then the measured records, at asset ages ``WARM`` to ``WARM + MEASURED``:

* ``model_stage_run3``: parts of three records an asset (what a part of the throughput benchmarks
  holds), records/s of process time;
* ``model_stage_run1``: parts of one record an asset (a lightly loaded worker's), the next
  ``MEASURED`` records an asset.

Baseline: decoding and validating the measured records' frames, records/s of process time in
the same run (the ingest stage's own work). The worker's throughput target, ``full_frame100``
at least half of ``ingest_frame100``, needs a ratio above 0.5 here (the rest of the worker's
path comes on top). No broker, no sinks: the figures move with the model code alone, not with
the broker's load or the host's network.

``--quick`` runs a fifth of each size. ``--detectors spike,deviation`` scores with those
detectors only (a policy rule's ``detectors``; default: all), to size a worker for lighter
settings; the line says which.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator, Sequence

import orjson

from benchmarks.common import emit
from models.errors import ConfigError
from models.monitor_config import DETECTORS, MonitorConfig
from models.simulator import FleetSimulator
from streams import gateway
from streams.core.fleet import AssetState
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig, asset_runs
from streams.core.schema import Limits, Telemetry, decode

ASSETS = 200
WARM = 400  # records an asset before the measured ones
MEASURED = 300  # records an asset measured, in each of the two lines
FRAME = 100


def frames(records: int, now_ms: int) -> Iterator[bytes]:
    """The simulator's first ``records`` records as JSON frames of ``FRAME``, in order."""
    sim = FleetSimulator(assets=ASSETS, seed=1, start_ms=now_ms - records * 1000)
    messages = (rec.to_message() for rec in sim.records(records))
    for _, frame in gateway.frames(messages, FRAME, partitions=1):
        yield orjson.dumps({"records": frame})


def decoded(raw: Sequence[bytes], now_ms: int) -> tuple[list[Telemetry], float]:
    """The records of ``raw`` and the process seconds their decoding took."""
    limits, records = Limits(), []
    started = time.process_time()
    for value in raw:
        result = decode(value, limits, now_ms)
        if result.dead:
            raise RuntimeError(f"a simulator record was refused: {result.dead[0].reason}")
        records.extend(result.records)
    return records, time.process_time() - started


class Feeder:
    """One worker's model state, fed parts of records as the agent feeds them."""

    def __init__(self, monitor: MonitorConfig) -> None:
        self.pipeline = ModelPipeline(PipelineConfig(monitor=monitor))
        self.states: dict[str, AssetState] = {}

    def feed(self, records: Sequence[Telemetry], run: int) -> float:
        """Feed ``records`` in parts of ``run`` records an asset; the process seconds taken."""
        part = ASSETS * run
        started = time.process_time()
        for at in range(0, len(records), part):
            self._part(records[at : at + part])
        return time.process_time() - started

    def _part(self, part: Sequence[Telemetry]) -> None:
        out, located = Outputs(), []
        for record in part:
            state = self.states.get(record.asset_id)
            if state is None:
                state = self.states[record.asset_id] = AssetState(record.asset_id, 0, record.ts_ms)
            state.observe(record)
            located.append((record, state))
        for state, run in asset_runs(located):
            self.pipeline.observe_run(state, run, out)


def monitor_settings(detectors: str) -> MonitorConfig:
    """The monitor's settings for ``--detectors`` (comma-separated names; empty: none alarms).

    >>> monitor_settings("spike,deviation").detectors
    ('spike', 'deviation')
    >>> monitor_settings("spike,bogus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    models.errors.ConfigError: unknown detectors ['bogus']; known: spike, ...
    """
    return MonitorConfig(detectors=tuple(filter(None, detectors.split(","))))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fifth of each size")
    parser.add_argument(
        "--detectors", default=",".join(DETECTORS), help="comma-separated; default: all"
    )
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks` passes its args to all
    try:
        monitor = monitor_settings(args.detectors)
    except ConfigError as exc:
        parser.error(str(exc))
    scale = 5 if args.quick else 1
    warm, measured = WARM // scale * ASSETS, MEASURED // scale * ASSETS
    now_ms = int(time.time() * 1000)
    raw = list(frames(warm + 2 * measured, now_ms))
    records, _ = decoded(raw[: warm // FRAME], now_ms)
    later, decode_s = decoded(raw[warm // FRAME :], now_ms)
    ingest_rate = len(later) / decode_s
    feeder = Feeder(monitor)
    named = ",".join(monitor.detectors) or "none"
    detectors = "all" if set(monitor.detectors) == set(DETECTORS) else named
    feeder.feed(records, 3)
    for name, run, part, age in (
        ("model_stage_run3", 3, later[:measured], warm // ASSETS),
        ("model_stage_run1", 1, later[measured:], (warm + measured) // ASSETS),
    ):
        seconds = feeder.feed(part, run)
        emit(
            name, len(part) / seconds, "records/s", ingest_rate,
            baseline_name="decode+validate of the same frames, in process",
            us_per_record=round(seconds / len(part) * 1e6, 1),
            stage="ModelPipeline.observe_run, no broker, no sinks",
            detectors=detectors, assets=ASSETS, records_per_run=run,
            asset_ages=f"{age}-{age + measured // ASSETS}",
            records=len(part), load1=round(os.getloadavg()[0], 2), cores=os.cpu_count(),
        )  # fmt: skip


if __name__ == "__main__":
    main()
