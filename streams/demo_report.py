"""What the demo shows at its end: failures flagged (and how early), false alarms, and plots.

The simulator knows the truth: when each asset fails, where faults were injected, and the true
remaining life of every record. The worker's alert events are judged against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.datafiles import read_text, resolve
from models.simulator import SimRecord
from streams.core.alert_event import AlertEvent
from streams.plots import pyplot, save_figure

FLAG_KINDS = ("rul", "anomaly")  # alert kinds that flag a coming failure
FAULT_KINDS = ("anomaly", "drift", "data_quality")  # alert kinds that catch an injected fault
RUL_CAP = 125.0  # the forecaster's target is capped like this


@dataclass(frozen=True)
class Episode:
    """One injected fault: consecutive records of an asset carrying the same fault label."""

    asset_id: str
    kind: str
    start: float
    end: float


@dataclass
class Truth:
    """Ground truth of a simulated run, times in epoch seconds."""

    lives: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (start, failed)
    faults: dict[str, list[float]] = field(default_factory=dict)
    rul: dict[tuple[str, float], int] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    fault_records: dict[str, dict[str, int]] = field(default_factory=dict)  # asset -> kind -> n

    @classmethod
    def of(cls, records: Iterable[SimRecord]) -> Truth:
        truth, started = cls(), dict[tuple[str, int], float]()
        running: dict[str, Episode] = {}  # the fault episode each asset is in
        for r in records:
            ts = r.ts_ms / 1000
            started.setdefault((r.asset_id, r.life), ts)
            truth.rul[(r.asset_id, ts)] = r.rul
            truth.records[r.asset_id] = truth.records.get(r.asset_id, 0) + 1
            if r.rul == 0:
                truth.lives.setdefault(r.asset_id, []).append((started[(r.asset_id, r.life)], ts))
            episode = running.pop(r.asset_id, None)
            if r.fault:
                truth.faults.setdefault(r.asset_id, []).append(ts)
                counts = truth.fault_records.setdefault(r.asset_id, {})
                counts[r.fault] = counts.get(r.fault, 0) + 1
                if episode is not None and episode.kind == r.fault:
                    running[r.asset_id] = Episode(r.asset_id, r.fault, episode.start, ts)
                    continue
                running[r.asset_id] = Episode(r.asset_id, r.fault, ts, ts)
            if episode is not None:
                truth.episodes.append(episode)
        truth.episodes += running.values()
        return truth


def cmapss_feed(directory: Path, end_ms: int) -> tuple[list[dict[str, Any]], Truth]:
    """C-MAPSS FD001 test engines as telemetry (event times ending at ``end_ms``) and their
    true RUL per record, from ``RUL_FD001.txt``."""
    from models.errors import DataError
    from streams.gateway import read_cmapss

    test, rul_file = directory / "test_FD001.txt", directory / "RUL_FD001.txt"
    if not resolve(test).is_file() or not resolve(rul_file).is_file():
        raise DataError(f"{directory}: needs test_FD001.txt and RUL_FD001.txt (NASA CMAPSSData)")
    probe = read_cmapss(test)
    last = max(int(r["cycle"]) for r in probe)
    records = read_cmapss(test, start_ms=end_ms - last * 60_000)
    final = [float(x) for x in read_text(rul_file).split()]
    ends: dict[str, int] = {}
    for r in records:
        ends[r["asset_id"]] = max(ends.get(r["asset_id"], 0), int(r["cycle"]))
    truth = Truth()
    for r in records:
        unit = int(str(r["asset_id"]).split("-")[1])
        if unit > len(final):
            raise DataError(f"{rul_file}: no true RUL for engine {unit}")
        remaining = final[unit - 1] + ends[r["asset_id"]] - int(r["cycle"])
        truth.rul[(str(r["asset_id"]), int(r["ts"]) / 1000)] = int(remaining)
    return records, truth


def last_forecasts(assets: Iterable[dict[str, Any]], truth: Truth) -> tuple[int, float, float]:
    """(engines, RMSE, P10-P90 coverage) of each asset's latest RUL forecast against the
    truth at its last record (true RUL capped like the forecaster's target)."""
    errors, inside = [], 0
    for a in assets:
        if "rul" not in a:
            continue
        ts = max(t for (asset, t) in truth.rul if asset == a["asset_id"])
        true = min(RUL_CAP, truth.rul[(a["asset_id"], ts)])
        errors.append(a["rul"] - true)
        inside += a["rul_p10"] <= true <= a["rul_p90"]
    if not errors:
        return 0, float("nan"), float("nan")
    rmse = (sum(e * e for e in errors) / len(errors)) ** 0.5
    return len(errors), rmse, inside / len(errors)


@dataclass(frozen=True)
class Failure:
    """One failure and the earliest alert that flagged it (if any)."""

    asset_id: str
    failed_at: float
    flagged_by: str | None
    lead_s: float | None


def judge(truth: Truth, alerts: Iterable[AlertEvent], slack_s: float = 600.0) -> tuple[
    list[Failure], int
]:  # fmt: skip
    """Failures with their lead time, and anomaly alerts opened away from any injected fault."""
    opened = [a for a in alerts if a.state == "open"]
    failures = []
    for asset, lives in sorted(truth.lives.items()):
        for start, failed in lives:
            hits = [
                a for a in opened
                if a.asset_id == asset and a.kind in FLAG_KINDS and start < a.opened_at <= failed
            ]  # fmt: skip
            first = min(hits, key=lambda a: a.opened_at, default=None)
            failures.append(
                Failure(
                    asset, failed,
                    first.kind if first else None,
                    failed - first.opened_at if first else None,
                )
            )  # fmt: skip
    false_alarms = sum(
        1
        for a in opened
        if a.kind == "anomaly"
        and not any(abs(t - a.opened_at) <= slack_s for t in truth.faults.get(a.asset_id, ()))
    )
    return failures, false_alarms


def caught_by(
    episodes: Iterable[Episode], alerts: Iterable[AlertEvent], slack_s: float = 600.0
) -> dict[Episode, str | None]:
    """Each injected fault and the kind of the first fault alert (anomaly, drift, data quality)
    opened on its asset while it ran or within ``slack_s`` after, ``None`` if none caught it.

    >>> e = Episode("a", "drift", 100.0, 400.0)
    >>> caught_by([e], [])
    {Episode(asset_id='a', kind='drift', start=100.0, end=400.0): None}
    """
    opened = sorted((a for a in alerts if a.state == "open"), key=lambda a: a.opened_at)
    return {
        e: next(
            (
                a.kind
                for a in opened
                if a.asset_id == e.asset_id
                and a.kind in FAULT_KINDS
                and e.start <= a.opened_at <= e.end + slack_s
            ),
            None,
        )
        for e in episodes
    }


def fault_lines(truth: Truth, alerts: Iterable[AlertEvent]) -> list[str]:
    """One line per injected fault kind: how many, how many caught and by which alert kind."""
    caught = caught_by(truth.episodes, alerts)
    lines = []
    for kind in sorted({e.kind for e in caught}):
        mine = [by for e, by in caught.items() if e.kind == kind]
        hits = [by for by in mine if by is not None]
        kinds = ", ".join(f"{k} {hits.count(k)}" for k in sorted(set(hits)))
        lines.append(
            f"{kind}: {len(mine)} injected, {len(hits)} caught{f' ({kinds})' if kinds else ''}"
        )
    return lines


def threshold_lines(assets: Iterable[dict[str, Any]], truth: Truth, quantile: float) -> list[str]:
    """Why an asset's adaptive threshold sits well above the fleet's: the share of its records
    that were under injected faults (the threshold is a quantile of the asset's own scores)."""
    levels = {a["asset_id"]: a["threshold"] for a in assets if not a.get("warming_up", True)}
    if not levels:
        return []
    median = sorted(levels.values())[len(levels) // 2]
    lines = [f"adaptive thresholds: fleet median {median:.2f}"]
    for asset, level in sorted(levels.items()):
        if level <= 2 * median:
            continue
        counts = truth.fault_records.get(asset, {})
        n = max(truth.records.get(asset, 0), 1)
        share = sum(counts.values()) / n
        kinds = ", ".join(f"{k} {v / n:.1%}" for k, v in sorted(counts.items()))
        why = (
            f"{share:.0%} of its records were under injected faults ({kinds})"
            if counts
            else "no injected faults: its own readings are noisier than its neighbours'"
        )
        lines.append(
            f"  {asset} at {level:.2f}: its threshold is the {quantile:.2f} quantile of its own "
            f"scores, and {why}"
        )
    return lines


def plot(history: dict[str, dict[float, dict[str, Any]]], truth: Truth, path: Path) -> Path:
    """RUL forecasts with their band against the true RUL, and anomaly score against the
    adaptive threshold with injected faults marked, for the four riskiest assets."""
    plt = pyplot()

    def lowest_p10(asset: str) -> float:
        return min((p["rul_p10"] or 1e9 for p in history[asset].values()), default=1e9)

    assets = sorted(history, key=lowest_p10)[:4]
    fig, axes = plt.subplots(2, len(assets), figsize=(4.2 * len(assets), 6.5), squeeze=False)
    for col, asset in enumerate(assets):
        points = [history[asset][t] for t in sorted(history[asset])]
        ts = [p["ts"] for p in points]
        t0 = ts[0]
        minutes = [(t - t0) / 60 for t in ts]
        top, bottom = axes[0][col], axes[1][col]
        band = [(m, p) for m, p in zip(minutes, points, strict=True) if p["rul"] is not None]
        if band:
            x = [m for m, _ in band]
            top.fill_between(x, [p["rul_p10"] for _, p in band], [p["rul_p90"] for _, p in band],
                             alpha=0.3, label="P10–P90")  # fmt: skip
            top.plot(x, [p["rul"] for _, p in band], lw=1.2, label="forecast (P50)")
        true = [min(RUL_CAP, truth.rul.get((asset, t), float("nan"))) for t in ts]
        top.plot(minutes, true, "k--", lw=1, label="true RUL (capped)")
        top.set_title(asset)
        top.set_ylabel("RUL (cycles)")
        bottom.plot(minutes, [p["score"] for p in points], lw=0.8, label="anomaly score")
        bottom.plot(minutes, [p["threshold"] for p in points], "--", lw=1, label="threshold")
        for t in truth.faults.get(asset, ()):
            if t0 <= t <= ts[-1]:
                bottom.axvline((t - t0) / 60, color="red", alpha=0.15, lw=2)
        bottom.set_xlabel("event time (minutes)")
        bottom.set_ylabel("score (sd)")
        if col == 0:
            top.legend(fontsize=8)
            bottom.legend(fontsize=8)
    fig.suptitle("pmaint demo: RUL forecasts vs truth (top), anomaly score, injected faults in red")
    return save_figure(fig, path)
