"""Which partition an asset belongs to: Kafka's default (murmur2) partitioner on ``asset_id``.

Producers key messages by ``asset_id``; the worker uses the same function to keep each asset in
one partition even when a gateway frame mixes assets.
"""

from __future__ import annotations

from functools import lru_cache

from kafka.partitioner.default import murmur2


@lru_cache(maxsize=200_000)
def partition_for(asset_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for key ``asset_id``.

    >>> partition_for("asset-007", 4)
    3
    """
    return int((murmur2(asset_id.encode()) & 0x7FFFFFFF) % partitions)
