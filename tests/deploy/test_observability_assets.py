"""What operators see: the Grafana dashboard and the Prometheus alert rules ask
only for metrics and labels the services expose, and every Deployment of both
variants tells Prometheus where its pods serve /metrics."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_model import K8S, K8S_POSTGRES, PROCESSES, REPO, Manifests, Process, kustomized
from support.promql_names import Names, names

from service_runtime.metrics.catalogue import sample_names

DASHBOARD = REPO / "deploy" / "grafana" / "quoteflow.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
#: Prometheus's own, one per target, beside what the services expose.
SCRAPE_METRICS = frozenset({"up"})
#: The target's (job, instance), the services' labels, and histograms' le.
KNOWN_LABELS = frozenset(
    {
        "job",
        "instance",
        "queue",
        "status",
        "priority",
        "outcome",
        "grpc_type",
        "grpc_service",
        "grpc_method",
        "grpc_code",
        "store",
        "le",
    }
)
#: grpc_code holds grpc-go's codes.Code.String(), as go-grpc-prometheus does.
GO_CODES = frozenset(
    {
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    }
)
GRPC_TYPES = frozenset({"unary", "client_stream", "server_stream", "bidi_stream"})
#: What issue 15 says the dashboard shows: rate, errors and latency per RPC,
#: depth and oldest age, throughput, dead letters, retries, watchers.
DASHBOARD_MUST_SHOW = frozenset(
    {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "quoteflow_queue_depth",
        "quoteflow_queue_oldest_pending_age_seconds",
        "quoteflow_queue_attempts_total",
        "quoteflow_queue_dead_letters",
        "quoteflow_queue_retries_total",
        "quoteflow_order_watchers",
    }
)
REQUIRED_ALERTS = frozenset(
    {
        "QuoteflowOldestPendingGrowing",
        "QuoteflowDeadLettersGrowing",
        "QuoteflowHighErrorRatio",
        "QuoteflowNotReady",
    }
)
RULE_KEYS = frozenset({"alert", "expr", "for", "keep_firing_for", "labels", "annotations"})
SEVERITIES = frozenset({"critical", "warning", "info"})
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
#: Grafana's label_values(metric, label) variable query.
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")
VARIANTS = pytest.mark.parametrize("variant", [K8S, K8S_POSTGRES], ids=lambda p: p.name)


@pytest.fixture(scope="module")
def exposed() -> frozenset[str]:
    return sample_names() | SCRAPE_METRICS


def _check_names(expr: str, exposed: frozenset[str]) -> Names:
    found = names(expr)
    assert found.metrics, f"names no metric: {expr}"
    assert found.metrics <= exposed, f"not exposed: {sorted(found.metrics - exposed)} in {expr}"
    assert found.labels <= KNOWN_LABELS, f"unknown labels {sorted(found.labels - KNOWN_LABELS)}"
    for label, allowed in (("grpc_code", GO_CODES), ("grpc_type", GRPC_TYPES)):
        for value in found.values(label):
            # A regex matcher's alternatives, each a value as written.
            assert set(value.split("|")) <= allowed, f"{label} {value!r} in {expr}"
    return found


# -- the dashboard -----------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data, those inside rows (collapsed ones hold theirs) too."""
    for panel in panels:
        if panel["type"] == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_the_dashboard_picks_a_prometheus_and_its_jobs(
    dashboard: dict[str, Any], exposed: frozenset[str]
) -> None:
    assert dashboard["schemaVersion"] >= 39
    variables = _variables(dashboard)
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    job = variables["job"]
    assert job["datasource"]["uid"] == "${datasource}"
    query = job["query"]["query"] if isinstance(job["query"], dict) else job["query"]
    match = _LABEL_VALUES.match(query)
    assert match, query
    assert (match[1], match[2]) == ("grpc_server_started_total", "job")
    assert match[1] in exposed


def test_every_panel_queries_the_chosen_prometheus_for_the_chosen_jobs(
    dashboard: dict[str, Any],
) -> None:
    panels = list(_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in [panel, *targets]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in targets:
            assert '{job=~"$job"' in target["expr"], (panel["title"], target["expr"])


def test_every_query_names_only_what_the_services_expose(
    dashboard: dict[str, Any], exposed: frozenset[str]
) -> None:
    shown: set[str] = set()
    for panel in _panels(dashboard["panels"]):
        for target in panel["targets"]:
            shown |= _check_names(target["expr"], exposed).metrics
    missing = DASHBOARD_MUST_SHOW - shown
    assert not missing, f"the dashboard shows no {sorted(missing)}"


# -- the alert rules ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert groups and all(set(g) == {"name", "rules"} for g in groups)
    return [rule for group in groups for rule in group["rules"]]


def test_the_alerts_are_all_there_once(rules: list[dict[str, Any]]) -> None:
    alerts = [rule["alert"] for rule in rules]
    assert len(set(alerts)) == len(alerts)
    assert set(alerts) >= REQUIRED_ALERTS


def test_every_alert_waits_says_how_bad_and_what(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        # A misspelt key (annotation, label) would be refused by Prometheus.
        assert set(rule) <= RULE_KEYS, rule["alert"]
        assert _DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_every_alert_names_only_what_the_services_expose(
    rules: list[dict[str, Any]], exposed: frozenset[str]
) -> None:
    for rule in rules:
        _check_names(rule["expr"], exposed)


def test_the_error_ratio_counts_only_the_services_own_failures(
    rules: list[dict[str, Any]],
) -> None:
    (rule,) = [r for r in rules if r["alert"] == "QuoteflowHighErrorRatio"]
    (excluded,) = names(rule["expr"]).values("grpc_code", "!~")
    caused_by_the_caller = {
        "InvalidArgument",
        "NotFound",
        "AlreadyExists",
        "FailedPrecondition",
        "Unauthenticated",
        "PermissionDenied",
        "Canceled",
    }
    assert {"OK", *caused_by_the_caller} <= set(excluded.split("|"))
    assert not {"Internal", "Unavailable", "Unknown"} & set(excluded.split("|"))


# -- the scrape annotations ----------------------------------------------------------


def _metrics_port(manifests: Manifests, process: Process) -> int:
    (port,) = [p for p in manifests.container(process)["ports"] if p["name"] == "metrics"]
    assert port["protocol"] == "TCP"
    number: int = port["containerPort"]
    return number


@VARIANTS
@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_prometheus_is_told_where_each_pod_serves_metrics(variant: Path, process: Process) -> None:
    manifests = Manifests(kustomized(variant))
    port = _metrics_port(manifests, process)
    template = manifests.find("Deployment", process.name)["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    env = {v["name"]: v.get("value") for v in manifests.container(process)["env"]}
    # The process serves there: the annotation, the port and the option agree.
    assert env[f"{process.env_prefix}_METRICS_PORT"] == str(port)


@VARIANTS
def test_each_process_has_a_metrics_port_of_its_own(variant: Path) -> None:
    manifests = Manifests(kustomized(variant))
    # Issue 15's ports, one each, so that all four can run on one host too.
    assert [_metrics_port(manifests, p) for p in PROCESSES] == [9091, 9092, 9093, 9094]
    for process in PROCESSES:
        numbers = [p["containerPort"] for p in manifests.container(process)["ports"]]
        assert len(set(numbers)) == len(numbers), process.name
