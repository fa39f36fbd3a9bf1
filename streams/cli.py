"""``pmaint``: the command line. Each subcommand lives in ``streams/commands/``."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import NoReturn

from models.errors import PmaintError

COMMANDS: dict[str, str] = {
    "worker": "streams.commands.worker",
    "produce": "streams.commands.produce",
    "check": "streams.commands.check",
    "demo": "streams.commands.demo",
    "train": "streams.commands.train",
    "alerts": "streams.commands.alerts",
}
EVALUATE: dict[str, str] = {
    "anomaly": "streams.commands.evaluate_anomaly",
    "rul": "streams.commands.evaluate_rul",
}


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add(subparsers: argparse._SubParsersAction[OneLineParser], name: str, path: str) -> None:
    module: ModuleType = importlib.import_module(path)
    parser = subparsers.add_parser(
        name,
        help=module.HELP,
        description=module.HELP,
        epilog=module.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="pmaint",
        description="Streaming predictive maintenance: telemetry from Kafka, online anomaly "
        "models, RUL forecasts, alerts and InfluxDB outputs.",
        epilog="Settings come from PMAINT_* environment variables (see README).\n"
        "Start with: pmaint demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, path in COMMANDS.items():
        _add(subparsers, name, path)
    if EVALUATE:
        evaluate = subparsers.add_parser(
            "evaluate",
            help="Evaluate a model on reference data",
            description="Evaluate a model on reference data",
            epilog="examples:\n  pmaint evaluate anomaly --shuttle --json\n"
            "  pmaint evaluate rul --model artifacts/fd001 --data DIR --subset FD001",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        kinds = evaluate.add_subparsers(title="what", metavar="WHAT", required=True)
        for name, path in EVALUATE.items():
            _add(kinds, name, path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PmaintError as exc:
        print(f"pmaint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
