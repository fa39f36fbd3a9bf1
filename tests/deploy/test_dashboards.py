"""Every InfluxQL query of the Grafana dashboards returns data from a real InfluxDB 1.x."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import Fleet

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "docker" / "grafana" / "dashboards").glob("*.json"))
HELM_DASHBOARDS = ROOT / "helm" / "pmaint" / "dashboards"
DRILL_ASSET = "pump-07"  # the fixture's asset with every kind of output


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, InfluxQL) for every panel target, annotation and query variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["query"]
    for ann in dashboard["annotations"]["list"]:
        if "query" in ann:
            yield f"annotation {ann['name']!r}", ann["query"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            yield f"variable {var['name']!r}", query if isinstance(query, str) else query["query"]


def expand(query: str, fleet: Fleet, asset: str) -> str:
    """Grafana's macros as Grafana would expand them for a six-hour range."""
    start_ms, end_ms = int(fleet.start_s * 1000) - 60_000, int(fleet.end_s * 1000) + 60_000
    out = (
        query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
        .replace("$__interval", "5m")
        .replace("$asset_id", asset)
    )
    assert "$" not in out, f"unexpanded macro in {out}"
    return out


def _all_queries() -> list[tuple[str, str, str]]:
    return [
        (path.name, where, q)
        for path in DASHBOARDS
        for where, q in queries(json.loads(path.read_text()))
    ]


def test_dashboards_are_provisionable() -> None:
    assert {p.name for p in DASHBOARDS} == {"pmaint-fleet.json", "pmaint-asset.json"}
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        assert board["title"] and board["schemaVersion"] >= 39
        names = [v["name"] for v in board["templating"]["list"]]
        assert "datasource" in names
        ids = [p["id"] for p in _panels(board["panels"])]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
                assert target["rawQuery"] is True
    assert uids == {"pmaint-fleet", "pmaint-asset"}
    asset = json.loads((ROOT / "docker/grafana/dashboards/pmaint-asset.json").read_text())
    var = next(v for v in asset["templating"]["list"] if v["name"] == "asset_id")
    assert var["query"] == 'SHOW TAG VALUES FROM "anomaly" WITH KEY = "asset_id"'
    assert any(a.get("query", "").find('FROM "alert"') > 0 for a in asset["annotations"]["list"])


def test_helm_chart_ships_the_same_dashboards() -> None:
    copies = sorted(HELM_DASHBOARDS.glob("*.json"))
    assert [p.name for p in copies] == [p.name for p in DASHBOARDS]
    for original, copy in zip(DASHBOARDS, copies, strict=True):
        assert copy.read_bytes() == original.read_bytes(), (
            f"{copy} differs from {original}: cp docker/grafana/dashboards/*.json "
            "helm/pmaint/dashboards/"
        )


def assert_every_query_answers(fleet: Fleet, asset: str) -> None:
    """Every dashboard query, macros expanded, runs and returns a non-empty series; only a
    count of open alerts of one severity may be empty (no open alert of that severity)."""
    by_severity = []
    for board, where, query in _all_queries():
        result = fleet.query(expand(query, fleet, asset))
        assert "error" not in result, f"{board} {where}: {result['error']}"
        has_data = any(s["values"] for s in result.get("series", []))
        if '"level" = ' in query:
            by_severity.append(has_data)
        else:
            assert has_data, f"{board} {where}: no data for {asset}"
    assert any(by_severity), "no open alert of any severity"


@pytest.mark.parametrize(("board", "where", "query"), _all_queries())
def test_query_returns_series(populated_influx: Fleet, board: str, where: str, query: str) -> None:
    result = populated_influx.query(expand(query, populated_influx, DRILL_ASSET))
    assert "error" not in result, f"{board} {where}: {result['error']}"
    series = result.get("series", [])
    assert series, f"{board} {where}: no series for {DRILL_ASSET}"
    assert any(s["values"] for s in series), f"{board} {where}: only empty series"


@pytest.mark.parametrize("asset", ["fan-02", "press-11"])
def test_asset_queries_run_for_every_asset(populated_influx: Fleet, asset: str) -> None:
    """Assets with fewer outputs give empty panels, never query errors."""
    for board, where, query in _all_queries():
        result = populated_influx.query(expand(query, populated_influx, asset))
        assert "error" not in result, f"{board} {where}: {result['error']}"


def test_asset_variable_lists_the_fleet(populated_influx: Fleet) -> None:
    result = populated_influx.query('SHOW TAG VALUES FROM "anomaly" WITH KEY = "asset_id"')
    assert sorted(v[1] for v in result["series"][0]["values"]) == sorted(populated_influx.assets)


def test_fleet_ranking_puts_the_failing_asset_first(populated_influx: Fleet) -> None:
    """The queries rank what the fixture made risky: pump-07's RUL P10 is lowest and its
    anomaly alert resolved, while its RUL and drift alerts and fan-02's two are still open."""
    fleet = json.loads((ROOT / "docker/grafana/dashboards/pmaint-fleet.json").read_text())
    by_title = {p["title"]: p for p in _panels(fleet["panels"])}

    def run(title: str, ref: str = "A") -> list[dict[str, Any]]:
        target = next(t for t in by_title[title]["targets"] if t["refId"] == ref)
        result = populated_influx.query(expand(target["query"], populated_influx, DRILL_ASSET))
        return result.get("series", [])  # type: ignore[no-any-return]

    ranked = run("Assets ranked by RUL P10 (lowest first)")
    rul = {s["tags"]["asset_id"]: s["values"][0][1] for s in ranked}
    assert min(rul, key=rul.__getitem__) == "pump-07"
    open_alerts = run("Open alerts")
    assert sorted((s["tags"]["asset_id"], s["tags"]["kind"]) for s in open_alerts) == [
        ("fan-02", "drift"), ("fan-02", "rul"), ("pump-07", "drift"), ("pump-07", "rul")
    ]  # fmt: skip
    counts = {ref: run("Open alerts by severity", ref)[0]["values"][0][1] for ref in "ABC"}
    assert counts == {"A": 1, "B": 1, "C": 2}  # critical, warning, info
