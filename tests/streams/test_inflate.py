"""Bounded inflation of gzip'd record batches, through aiokafka's own record classes."""

from __future__ import annotations

import gzip

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record import default_records
from aiokafka.record._crecords import default_records as c_records
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams import inflate

GZIP = 1


def batch(values: list[bytes], base_offset: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=GZIP, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 30,
    )  # fmt: skip
    for i, value in enumerate(values):
        builder.append(i, timestamp=1000 + i, key=None, value=value, headers=[])
    raw = bytearray(builder.build())
    raw[:8] = base_offset.to_bytes(8, "big")  # the broker assigns offsets (the CRC skips them)
    return bytes(raw)


def read(buf: bytes, offset: int = 0) -> list[object]:
    records = MemoryRecords(buf)
    tp = TopicPartition("t", 0)
    return list(fetcher.PartitionRecords(tp, records, [], offset, None, None, True, 0))


@pytest.fixture
def limit_1_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (default_records, c_records):
        monkeypatch.setattr(module, "gzip_decode", module.gzip_decode)
    monkeypatch.setattr(fetcher.PartitionRecords, "__init__", fetcher.PartitionRecords.__init__)
    inflate.install(1 << 20)


def test_a_batch_over_the_limit_becomes_placeholders(limit_1_mib: None) -> None:
    good = batch([b"a" * 100, b"b"])
    bomb = batch([b"x" * 50_000_000, b"y", b"z"], base_offset=2)
    assert len(bomb) < 100_000
    got = [(r.offset, r.value, r.headers) for r in read(good + bomb)]  # type: ignore[attr-defined]
    mark = ((inflate.INFLATE_HEADER, b"1048576"),)
    assert got == [
        (0, b"a" * 100, ()),
        (1, b"b", ()),
        (2, b"", mark),
        (3, b"", mark),
        (4, b"", mark),
    ]


def test_batches_under_the_limit_are_untouched(limit_1_mib: None) -> None:
    values = [bytes([65 + i % 26]) * (10_000 + i) for i in range(90)]  # ~0.9 MiB inflated
    assert [r.value for r in read(batch(values))] == values  # type: ignore[attr-defined]


def test_bounded_gzip_reads_every_member_and_refuses_truncation() -> None:
    two = gzip.compress(b"x" * 600) + gzip.compress(b"y" * 400)
    assert inflate.bounded_gzip_decode(two, 1000) == b"x" * 600 + b"y" * 400
    with pytest.raises(inflate.InflateLimitExceeded):
        inflate.bounded_gzip_decode(two, 999)
    with pytest.raises(Exception, match="truncated"):
        inflate.bounded_gzip_decode(two[:-30], 10_000)
