"""The gateway producer: simulated or replayed telemetry onto Kafka with kafka-python.

Records are keyed by ``asset_id``. With ``frame > 1`` records are grouped per partition into
frames ``{"records": [...]}`` sent to that partition, so every asset stays in one partition.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.record import util as record_util

from models.datafiles import read_bytes, read_text, resolve, suffix
from models.errors import DataError, PmaintError
from models.simulator import EPOCH_MS, SENSORS, SETTINGS, FleetSimulator
from streams.core.routing import partition_for
from streams.kafka_clients import check_connection, security_kwargs
from streams.settings import Settings

Record = dict[str, Any]

log = logging.getLogger(__name__)


def compiled_checksums() -> bool:
    """Whether kafka-python checksums record batches (CRC-32C) with the compiled ``crc32c``
    package (a dependency); if not, say so in the log. Its pure-Python fallback runs at ~9 MB/s:
    most of the gateway's CPU, and about a tenth of its rate in frames of 100."""
    if record_util.crc32c_c is not None:
        return True
    log.warning(
        "kafka-python checksums in pure Python (the crc32c package is missing): the gateway "
        "sends several times slower; pip install crc32c"
    )
    return False


def read_cmapss(path: Path, interval_s: float = 60.0, start_ms: int = EPOCH_MS) -> list[Record]:
    """C-MAPSS text rows as records, engines interleaved cycle by cycle (asset ``unit-N``)."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split()
        if len(cols) != 26:
            raise DataError(f"{path}:{number}: expected 26 columns, found {len(cols)}")
        try:
            unit, cycle = int(cols[0]), int(cols[1])
            values = [float(c) for c in cols[2:]]
        except ValueError:
            raise DataError(f"{path}:{number}: not a number") from None
        rows.append({
            "asset_id": f"unit-{unit:03d}",
            "ts": start_ms + round(cycle * interval_s * 1000),
            "cycle": cycle,
            "settings": dict(zip(SETTINGS, values[:3], strict=True)),
            "sensors": dict(zip(SENSORS, values[3:], strict=True)),
        })  # fmt: skip
    rows.sort(key=lambda r: (r["cycle"], r["asset_id"]))
    return rows


def read_csv(path: Path) -> list[Record]:
    """CSV with ``asset_id``, ``ts`` and numeric columns (``setting*`` columns are settings,
    an optional ``cycle`` column the records' cycle)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not reader.fieldnames or not {"asset_id", "ts"} <= set(reader.fieldnames):
        raise DataError(f"{path}: CSV needs the columns asset_id and ts")
    out = []
    for number, row in enumerate(reader, 2):
        try:
            numbers = {k: float(v) for k, v in row.items() if k not in ("asset_id", "ts") and v}
        except ValueError:
            raise DataError(f"{path}:{number}: not a number") from None
        ts: Any = int(row["ts"]) if row["ts"].isdigit() else row["ts"]
        record: Record = {
            "asset_id": row["asset_id"],
            "ts": ts,
            "sensors": {
                k: v for k, v in numbers.items() if not k.startswith("setting") and k != "cycle"
            },
            "settings": {k: v for k, v in numbers.items() if k.startswith("setting")} or None,
        }
        if "cycle" in numbers:
            if numbers["cycle"] != int(numbers["cycle"]):
                raise DataError(f"{path}:{number}: cycle must be an integer")
            record["cycle"] = int(numbers["cycle"])
        out.append(record)
    return out


def read_jsonl(path: Path) -> list[Record]:
    """One JSON record per line."""
    out = []
    for number, line in enumerate(read_bytes(path).splitlines(), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise DataError(f"{path}:{number}: invalid JSON") from None
    return out


def read_replay(path: Path) -> list[Record]:
    """Records from a replay file, format by suffix: ``.txt`` C-MAPSS, ``.csv``, ``.jsonl``."""
    if not resolve(path).is_file():
        raise DataError(f"{path}: no such file")
    readers = {".txt": read_cmapss, ".csv": read_csv, ".jsonl": read_jsonl, ".json": read_jsonl}
    reader = readers.get(suffix(path))
    if reader is None:
        raise DataError(f"{path}: unknown format (use .txt C-MAPSS, .csv or .jsonl)")
    return reader(path)


def frames(
    records: Iterable[Record], frame: int, partitions: int
) -> Iterator[tuple[int, list[Record]]]:
    """``records`` grouped per partition (:func:`~streams.core.routing.partition_for` of the asset),
    ``frame`` at a time as they come, then what is left of each partition.

    >>> rows = [{"asset_id": a} for a in ("a", "b", "a", "a")]
    >>> [(p, len(f)) for p, f in frames(rows, 2, 1)]
    [(0, 2), (0, 2)]
    """
    buffers: dict[int, list[Record]] = {}
    for record in records:
        partition = partition_for(str(record.get("asset_id", "")), partitions)
        buffer = buffers.setdefault(partition, [])
        buffer.append(record)
        if len(buffer) >= frame:
            yield partition, buffer
            buffers[partition] = []
    for partition, buffer in buffers.items():
        if buffer:
            yield partition, buffer


class Gateway:
    """A kafka-python producer of telemetry, framed per partition, paced to a rate."""

    def __init__(self, settings: Settings, frame: int = 1, rate: float = 0.0) -> None:
        check_connection(settings)
        compiled_checksums()
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers(),
                acks="all",
                linger_ms=5,
                batch_size=256 * 1024,
                max_request_size=max(settings.max_message_bytes, 1_048_576),
                **security_kwargs(settings),
            )
        except KafkaError as exc:
            raise PmaintError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None
        self.topic = settings.topic_telemetry
        self.partitions = len(self.producer.partitions_for(self.topic) or []) or settings.partitions
        self.frame = frame
        self.rate = rate
        self.sent = 0

    def send(self, records: Iterable[Record]) -> int:
        """Send every record; returns how many were sent (after the broker acked them all)."""
        paced = self._paced(records)
        if self.frame <= 1:
            for record in paced:
                key = str(record.get("asset_id", "")).encode()
                self.producer.send(self.topic, key=key, value=orjson.dumps(record))
        else:
            for partition, batch in frames(paced, self.frame, self.partitions):
                self._send_frame(partition, batch)
        self.producer.flush()
        return self.sent

    def _paced(self, records: Iterable[Record]) -> Iterator[Record]:
        """``records``, each counted in ``sent`` once handled, at most ``rate`` a second."""
        started = time.monotonic()
        for record in records:
            yield record
            self.sent += 1
            if self.rate > 0:
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _send_frame(self, partition: int, records: list[Record]) -> None:
        key = str(records[0].get("asset_id", "")).encode()
        value = orjson.dumps({"records": records})
        self.producer.send(self.topic, key=key, value=value, partition=partition)

    def close(self) -> None:
        self.producer.close()


def simulated(assets: int, records: int, seed: int, **timing: Any) -> Iterator[Record]:
    """Telemetry messages from :func:`fleet` (same options), as the gateway sends them."""
    for record in fleet(assets, records, seed, **timing).records(records):
        yield record.to_message()


def fleet(
    assets: int,
    records: int,
    seed: int,
    *,
    fault_share: float = 0.3,
    interval_s: float = 60.0,
    end_ms: int | None = None,
) -> FleetSimulator:
    """The gateway's fleet simulator, timed so that ``records`` records end at ``end_ms``."""
    end_ms = round(time.time() * 1000) if end_ms is None else end_ms
    steps = -(-records // assets)
    return FleetSimulator(
        assets=assets,
        seed=seed,
        fault_share=fault_share,
        fault_rate=0.005,
        interval_s=interval_s,
        start_ms=end_ms - round(steps * interval_s * 1000),
    )
