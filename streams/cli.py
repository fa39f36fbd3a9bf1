"""``pmaint``: the command line. Each subcommand lives in ``streams/commands/``.

Only the module of the command being run is imported, so ``pmaint --help`` and light commands
start fast (the worker and the models pull in faust, torch and river).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from models.errors import PmaintError
from streams.redact import redact_text

COMMANDS: dict[str, tuple[str, str]] = {
    "worker": (
        "streams.commands.worker",
        "Run a pmaint worker: consume telemetry, run the models, publish outputs",
    ),
    "produce": (
        "streams.commands.produce",
        "Publish telemetry to Kafka: a simulated fleet or a replayed file",
    ),
    "check": (
        "streams.commands.check",
        "Check the connections to Kafka and InfluxDB with the current settings",
    ),
    "demo": (
        "streams.commands.demo",
        "Run everything locally: broker, simulated fleet, worker, live view, summary",
    ),
    "train": (
        "streams.commands.train",
        "Train the RUL forecaster on C-MAPSS files or the fleet simulator",
    ),
    "alerts": (
        "streams.commands.alerts",
        "Show alert events from the alert topic (filter, follow, JSON lines)",
    ),
}
EVALUATE: dict[str, tuple[str, str]] = {
    "anomaly": (
        "streams.commands.evaluate_anomaly",
        "Score the anomaly detectors: a labelled NAB series, river's Shuttle or C-MAPSS engines",
    ),
    "rul": (
        "streams.commands.evaluate_rul",
        "Score a RUL model on C-MAPSS test engines: RMSE, NASA score, P10-P90 coverage",
    ),
}

MODELS: dict[str, tuple[str, str]] = {
    "promote": (
        "streams.commands.models_promote",
        "Copy a RUL model artifact into a registry and make it the one workers serve",
    ),
    "list": (
        "streams.commands.models_list",
        "Show a registry's RUL model versions: data source, metrics, which is current",
    ),
}
# command groups: name -> (help, subcommands, examples)
GROUPS: dict[str, tuple[str, dict[str, tuple[str, str]], str]] = {
    "evaluate": (
        "Evaluate a model on reference data",
        EVALUATE,
        "examples:\n"
        "  pmaint evaluate anomaly --nab data/nab/machine_temperature_system_failure.csv "
        "--windows data/nab/windows.json\n"
        "  pmaint evaluate anomaly --shuttle --json\n"
        "  pmaint evaluate anomaly --cmapss data/cmapss/train_FD001.txt\n"
        "  pmaint evaluate rul --model artifacts/fd001 --data data/cmapss --subset FD001",
    ),
    "models": (
        "Manage a RUL model registry (workers pick up its current models without a restart)",
        MODELS,
        "examples:\n  pmaint models promote --registry /models artifacts/rul-sim\n"
        "  pmaint models list --registry /models --json",
    ),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and each option's default shown where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or action.default is False
        if unset or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add(
    subparsers: argparse._SubParsersAction[OneLineParser],
    name: str,
    entry: tuple[str, str],
    load: bool,
) -> None:
    path, help_text = entry
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=HelpFormatter,
    )
    if load:
        module = importlib.import_module(path)
        parser.epilog = module.EXAMPLES
        module.add_arguments(parser)
        parser.set_defaults(run=module.run)


def build_parser(argv: Sequence[str] = ()) -> OneLineParser:
    """The parser; commands named in ``argv`` get their options (their modules imported)."""
    wanted = {a for a in argv if not a.startswith("-")}
    parser = OneLineParser(
        prog="pmaint",
        description="Streaming predictive maintenance: telemetry from Kafka, online anomaly "
        "models, RUL forecasts, alerts and InfluxDB outputs.",
        epilog="Settings come from PMAINT_* environment variables (see README).\n"
        "Start with: pmaint demo",
        formatter_class=HelpFormatter,
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, entry in COMMANDS.items():
        _add(subparsers, name, entry, name in wanted)
    for group, (help_text, entries, examples) in GROUPS.items():
        sub = subparsers.add_parser(
            group,
            help=help_text,
            description=help_text,
            epilog=examples,
            formatter_class=HelpFormatter,
        )
        kinds = sub.add_subparsers(title="what", metavar="WHAT", required=True)
        for name, entry in entries.items():
            _add(kinds, name, entry, group in wanted and name in wanted)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_in).parse_args(args_in)
    try:
        return int(args.run(args))
    except PmaintError as exc:
        print(f"pmaint: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
