"""Turn a batch of consumed telemetry messages into per-asset updates and outputs.

Synchronous and free of Kafka IO, so it is tested without a broker; ``agents.py`` feeds it
messages and sends what it returns.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from streams.core.fleet import AssetState, Fleet
from streams.core.metrics import Metrics
from streams.core.routing import partition_for
from streams.core.schema import DeadLetter, Decoded, Limits, Telemetry, decode


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed Kafka message."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: float | None = None  # Kafka message timestamp, seconds
    inflated_too_far: bool = False  # a placeholder for a record of a batch past the inflate limit


@dataclass(slots=True)
class BatchResult:
    """What a batch produced: records kept here, records to forward, dead letters."""

    records: list[tuple[Telemetry, AssetState]] = field(default_factory=list)
    forward: dict[int, list[Telemetry]] = field(default_factory=dict)
    dead: list[tuple[DeadLetter, Inbound]] = field(default_factory=list)


def record_to_message(record: Telemetry) -> dict[str, object]:
    """A validated record back in its wire shape."""
    out: dict[str, object] = {"asset_id": record.asset_id, "ts": record.ts_ms}
    out["sensors"] = record.sensors
    for key in ("cycle", "settings", "site", "line", "type", "life"):
        value = getattr(record, key)
        if value is not None:
            out[key] = value
    return out


Encoded = tuple[Telemetry, bytes]  # a record and its JSON


def join_frame(frame: Sequence[Encoded]) -> bytes:
    """One frame message of records already encoded as JSON."""
    return b'{"records":[' + b",".join(encoded for _, encoded in frame) + b"]}"


_FRAME_OVERHEAD = len(join_frame([]))


def forward_frames(
    records: Sequence[Telemetry], limits: Limits
) -> tuple[list[list[Encoded]], list[Encoded]]:
    """Pack records (encoded one by one) into frames the worker itself accepts: at most
    ``limits.max_records`` records and ``limits.max_bytes`` bytes each. A record that fits no
    frame on its own comes back apart, for the dead-letter queue.

    >>> r = Telemetry("a", 1767225600000, {"s1": 1.0})
    >>> frames, alone = forward_frames([r] * 5, Limits(max_bytes=1024, max_records=2))
    >>> [len(f) for f in frames], alone
    ([2, 2, 1], [])
    >>> frames, alone = forward_frames([r] * 40, Limits(max_bytes=200))
    >>> [len(f) for f in frames], max(len(join_frame(f)) for f in frames) <= 200
    ([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1], True)
    """
    frames: list[list[Encoded]] = []
    alone: list[Encoded] = []
    current: list[Encoded] = []
    size = _FRAME_OVERHEAD
    for record in records:
        encoded = orjson.dumps(record_to_message(record))
        if _FRAME_OVERHEAD + len(encoded) > limits.max_bytes:
            alone.append((record, encoded))
            continue
        grown = size + len(encoded) + (1 if current else 0)
        if current and (grown > limits.max_bytes or len(current) >= limits.max_records):
            frames.append(current)
            current, grown = [], _FRAME_OVERHEAD + len(encoded)
        current.append((record, encoded))
        size = grown
    if current:
        frames.append(current)
    return frames, alone


TOO_MANY_SENSORS = "too_many_sensors_for_asset"  # past PMAINT_MAX_SENSORS_PER_ASSET names
DLQ_MAX_PAYLOAD = 65_536  # larger payloads are cut, with their size and sha256 in headers


def dead_letter_message(
    dead: DeadLetter, source: Inbound, now: float
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The dead letter's Kafka value and the headers that say why and where from it came.

    A payload over ``DLQ_MAX_PAYLOAD`` bytes (an oversize message) is cut to that size, so the
    dead letter itself always fits the producer's request limit.

    >>> value, headers = dead_letter_message(
    ...     DeadLetter("too_large", b"x" * 70_000), Inbound("t", 0, 5, b""), 1.0)
    >>> len(value), dict(headers)["pmaint.original_bytes"]
    (65536, b'70000')
    """
    headers = [
        ("pmaint.reason", dead.reason.encode()),
        ("pmaint.source.topic", source.topic.encode()),
        ("pmaint.source.partition", str(source.partition).encode()),
        ("pmaint.source.offset", str(source.offset).encode()),
        ("pmaint.dead_at_ms", str(round(now * 1000)).encode()),
    ]
    if dead.frame_index is not None:
        headers.append(("pmaint.frame_index", str(dead.frame_index).encode()))
    value = dead.payload
    if len(value) > DLQ_MAX_PAYLOAD:
        headers += [
            ("pmaint.truncated", b"true"),
            ("pmaint.original_bytes", str(len(value)).encode()),
            ("pmaint.sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
        value = value[:DLQ_MAX_PAYLOAD]
    return value, headers


class TelemetryProcessor:
    """Decode, validate and route messages; update the fleet with the records it owns."""

    def __init__(
        self,
        limits: Limits,
        partitions: int,
        fleet: Fleet,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.partitions = partitions
        self.fleet = fleet
        self.metrics = metrics
        self.clock = clock

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        now = self.clock()
        now_ms = round(now * 1000)
        out = BatchResult()
        for message in batch:
            decoded = (
                Decoded(dead=[DeadLetter("too_large", message.value)])
                if message.inflated_too_far
                else decode(message.value, self.limits, now_ms)
            )
            for dead in decoded.dead:
                out.dead.append((dead, message))
                self.metrics.dead_letters.labels(dead.reason.split(":")[0]).inc()
            for record in decoded.records:
                home = partition_for(record.asset_id, self.partitions)
                if home == message.partition:
                    state = self.fleet.observe(record, home)
                    if state is not None:
                        out.records.append((record, state))
                    else:  # the whole record, so a replay after raising the cap repeats it
                        payload = orjson.dumps(record_to_message(record))
                        dead = DeadLetter(TOO_MANY_SENSORS, payload, record.asset_id)
                        out.dead.append((dead, message))
                        self.metrics.dead_letters.labels(TOO_MANY_SENSORS).inc()
                else:
                    out.forward.setdefault(home, []).append(record)
            if message.timestamp is not None:
                self.metrics.event_lag.observe(max(0.0, now - message.timestamp))
        self.metrics.messages.inc(len(batch))
        self.metrics.assets.set(len(self.fleet))
        return out

    def count(self, result: BatchResult) -> None:
        """Count a batch's records once its outputs are acknowledged."""
        self.metrics.records.labels("ok").inc(len(result.records))
        self.metrics.records.labels("dead_letter").inc(len(result.dead))
        self.metrics.rerouted.inc(sum(len(v) for v in result.forward.values()))
