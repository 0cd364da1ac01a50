"""Dashboards and alert rules as code: writes dashboards/json/*.json and dashboards/rules/*.yaml.

    uv run python dashboards/build.py          rewrite them
    uv run python dashboards/build.py --check  exit 1 and name the stale files

Output is deterministic (stable uids, sorted keys), so the generated files are checked in and a
test fails when they are stale. The operator embeds them into ConfigMaps and a PrometheusRule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from pinstack_contracts.services import NAMES

ROOT = Path(__file__).resolve().parent
PROM = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$service"'


def _query(expr: str, legend: str = "", ref: str = "A") -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    return q


def _ts(title: str, unit: str, *queries: tuple[str, str], width: int = 12, description: str = "") -> Timeseries:
    panel = Timeseries().title(title).unit(unit).datasource(PROM).height(8).span(width)
    if description:
        panel = panel.description(description)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def _stat(title: str, unit: str, expr: str, width: int = 6) -> Stat:
    return Stat().title(title).unit(unit).datasource(PROM).height(4).span(width).with_target(_query(expr))


def _dashboard(uid: str, title: str, description: str, service_variable: bool = True) -> Dashboard:
    d = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["pinstack"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .editable()
    )
    d = d.with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    if service_variable:
        d = d.with_variable(
            QueryVariable("service")
            .label("Service")
            .datasource(PROM)
            .query("label_values(http_requests_total, job)")
            .multi(True)
            .include_all(True)
        )
    return d


def _error_ratio(by: str) -> str:
    """Share of 5xx answers; 0 (not "No data") for a service that answered no 5xx."""
    group = f"sum by ({by}) " if by else "sum "
    errors = group + '(rate(http_requests_total{status=~"5..",' + JOB + "}[5m]))"
    served = group + "(rate(http_requests_total{" + JOB + "}[5m]))"
    return f"({errors} or 0 * {served}) / {served}"


def overview() -> Dashboard:
    return (
        _dashboard("pinstack-overview", "Pinstack / Overview", "Every service at a glance: traffic, errors, latency.")
        .with_panel(_stat("Services up", "none", "sum(up{" + JOB + "})"))
        .with_panel(_stat("Requests/s", "reqps", "sum(rate(http_requests_total{" + JOB + "}[5m]))"))
        .with_panel(_stat("Error ratio", "percentunit", _error_ratio("")))
        .with_panel(_stat("Outbox backlog", "none", "sum(outbox_backlog{" + JOB + "})"))
        .with_panel(
            _ts(
                "Request rate by service",
                "reqps",
                ("sum by (job) (rate(http_requests_total{" + JOB + "}[5m]))", "{{job}}"),
            )
        )
        .with_panel(
            _ts(
                "Error ratio by service",
                "percentunit",
                (_error_ratio("job"), "{{job}}"),
            )
        )
        .with_panel(
            _ts(
                "p99 latency by service",
                "s",
                (
                    "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{"
                    + JOB
                    + "}[5m])))",
                    "{{job}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "Open circuit breakers",
                "none",
                (
                    # A breaker's gauge appears once it first opened: every upstream called shows 0 until then.
                    "sum by (job, upstream) (circuit_breaker_open{" + JOB + "}) or sum by (job, upstream) "
                    "(0 * rate(upstream_requests_total{" + JOB + "}[5m]))",
                    "{{job}} → {{upstream}}",
                ),
            )
        )
    )


def red() -> Dashboard:
    def quantile(q: str) -> tuple[str, str]:
        return (
            f"histogram_quantile({q}, sum by (route, le) (rate(http_request_duration_seconds_bucket{{{JOB}}}[5m])))",
            "{{route}}",
        )

    return (
        _dashboard("pinstack-red", "Pinstack / Service RED", "Rate, errors and duration of one service, by route.")
        .with_row(Row("Rate and errors"))
        .with_panel(
            _ts(
                "Request rate by route",
                "reqps",
                ("sum by (route) (rate(http_requests_total{" + JOB + "}[5m]))", "{{route}}"),
            )
        )
        .with_panel(
            _ts(
                "Errors (5xx) by route",
                "reqps",
                (
                    # 0 for every route served, so "no errors" is a flat line rather than "No data".
                    'sum by (route) (rate(http_requests_total{status=~"5..",' + JOB + "}[5m])) or sum by (route) "
                    "(0 * rate(http_requests_total{" + JOB + "}[5m]))",
                    "{{route}}",
                ),
            )
        )
        .with_row(Row("Duration"))
        .with_panel(_ts("p50 latency by route", "s", quantile("0.5")))
        .with_panel(_ts("p99 latency by route", "s", quantile("0.99")))
        .with_row(Row("Upstreams"))
        .with_panel(
            _ts(
                "Upstream calls by outcome",
                "reqps",
                (
                    "sum by (upstream, outcome) (rate(upstream_requests_total{" + JOB + "}[5m]))",
                    "{{upstream}} {{outcome}}",
                ),
                width=24,
            )
        )
    )


def kafka() -> Dashboard:
    return (
        _dashboard(
            "pinstack-kafka", "Pinstack / Kafka", "Consumer lag, consumption outcomes and the transactional outbox."
        )
        .with_panel(
            _ts(
                "Consumer lag",
                "none",
                ("sum by (group, topic) (kafka_consumer_lag{" + JOB + "})", "{{group}} {{topic}}"),
            )
        )
        .with_panel(
            _ts(
                "Consumed by outcome",
                "ops",
                (
                    "sum by (group, topic, outcome) (rate(kafka_consumed_total{" + JOB + "}[5m]))",
                    "{{group}} {{topic}} {{outcome}}",
                ),
            )
        )
        .with_panel(_ts("Outbox backlog", "none", ("sum by (job) (outbox_backlog{" + JOB + "})", "{{job}}")))
        .with_panel(
            _ts(
                "Outbox published",
                "ops",
                ("sum by (topic) (rate(outbox_published_total{" + JOB + "}[5m]))", "{{topic}}"),
            )
        )
    )


def database() -> Dashboard:
    return (
        _dashboard(
            "pinstack-database",
            "Pinstack / Database pool",
            "The SQLAlchemy connection pool of each service (APIs and workers).",
        )
        .with_panel(
            _ts(
                "Idle pooled connections",
                "none",
                (
                    "sum by (job) (db_pool_size{" + JOB + "}) - sum by (job) (db_pool_checked_out{" + JOB + "})",
                    "{{job}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "Pool connections in use",
                "none",
                ("sum by (job) (db_pool_checked_out{" + JOB + "})", "{{job}} in use"),
                ("sum by (job) (db_pool_size{" + JOB + "})", "{{job}} size"),
            )
        )
    )


def cache() -> Dashboard:
    return (
        _dashboard("pinstack-cache", "Pinstack / Cache", "Hit ratio of every Redis cache.")
        .with_panel(
            _ts(
                "Hit ratio by cache",
                "percentunit",
                (
                    'sum by (job, cache) (rate(cache_requests_total{result="hit",'
                    + JOB
                    + "}[5m])) / sum by (job, cache) "
                    "(rate(cache_requests_total{" + JOB + "}[5m]))",
                    "{{job}} {{cache}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "Lookups by result",
                "ops",
                ("sum by (cache, result) (rate(cache_requests_total{" + JOB + "}[5m]))", "{{cache}} {{result}}"),
            )
        )
    )


def operator() -> Dashboard:
    return (
        _dashboard(
            "pinstack-operator",
            "Pinstack / Operator",
            "The Pinstack operator's reconciliations.",
            service_variable=False,
        )
        .with_panel(
            _ts(
                "Reconciliations by result",
                "ops",
                ("sum by (result) (rate(pinstack_operator_reconciliations_total[5m]))", "{{result}}"),
            )
        )
        .with_panel(
            _ts(
                "Reconcile duration p50/p99",
                "s",
                (
                    "histogram_quantile(0.5, sum by (le) (rate(pinstack_operator_reconcile_duration_seconds_bucket[5m])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(pinstack_operator_reconcile_duration_seconds_bucket[5m])))",
                    "p99",
                ),
            )
        )
        .with_panel(
            _ts(
                "Drift corrections by component",
                "none",
                ("sum by (component) (increase(pinstack_operator_drift_corrections_total[1h]))", "{{component}}"),
            )
        )
        .with_panel(_ts("Environments by phase", "none", ("sum by (phase) (pinstack_operator_resources)", "{{phase}}")))
    )


DASHBOARDS = {
    "overview": overview,
    "red": red,
    "kafka": kafka,
    "database": database,
    "cache": cache,
    "operator": operator,
}


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def rules() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "pinstack.services",
                "rules": [
                    _alert(
                        "PinstackHighErrorRate",
                        'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.05',
                        "5m",
                        "critical",
                        "{{ $labels.job }} answers more than 5% of requests with 5xx",
                        "{{ $labels.job }}: {{ $value | humanizePercentage }} of requests failed over 5 minutes.",
                    ),
                    _alert(
                        "PinstackHighLatency",
                        "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m]))) > 1",
                        "10m",
                        "warning",
                        "{{ $labels.job }} p99 latency is above 1s",
                        "{{ $labels.job }}: p99 latency {{ $value | humanizeDuration }} over 5 minutes.",
                    ),
                    _alert(
                        "PinstackServiceDown",
                        'up{job=~"' + "|".join(NAMES) + '"} == 0',  # every service's API (the registry)
                        "2m",
                        "critical",
                        "{{ $labels.job }} is down",
                        "Prometheus cannot scrape {{ $labels.instance }} of {{ $labels.job }}.",
                    ),
                ],
            },
            {
                "name": "pinstack.kafka",
                "rules": [
                    _alert(
                        "PinstackConsumerLag",
                        "sum by (group, topic) (kafka_consumer_lag) > 1000",
                        "10m",
                        "warning",
                        "Consumer group {{ $labels.group }} lags on {{ $labels.topic }}",
                        "{{ $labels.group }} is {{ $value }} records behind on {{ $labels.topic }}.",
                    ),
                    _alert(
                        "PinstackOutboxBacklog",
                        "max by (job) (outbox_backlog) > 1000",
                        "10m",
                        "warning",
                        "{{ $labels.job }} outbox is not draining",
                        "{{ $labels.job }} has {{ $value }} unpublished outbox rows.",
                    ),
                ],
            },
        ]
    }


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    out: dict[Path, str] = {}
    for key, build in DASHBOARDS.items():
        model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
        for number, panel in enumerate(model["panels"], start=1):
            panel["id"] = number  # stable panel ids: links and alerts refer to them
        out[ROOT / "json" / f"{key}.json"] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    header = "# Generated by dashboards/build.py: do not edit.\n"
    out[ROOT / "rules" / "pinstack.rules.yaml"] = header + yaml.safe_dump(rules(), sort_keys=False, width=200)
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    files = render()
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            print(f"stale: {path.relative_to(ROOT.parent)} (run uv run python dashboards/build.py)", file=sys.stderr)
            stale = 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT.parent)}")
    for folder, pattern in ((ROOT / "json", "*.json"), (ROOT / "rules", "*.yaml")):
        for path in folder.glob(pattern):
            if path not in files:
                print(f"stale: {path.relative_to(ROOT.parent)} has no source", file=sys.stderr)
                stale = 1
    return stale


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
