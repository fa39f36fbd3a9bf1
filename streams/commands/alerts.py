"""``pmaint alerts``: a maintenance team's tail of the alert topic.

Without ``--follow`` it reads every retained alert up to the end offsets seen at start and
exits; with ``--follow`` it joins a consumer group (aiokafka) and prints new alerts until
interrupted. Human-readable lines by default, JSON lines with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from models.errors import ConfigError, DataError, PmaintError
from streams.core.alert_event import KINDS, SEVERITIES, AlertEvent, to_rfc3339
from streams.kafka_clients import check_connection, security_kwargs
from streams.settings import Settings, load_settings

EXAMPLES = """examples:
  pmaint alerts                              # every retained alert, then exit
  pmaint alerts --severity warning --follow  # warnings and criticals as they happen
  pmaint alerts --asset asset-007 --kind rul --json | jq .message
  pmaint alerts --follow --from-beginning --group night-shift"""

_COLOURS = {"info": "\x1b[36m", "warning": "\x1b[33m", "critical": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--severity", choices=SEVERITIES, default="info", help="minimum severity (default: info)"
    )
    parser.add_argument(
        "--asset", action="append", metavar="ID", help="only this asset (repeatable)"
    )
    parser.add_argument(
        "--kind", action="append", choices=KINDS, help="only this kind (repeatable)"
    )
    parser.add_argument("--follow", action="store_true", help="keep printing new alerts")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="with --follow: start at the oldest retained alert (without --follow: always)",
    )
    parser.add_argument(
        "--group", help="with --follow: consumer group, to resume where it left off"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _wanted(event: AlertEvent, args: argparse.Namespace) -> bool:
    return (
        SEVERITIES.index(event.severity) >= SEVERITIES.index(args.severity)
        and (not args.asset or event.asset_id in args.asset)
        and (not args.kind or event.kind in args.kind)
    )


def format_line(event: AlertEvent, colour: bool) -> str:
    """One human line: time, severity, state, asset, kind, message."""
    severity = f"{event.severity.upper():<8}"
    if colour:
        severity = f"{_COLOURS[event.severity]}{severity}{_RESET}"
    return (
        f"{to_rfc3339(event.ts)}  {severity}  {event.state:<8}  {event.asset_id}  "
        f"{event.kind:<12}  {event.message}"
    )


class _Printer:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args, self.out = args, out
        self.colour = not args.json and out.isatty()
        self.skipped = 0

    def __call__(self, value: bytes | None) -> None:
        try:
            event = AlertEvent.from_json(value or b"")
        except DataError:
            self.skipped += 1  # not ours to judge: someone else wrote to the topic
            return
        if _wanted(event, self.args):
            line = event.to_json().decode() if self.args.json else format_line(event, self.colour)
            print(line, file=self.out, flush=self.args.follow)


def _consumer(settings: Settings, group: str | None, **kwargs: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        group_id=group,
        enable_auto_commit=group is not None,
        request_timeout_ms=15_000,
        **kwargs,
        **security_kwargs(settings),
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    if topic not in await consumer.topics():
        raise ConfigError(f"topic {topic} does not exist (a worker creates it)")
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ConfigError(f"topic {topic} does not exist (a worker creates it)")
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def _start(consumer: AIOKafkaConsumer) -> None:
    """Start the consumer; if that fails, close what it opened before raising."""
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise


async def catch_up(settings: Settings, on_value: Callable[[bytes | None], None]) -> None:
    """Hand every event retained on the alert topic to ``on_value``, then return."""
    consumer = _consumer(settings, None)
    await _start(consumer)
    try:
        parts = await _partitions(consumer, settings.topic_alerts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        # caught up = at the end offsets and one more poll brings nothing (some brokers,
        # Tansu 0.6 among them, under-report the end offset after a multi-record batch)
        while True:
            batch = await consumer.getmany(*parts, timeout_ms=300)
            for records in batch.values():
                for record in records:
                    on_value(record.value)
            if not batch:
                end = await consumer.end_offsets(parts)
                positions = [await consumer.position(tp) for tp in parts]
                if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
                    break
    finally:
        await consumer.stop()


async def _follow(settings: Settings, args: argparse.Namespace, printer: _Printer) -> None:
    group = args.group or f"{settings.app_id}.alerts-tail.{uuid.uuid4().hex[:8]}"
    reset = "earliest" if args.from_beginning else "latest"
    consumer = _consumer(settings, group, auto_offset_reset=reset)
    await _start(consumer)
    try:
        await _partitions(consumer, settings.topic_alerts)
        consumer.subscribe([settings.topic_alerts])
        async for record in consumer:
            printer(record.value)
    finally:
        await consumer.stop()


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    check_connection(settings)
    printer = _Printer(args, sys.stdout)
    job = _follow(settings, args, printer) if args.follow else catch_up(settings, printer)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line error says it
    try:
        asyncio.run(job)
    except (KafkaError, OSError) as exc:
        raise PmaintError(
            f"cannot read {settings.topic_alerts} from Kafka at {settings.kafka_bootstrap} "
            f"({type(exc).__name__})"
        ) from None
    except KeyboardInterrupt:
        return 130
    if printer.skipped:
        print(f"skipped {printer.skipped} messages that are not alert events", file=sys.stderr)
    return 0
