#!/usr/bin/env python3
"""Writes docs/grafana-ringway.json: a Grafana dashboard for Ringway's own `ringway_*` metric
families (Istio's `istio_*` families work with Istio's published dashboards unchanged).

    python3 tools/grafana/make_dashboard.py            # rewrites docs/grafana-ringway.json
"""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "docs" / "grafana-ringway.json"

# (title, unit, [(expr, legend)])
PANELS = [
    ("Requests per second by status class", "reqps",
     [('sum by (code_class) (rate(ringway_requests_total{instance=~"$instance"}[$__rate_interval]))', "{{code_class}}")]),
    ("Requests per second by listener and cluster", "reqps",
     [('sum by (listener, cluster) (rate(ringway_requests_total{instance=~"$instance"}[$__rate_interval]))', "{{listener}} → {{cluster}}")]),
    ("Upstream latency p50 / p99 by cluster", "s",
     [('histogram_quantile(0.5, sum by (cluster, le) (rate(ringway_upstream_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p50 {{cluster}}"),
      ('histogram_quantile(0.99, sum by (cluster, le) (rate(ringway_upstream_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p99 {{cluster}}")]),
    ("Client connections", "short",
     [('sum by (listener) (ringway_downstream_connections_active{instance=~"$instance"})', "{{listener}}")]),
    ("Proxy errors by kind", "reqps",
     [('sum by (kind) (rate(ringway_proxy_errors_total{instance=~"$instance"}[$__rate_interval]))', "{{kind}}")]),
    ("Policy events (retries, breakers, ejections, rate limits, faults, mirrors)", "ops",
     [('sum by (cluster, event) (rate(ringway_policy_events_total{instance=~"$instance"}[$__rate_interval]))', "{{cluster}} {{event}}")]),
    ("Upstream connects and pool reuse", "ops",
     [('sum by (cluster, result) (rate(ringway_upstream_connects_total{instance=~"$instance"}[$__rate_interval]))', "connect {{cluster}} {{result}}"),
      ('sum by (cluster) (rate(ringway_upstream_pool_reuses_total{instance=~"$instance"}[$__rate_interval]))', "reuse {{cluster}}")]),
    ("Bytes", "Bps",
     [('sum by (listener) (rate(ringway_downstream_received_bytes_total{instance=~"$instance"}[$__rate_interval]))', "from clients {{listener}}"),
      ('sum by (listener) (rate(ringway_downstream_sent_bytes_total{instance=~"$instance"}[$__rate_interval]))', "to clients {{listener}}"),
      ('sum by (cluster) (rate(ringway_upstream_sent_bytes_total{instance=~"$instance"}[$__rate_interval]))', "to upstream {{cluster}}"),
      ('sum by (cluster) (rate(ringway_upstream_received_bytes_total{instance=~"$instance"}[$__rate_interval]))', "from upstream {{cluster}}")]),
    ("TLS handshakes by result", "ops",
     [('sum by (listener, result) (rate(ringway_tls_handshakes_total{instance=~"$instance"}[$__rate_interval]))', "{{listener}} {{result}}"),
      ('sum by (cluster, result) (rate(ringway_upstream_tls_handshakes_total{instance=~"$instance"}[$__rate_interval]))', "upstream {{cluster}} {{result}}")]),
    ("Authorization denials by rule", "ops",
     [('sum by (listener, rule) (rate(ringway_authz_denied_total{instance=~"$instance"}[$__rate_interval]))', "{{listener}} {{rule}}")]),
    ("Soonest certificate expiry", "s",
     [('min by (owner, file) (ringway_certificate_expiry_seconds{instance=~"$instance"})', "{{owner}} {{file}}")]),
    ("Access-log lines, reloads", "ops",
     [('sum by (result) (rate(ringway_access_log_lines_total{instance=~"$instance"}[$__rate_interval]))', "log lines {{result}}"),
      ('sum by (result) (increase(ringway_config_reloads_total{instance=~"$instance"}[$__rate_interval]))', "config reloads {{result}}"),
      ('sum by (result) (increase(ringway_tls_reloads_total{instance=~"$instance"}[$__rate_interval]))', "TLS reloads {{result}}")]),
]


def panel(i, title, unit, targets):
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + j), "expr": e, "legendFormat": leg, "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for j, (e, leg) in enumerate(targets)
        ],
    }


def main():
    dash = {
        "title": "Ringway",
        "uid": "ringway-dataplane",
        "tags": ["ringway", "proxy"],
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "instance", "type": "query", "label": "instance", "includeAll": True, "multi": True,
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(ringway_requests_total, instance)", "refresh": 2},
        ]},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }
    OUT.write_text(json.dumps(dash, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
