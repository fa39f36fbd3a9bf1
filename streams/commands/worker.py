"""``pmaint worker``: run the faust worker."""

from __future__ import annotations

import argparse
import logging

from streams.kafka_clients import ensure_topics
from streams.settings import load_settings

EXAMPLES = """examples:
  pmaint worker
  PMAINT_KAFKA_BOOTSTRAP=kafka-1:9092 pmaint worker --web-port 6067
Add workers (each with its own --web-port) to share the telemetry partitions."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, help="HTTP port for /health, /ready, /metrics")
    parser.add_argument("--data-dir", help="directory for local table state")


def run(args: argparse.Namespace) -> int:
    import faust  # heavy (faust, torch, river): only when a worker really starts

    from streams.app import create_app

    settings = load_settings(web_port=args.web_port, data_dir=args.data_dir)
    partitions = ensure_topics(settings)[settings.topic_telemetry]
    app, _ = create_app(settings, partitions)
    logging.getLogger("pmaint").setLevel(settings.log_level.upper())
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
