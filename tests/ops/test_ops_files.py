"""The alert rules, Grafana dashboard and runbook in ops/ name only metrics that /metrics exposes."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from ops import metrics, queries
from ops.health_queries import DomainHealth

OPS = Path(__file__).resolve().parents[2] / "ops"


def exposed_names() -> set[str]:
    """Every sample name /metrics can produce, from a snapshot with something in every place."""
    health_values = {f: 1.0 for f in DomainHealth.__dataclass_fields__ if f not in ("checked_at", "errors")}
    snap = metrics.Snapshot(
        counters=[queries.JobCounters("j", {"started": 1, "rows:done": 1, "duration_count": 1})],
        queues=[queries.QueueState("q", "default", 1, 1, 1, 1.0)],
        workers=[],
        schedules=[
            queries.ScheduleState(
                "j", "* * * * *", "sweeps", datetime.now(UTC), 60, {"finished_at": 1, "duration_s": 1}, 1.0
            )
        ],
        failed_recorded=0,
        health=DomainHealth(checked_at=1, **health_values),
        recoveries=queries.Recoveries([{"job_id": "x"}], [], {"j": 1}),
    )
    text = metrics.render(snap).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bjobfleet_[a-z_]+", text))


def test_alert_rules_cover_the_issue_and_name_exposed_metrics():
    rules = [
        r for g in yaml.safe_load((OPS / "prometheus/alerts.yml").read_text())["groups"] for r in g["rules"]
    ]
    names = {r["alert"] for r in rules}
    assert {
        "JobfleetQueueBacklogGrowing",
        "JobfleetFailureRate",
        "JobfleetSweepNotSucceeding",
        "JobfleetGdprRequestDueSoon",
        "JobfleetGdprRequestOverdue",
        "JobfleetTelemetryPastRetention",
        "JobfleetCalendarReconnectsRequired",
    } <= names
    exposed = exposed_names()
    runbook = (OPS / "RUNBOOK.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, re.M)}
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        unknown = referenced(rule["expr"]) - exposed
        assert not unknown, f"{rule['alert']} names metrics /metrics lacks: {unknown}"
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no runbook section {anchor}"


def test_grafana_dashboard_names_exposed_metrics():
    dashboard = json.loads((OPS / "grafana/jobfleet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    unknown = set().union(*(referenced(e) for e in exprs)) - exposed_names()
    assert not unknown, f"the dashboard names metrics /metrics lacks: {unknown}"


def test_prometheus_config_loads_the_rules_and_scrapes_the_dashboard():
    config = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    scrape = config["scrape_configs"][0]
    assert scrape["job_name"] == "jobfleet" and scrape["static_configs"][0]["targets"] == ["dashboard:8765"]
    assert scrape["authorization"]["credentials_file"]
