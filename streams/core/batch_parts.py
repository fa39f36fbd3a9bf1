"""A batch in the parts a worker takes it in: decoded in chunks of about so many bytes
(:func:`chunks`), each chunk scored in parts of at most so many records (:func:`split`), an
asset's records of the chunk kept together so that the monitor takes them as one run
(:func:`by_asset`).

Pure: no Kafka, no clock; the agent (:mod:`streams.agents`) sizes the parts.
"""

from __future__ import annotations

from collections.abc import Iterator

from streams.core.fleet import AssetState
from streams.core.processor import BatchResult, Inbound
from streams.core.schema import Telemetry


def chunks(batch: list[Inbound], max_bytes: int) -> Iterator[list[Inbound]]:
    """``batch`` in parts of at most ``max_bytes`` (or one message): the assets a part brings
    into memory are evicted before the next part, so a batch of frames of many assets cannot
    take the fleet far past its budget.

    >>> [len(c) for c in chunks([Inbound("t", 0, i, b"x" * 40) for i in range(5)], 100)]
    [2, 2, 1]
    """
    part: list[Inbound] = []
    size = 0
    for message in batch:
        if part and size + len(message.value) > max_bytes:
            yield part
            part, size = [], 0
        part.append(message)
        size += len(message.value)
    if part:
        yield part


def split(result: BatchResult, size: int) -> list[BatchResult]:
    """``result`` in parts of at most ``size`` records, an asset's records together (in their
    order, assets in the order they first appear: :func:`by_asset`), so that the monitor takes
    each asset's records of the chunk as one run; the first part carries the dead letters and
    forwards.

    >>> rec = lambda asset: (Telemetry(asset, 0, {}), None)
    >>> r = BatchResult(records=[rec(a) for a in "abab" + "c"], dead=[("d", None)])  # type: ignore
    >>> [([t.asset_id for t, _ in p.records], len(p.dead)) for p in split(r, 2)]
    [(['a', 'a'], 1), (['b', 'b'], 0), (['c'], 0)]
    """
    records = by_asset(result.records)
    return [BatchResult(records[:size], result.forward, result.dead)] + [
        BatchResult(records[start : start + size]) for start in range(size, len(records), size)
    ]


def by_asset(records: list[tuple[Telemetry, AssetState]]) -> list[tuple[Telemetry, AssetState]]:
    """``records`` with each asset's together, in their order; assets in the order they first
    appear. Only the order across assets changes, which nothing downstream depends on: an
    asset's outputs keep their order, and a batch's offsets are acked after all of its outputs.

    >>> records = [(Telemetry(a, 0, {}), None) for a in "abca"]
    >>> [t.asset_id for t, _ in by_asset(records)]  # type: ignore[arg-type]
    ['a', 'a', 'b', 'c']
    """
    runs: dict[str, list[tuple[Telemetry, AssetState]]] = {}
    for item in records:
        runs.setdefault(item[0].asset_id, []).append(item)
    return [item for run in runs.values() for item in run]
