"""Prometheus metrics of Tocsin, all named ``tocsin_*``, in one registry.

Every module that counts something imports the metric object from here, so that the
names, labels and help texts are written down once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "ALERTS_RECEIVED",
    "DELIVERIES",
    "DISPATCH_LATENCY",
    "INTAKE_PENDING",
    "OUTBOX_DEPTH",
    "PLANNED_DELIVERIES",
    "REGISTRY",
    "RULES_LAST_RELOAD",
    "RULES_RELOAD_SUCCESS",
    "WEBHOOK_REJECTED",
]

REGISTRY = CollectorRegistry(auto_describe=True)

ALERTS_RECEIVED = Counter(
    "tocsin_alerts_received",
    "Alerts received, by source and result (accepted, rejected).",
    ["source", "result"],
    registry=REGISTRY,
)
WEBHOOK_REJECTED = Counter(
    "tocsin_webhook_rejected_requests",
    "Webhook requests rejected, by HTTP status and reason.",
    ["status", "reason"],
    registry=REGISTRY,
)
PLANNED_DELIVERIES = Counter(
    "tocsin_deliveries_planned",
    "Deliveries written to the outbox, by channel and phase (deduplicated ones excluded).",
    ["channel", "phase"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "tocsin_deliveries",
    "Delivery attempts by channel and result (sent, retry, failed).",
    ["channel", "result"],
    registry=REGISTRY,
)
DISPATCH_LATENCY = Histogram(
    "tocsin_dispatch_latency_seconds",
    "Time from a delivery being planned to it being accepted by the provider.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "tocsin_outbox_depth",
    "Deliveries in the outbox by status.",
    ["status"],
    registry=REGISTRY,
)
INTAKE_PENDING = Gauge(
    "tocsin_intake_pending",
    "Accepted alerts persisted in the intake log and not yet routed.",
    registry=REGISTRY,
)
RULES_RELOAD_SUCCESS = Gauge(
    "tocsin_rules_reload_success",
    "1 if the last rule (re)load succeeded, 0 if it was rejected.",
    registry=REGISTRY,
)
RULES_LAST_RELOAD = Gauge(
    "tocsin_rules_last_reload_timestamp_seconds",
    "Unix time of the last successful rule load.",
    registry=REGISTRY,
)
