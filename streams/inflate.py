"""Bound what a compressed Kafka record batch may inflate to, while it inflates.

The worker never decompresses telemetry itself: a producer's ``compression_type="gzip"`` is
undone inside aiokafka's record batch decoding, before any size check of ours, and a 100 kB batch
can inflate to 100 MB. :func:`install` puts a bounded gzip decoder in aiokafka's v2 record batch
module (stdlib ``zlib`` with ``max_length``: it stops at the limit instead of allocating it all),
and makes aiokafka's partition reader turn a batch over the limit into one placeholder record per
offset (empty value, header ``pmaint.inflate_limit``), which the worker dead-letters as
``too_large``: the partition moves on and nothing is silently skipped.

What stays unbounded: snappy, lz4 and zstd need ``cramjam``, which is not installed, so aiokafka
refuses those batches anyway; and batches in the pre-0.11 message formats (v0/v1), which no
current broker writes. Compressed bytes per fetch are bounded by the consumer's fetch size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from functools import partial
from typing import Any

INFLATE_HEADER = "pmaint.inflate_limit"


class InflateLimitExceeded(Exception):  # noqa: N818 (internal signal, caught in this module)
    """A compressed batch inflates past the limit."""


def bounded_gzip_decode(payload: Any, limit: int) -> bytes:
    """Inflate gzip ``payload`` (any number of members), raising :class:`InflateLimitExceeded`
    as soon as the output would pass ``limit`` bytes.

    >>> import gzip
    >>> bounded_gzip_decode(gzip.compress(b"ab") + gzip.compress(b"c"), 10)
    b'abc'
    >>> bounded_gzip_decode(gzip.compress(b"x" * 10_000_000), 1000)
    Traceback (most recent call last):
    ...
    streams.inflate.InflateLimitExceeded: inflates past 1000 bytes
    """
    out = bytearray()
    data = bytes(payload)
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = inflater.decompress(data, limit + 1 - len(out))
        out += chunk
        if len(out) > limit or inflater.unconsumed_tail:
            raise InflateLimitExceeded(f"inflates past {limit} bytes")
        if not inflater.eof:
            raise zlib.error("truncated gzip payload")
        data = inflater.unused_data
    return bytes(out)


class _GuardedBatch:
    """A record batch whose records, if it inflates past the limit, are placeholders."""

    def __init__(self, batch: Any, limit: int, record_type: Any) -> None:
        self._batch, self._limit, self._record_type = batch, limit, record_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        try:
            records = iter(self._batch)
            first = next(records)
        except StopIteration:
            return
        except InflateLimitExceeded:
            batch, header = self._batch, [(INFLATE_HEADER, str(self._limit).encode())]
            for offset in range(batch.base_offset, batch.next_offset):
                yield self._record_type(
                    offset, batch.max_timestamp, batch.timestamp_type, None, b"", header
                )
            return
        yield first
        while (record := next(records, None)) is not None:  # not ``yield from``: the batch is
            yield record  # its own iterator, and iterating it twice fails an assertion


class _GuardedRecords:
    def __init__(self, records: Any, limit: int, record_type: Any) -> None:
        self._records, self._limit, self._record_type = records, limit, record_type

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        if getattr(batch, "magic", 0) < 2:
            return batch  # v0/v1 formats are left as they are
        return _GuardedBatch(batch, self._limit, self._record_type)


def install(limit: int) -> None:
    """Bound gzip inflation of consumed record batches to ``limit`` bytes (process-wide)."""
    from aiokafka.consumer import fetcher
    from aiokafka.record import default_records

    decode = partial(bounded_gzip_decode, limit=limit)
    modules = [default_records]
    try:
        from aiokafka.record._crecords import default_records as c_records

        modules.append(c_records)
    except ImportError:  # aiokafka built without its C extensions
        pass
    for module in modules:
        module.gzip_decode = decode
    record_type = default_records.DefaultRecord
    reader = fetcher.PartitionRecords
    original = getattr(reader, "_pmaint_init", reader.__init__)

    def guarded_init(self: Any, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        original(self, tp, _GuardedRecords(records, limit, record_type), *args, **kwargs)

    reader._pmaint_init = original
    reader.__init__ = guarded_init
