"""The checkpoint table's store: faust's RocksDB store (rocksdict), on disk instead of in RAM.

faust's RocksDB store files a write under the partition of the event being processed, which a
batch agent (``take_events``) does not have; checkpoints are keyed by asset id and placed by the
producer's partitioner, so this store files each key under that partition itself. Used as
``store=STORE_URL`` on the table.
"""

from __future__ import annotations

from faust.stores import STORES
from faust.stores.rocksdb import Store

from streams.routing import partition_for

STORE_SCHEME = "pmaint-rocksdb"
STORE_URL = f"{STORE_SCHEME}:checkpoints"  # the path names the DB dirs; a URL without one is
# falsy, and faust would silently fall back to the app's store


class CheckpointStore(Store):
    """faust's RocksDB store with writes placed by key (asset id), not by the current event."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = partition_for(key.decode(), self.table.partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)


STORES.aliases.setdefault(STORE_SCHEME, f"{__name__}:CheckpointStore")
