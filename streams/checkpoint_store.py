"""The checkpoint table's store: faust's RocksDB store (rocksdict), on disk instead of in RAM.

faust's RocksDB store files a write under the partition of the event being processed, which a
batch agent (``take_events``) does not have; checkpoints are keyed by asset id and placed by the
producer's partitioner, so this store files each key under that partition itself. Used as
``store=STORE_URL`` on the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store
from faust.types import EventT

from streams.core.routing import partition_for

STORE_SCHEME = "pmaint-rocksdb"
STORE_URL = f"{STORE_SCHEME}:checkpoints"  # the path names the DB dirs; a URL without one is
# falsy, and faust would silently fall back to the app's store


class CheckpointStore(Store):
    """faust's RocksDB store with writes placed by key (asset id), not by the current event;
    the keys it takes from the changelog for this worker's partitions (recovery) are kept in
    :attr:`recovered` until taken, so the worker learns of every asset its partitions hold."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recovered: dict[str, None] = {}  # asset ids, in order (an ordered set)

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = partition_for(key.decode(), self.table.partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        topic = self.table.changelog_topic.get_topic_name()
        actives = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        for event in events:  # a standby's partitions are another worker's
            message = event.message
            if message.key and message.value is not None and message.partition in actives:
                self.recovered[bytes(message.key).decode()] = None

    def take_recovered(self) -> list[str]:
        """The asset ids recovered since the last call."""
        taken, self.recovered = list(self.recovered), {}
        return taken


STORES.aliases.setdefault(STORE_SCHEME, f"{__name__}:CheckpointStore")
