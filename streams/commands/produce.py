"""``pmaint produce``: the gateway producer (simulator or file replay)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.errors import ConfigError
from streams.gateway import Gateway, read_replay, simulated
from streams.kafka_clients import ensure_topics
from streams.settings import load_settings

EXAMPLES = """examples:
  pmaint produce --simulate --assets 20 --records 100000 --frame 100
  pmaint produce --simulate --assets 5 --records 2000 --rate 200 --seed 7
  pmaint produce --replay test_FD001.txt --frame 100       # C-MAPSS text
  pmaint produce --replay plant.csv                        # asset_id,ts,<sensors...>
  pmaint produce --replay plant.jsonl                      # one record per line"""


def _positive(kind: type[int] | type[float]) -> type:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--simulate", action="store_true", help="a simulated fleet")
    source.add_argument("--replay", type=Path, metavar="FILE", help="C-MAPSS .txt, .csv, .jsonl")
    parser.add_argument("--assets", type=_positive(int), default=10, help="simulated assets")
    parser.add_argument("--records", type=_positive(int), default=10_000, help="records to send")
    parser.add_argument("--frame", type=_positive(int), default=1, help="records per message")
    parser.add_argument("--rate", type=_positive(float), default=0.0, help="records/s (0: max)")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    parser.add_argument(
        "--faults", type=float, default=0.3, help="share of simulated assets with faults"
    )


def run(args: argparse.Namespace) -> int:
    if args.simulate and args.assets < 1:
        raise ConfigError("--assets must be at least 1")
    settings = load_settings()
    if args.replay:  # a missing or malformed file is reported before any broker is tried
        records = read_replay(args.replay)[: args.records or None]
    else:
        records = list(simulated(args.assets, args.records, args.seed, fault_share=args.faults))
    ensure_topics(settings)
    gateway = Gateway(settings, frame=max(1, args.frame), rate=args.rate)
    started = time.monotonic()
    try:
        sent = gateway.send(records)
    finally:
        gateway.close()
    elapsed = time.monotonic() - started
    print(f"sent {sent} records to {settings.topic_telemetry} in {elapsed:.1f} s "
          f"({sent / max(elapsed, 1e-9):,.0f} records/s)")  # fmt: skip
    return 0
