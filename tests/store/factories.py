"""Builders of intake records and planned deliveries for store, intake and dispatch tests."""

from __future__ import annotations

from datetime import UTC, datetime

from router.fingerprint import fingerprint
from router.models import Alert, AlertStatus, IntakeRecord, NewDelivery, RenderedMessage

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_alert(
    name: str = "HostDown", *, status: AlertStatus = "firing", starts_at: datetime = T0,
    **labels: str,
) -> Alert:
    """An alert with ``alertname=name`` plus ``labels``, fingerprint computed."""
    all_labels = {"alertname": name, **labels}
    return Alert(
        labels=all_labels,
        annotations={"summary": f"{name} é à ç"},
        status=status,
        starts_at=starts_at,
        ends_at=None,
        generator_url="",
        fingerprint=fingerprint(all_labels),
    )


def make_record(name: str = "HostDown", **labels: str) -> IntakeRecord:
    """An intake record as the webhook would persist it."""
    return IntakeRecord(
        source="alertmanager",
        received_at=T0,
        alert=make_alert(name, **labels),
        meta={"receiver": "tocsin", "groupKey": "{}:{}"},
    )


def make_delivery(
    key: str = "k1", *, recipient: str = "ops@example.com", channel: str = "email",
    failed_reason: str | None = None,
) -> NewDelivery:
    """A planned delivery with idempotency key ``key``."""
    return NewDelivery(
        idempotency_key=key,
        incident_key="fp",
        fingerprint="fp",
        route_id="root",
        phase="firing",
        channel=channel,
        recipient=recipient,
        contact_id="ops",
        audience="oncall",
        severity="critical",
        locale="fr",
        message=RenderedMessage(subject="Panne é", text="texte à ç", html="<p>à</p>"),
        failed_reason=failed_reason,
    )
