"""A bare Kafka relay: the two hops of a reading's way to its alert, with no work between.

A reading reaches its alert over two Kafka hops: the gateway's produce to the worker's fetch,
then the worker's produce of the alert event to the reader's fetch. This process does only the
hops: it reads ``source`` (every partition, from the start, fetching as the worker does) and sends
each message on to ``target`` at once (acks from all replicas, no linger: the worker's alert
producer). :mod:`benchmarks.latency` times its probes through it, the baseline of what the
pipeline adds beyond the transport.

Usage: ``python -m benchmarks.relay BOOTSTRAP SOURCE TARGET FETCH_MAX_WAIT_MS`` (runs until
it is terminated).
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, source: str, target: str, fetch_max_wait_ms: int) -> None:
    """Send every message of ``source`` on to ``target``, as it comes, until cancelled."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=fetch_max_wait_ms)
            for messages in batches.values():
                for m in messages:
                    await producer.send(target, m.value)  # (its ack is not waited for)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 4 or not argv[3].isdigit():
        print("usage: python -m benchmarks.relay BOOTSTRAP SOURCE TARGET FETCH_MAX_WAIT_MS")
        return 2
    bootstrap, source, target, wait = argv
    asyncio.run(relay(bootstrap, source, target, int(wait)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
