"""The Grafana dashboard asks only for metrics and labels prefloop really exports.

Every PromQL expression of charts/prefloop/dashboards/prefloop.json is parsed with a real PromQL
parser (``promql-parser``, the Rust parser's Python binding; Grafana's ``$__rate_interval``-style
variables are substituted first); every metric it selects must appear in the live scrape of a
role server and a driver (``live_scrape``), and every label it matches or groups by must be on
those series or be one Prometheus adds to the target (the PodMonitor's ``run`` and ``role``,
kube service discovery's ``job``, ``instance``, ``pod``, ``namespace``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
from monitoring_helpers import REPO, LiveScrape
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = REPO / "charts" / "prefloop" / "dashboards" / "prefloop.json"
TARGET_LABELS = {"run", "role", "job", "instance", "pod", "namespace"}
"""Labels Prometheus attaches at scrape time (PodMonitor relabelings and kube SD)."""
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "30s"}
LABEL_VALUES = re.compile(
    r"^label_values\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*),\s*(?P<label>\w+)\)$"
)


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every query target, nested rows included."""
    stack = list(board["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def parse(expr: str) -> Any:
    """The PromQL AST, after Grafana's variables are replaced by what Grafana sends."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr.replace('"$run"', '".*"'))


def referenced(ast: Any) -> tuple[set[str], set[str]]:
    """Metric names selected and label names used (matchers, by/without, on/ignoring)."""
    metrics: set[str] = set()
    labels: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                metrics.add(node.name)
            labels.update(m.name for m in node.matchers.matchers if m.name != "__name__")
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or [])
        return True

    promql_parser.walk(ast, visit)
    return metrics, labels


def exported(live_scrape: LiveScrape) -> dict[str, set[str]]:
    """Sample name -> label names seen on it, over both scrapes."""
    out: dict[str, set[str]] = {}
    for text in (live_scrape.service_text, live_scrape.driver_text):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, set()).update(sample.labels)
    return out


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = " ".join(e for _, e in expressions(dashboard()))
    for metric in ["prefloop_run_round", "prefloop_run_annotations_used",
                   "prefloop_run_annotations_budget", "prefloop_run_heldout_accuracy_ratio",
                   "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
                   "prefloop_judge_tokens_total"]:  # fmt: skip
        assert metric in exprs, metric
    assert "grpc_service" in exprs  # RPC rate and latency per role


@pytest.mark.parametrize(("title", "expr"), list(expressions(dashboard())))
def test_every_expression_names_exported_metrics(
    title: str, expr: str, live_scrape: LiveScrape
) -> None:
    metrics, labels = referenced(parse(expr))
    names = exported(live_scrape)
    assert metrics, f"{title}: no metric in {expr}"
    missing = sorted(metrics - names.keys())
    assert missing == [], f"{title}: {missing} not exported"
    known = set().union(*(names[m] for m in metrics)) | TARGET_LABELS | {"le"}
    assert sorted(labels - known) == [], f"{title}: unknown labels in {expr}"


def test_template_variable_queries_name_exported_labels(live_scrape: LiveScrape) -> None:
    names = exported(live_scrape)
    queries = [v for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    assert queries
    for variable in queries:
        match = LABEL_VALUES.match(variable["definition"])
        assert match, variable["definition"]
        assert match["label"] in names[match["metric"]]


def test_checker_rejects_an_unknown_metric(live_scrape: LiveScrape) -> None:
    metrics, _ = referenced(parse("sum(rate(prefloop_rpc_requests_totl[$__rate_interval]))"))
    assert metrics - exported(live_scrape).keys() == {"prefloop_rpc_requests_totl"}
    with pytest.raises(ValueError):
        parse("sum(rate(grpc_server_handled_total[5m])")  # unbalanced: the parser refuses it
