"""Prometheus metrics of Tocsin, all named ``tocsin_*``, in one registry.

Every module that counts something imports the metric object from here, so that the
names, labels and help texts are written down once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "ACKNOWLEDGEMENTS",
    "ACK_ESCALATIONS",
    "ACK_LATENCY",
    "ACK_LINK_REQUESTS",
    "ACK_REMINDERS",
    "ACK_SMS_OPT_OUTS",
    "ALERTS_RECEIVED",
    "BACKLOG_ITEMS",
    "BACKLOG_OLDEST_AGE",
    "BACKPRESSURE_ENGAGED",
    "CACHE_BYTES",
    "CHANNEL_IN_FLIGHT",
    "CHANNEL_QUEUED",
    "CIRCUIT_OPEN",
    "CIRCUIT_OPENED",
    "CLAIMS",
    "CONTACTS",
    "DEAD_LETTERS",
    "DELIVERIES",
    "DISPATCH_LATENCY",
    "FALLBACKS_PLANNED",
    "HTTP_CONNECTIONS_CLOSED",
    "HTTP_CONNECTIONS_OPEN",
    "INCIDENT_ALERT_EVENTS",
    "INCIDENT_FLUSHES",
    "INSTANCES_SEEN",
    "INSTANCE_INFO",
    "INTAKE_PENDING",
    "KAFKA_COMMITTED",
    "KAFKA_CONSUMED",
    "KAFKA_DEAD_LETTERED",
    "KAFKA_DEAD_LETTER_FAILURES",
    "KAFKA_HANDOFF_LATENCY",
    "KAFKA_LAG",
    "KAFKA_PAUSED",
    "KAFKA_PUBLISHED",
    "KAFKA_REDELIVERED",
    "OUTBOX_DEPTH",
    "OUTBOX_STATUSES",
    "PIPELINE_ITEM_FAILURES",
    "PLANNED_DELIVERIES",
    "RATE_LIMITED",
    "REGISTRY",
    "RETENTION_DELETED",
    "RULES_HASH_MISMATCH",
    "RULES_LAST_RELOAD",
    "RULES_RELOAD_SUCCESS",
    "SMS_REPLIES",
    "SMS_SEGMENTS",
    "SNS_INBOUND_MESSAGES",
    "WEBHOOK_LARGE_BODIES",
    "WEBHOOK_REJECTED",
]

REGISTRY = CollectorRegistry(auto_describe=True)

ALERTS_RECEIVED = Counter(
    "tocsin_alerts_received",
    "Alerts received, by source and result (accepted, rejected).",
    ["source", "result"],
    registry=REGISTRY,
)
ACK_LINK_REQUESTS = Counter(
    "tocsin_ack_link_requests",
    "Requests to acknowledgement links (/ack/{token}), by result: shown (GET), "
    "acknowledged, already, resolved, not_found, not_asked (POST), expired, forged, "
    "malformed, disabled, unavailable.",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_REJECTED = Counter(
    "tocsin_webhook_rejected_requests",
    "Webhook requests rejected, by HTTP status and reason.",
    ["status", "reason"],
    registry=REGISTRY,
)
ACKNOWLEDGEMENTS = Counter(
    "tocsin_acknowledgements",
    "Incidents acknowledged, by how the answer arrived (sms, link, api, cli).",
    ["channel"],
    registry=REGISTRY,
)
ACK_LATENCY = Histogram(
    "tocsin_ack_latency_seconds",
    "Time from an incident's first notice to its acknowledgement, per route.",
    ["route"],
    buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 14400, 43200, 86400),
    registry=REGISTRY,
)
ACK_ESCALATIONS = Counter(
    "tocsin_ack_escalations",
    "Escalation tiers paged because nobody answered, by tier number (1 = the first).",
    ["tier"],
    registry=REGISTRY,
)
ACK_REMINDERS = Counter(
    "tocsin_ack_reminders",
    "Reminders planned to recipients who had not answered (one per recipient).",
    registry=REGISTRY,
)
ACK_SMS_OPT_OUTS = Counter(
    "tocsin_sms_opt_outs",
    "SMS opt-outs (STOP, ...) received, by whether the phone is a paged contact's.",
    ["known"],
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
#: The ``status`` values of :data:`OUTBOX_DEPTH` (sent ones are history, not depth).
OUTBOX_STATUSES: tuple[str, ...] = ("pending", "due", "failed")
OUTBOX_DEPTH = Gauge(
    "tocsin_outbox_depth",
    "Deliveries in the outbox: pending (waiting, incl. held by quiet hours or backing "
    "off), due (pending and due now: the send backlog), failed (dead letters).",
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
CONTACTS = Gauge(
    "tocsin_contacts",
    "Contacts of each audience of the rules in force that have the channel's address "
    "(email, sms, topic), set at start and after every successful rule reload.",
    ["audience", "channel"],
    registry=REGISTRY,
)
RULES_LAST_RELOAD = Gauge(
    "tocsin_rules_last_reload_timestamp_seconds",
    "Unix time of the last successful rule load.",
    registry=REGISTRY,
)
HTTP_CONNECTIONS_OPEN = Gauge(
    "tocsin_http_connections_open",
    "HTTP connections open now (webhook.max_connections is the cap).",
    registry=REGISTRY,
)
HTTP_CONNECTIONS_CLOSED = Counter(
    "tocsin_http_connections_closed",
    "HTTP connections closed by Tocsin's guards, by reason (connection_limit: refused "
    "with 503 at the cap; header_timeout: headers not complete in webhook.header_timeout_s).",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_LARGE_BODIES = Gauge(
    "tocsin_webhook_large_bodies",
    "Webhook requests whose body may pass webhook.parse_thread_bytes, by state (active: "
    "being read or parsed, at most webhook.max_large_bodies; waiting: for a slot).",
    ["state"],
    registry=REGISTRY,
)

# --------------------------------------------------------------------------- delivery semantics

DEAD_LETTERS = Counter(
    "tocsin_dead_letters",
    "Deliveries that failed for good (status failed), by channel and reason "
    "(permanent, deadline, unconfigured). Replay with `tocsin deliveries retry`.",
    ["channel", "reason"],
    registry=REGISTRY,
)
FALLBACKS_PLANNED = Counter(
    "tocsin_fallbacks_planned",
    "Fallback deliveries inserted after a permanent failure, by failed and fallback channel.",
    ["channel", "fallback"],
    registry=REGISTRY,
)
SMS_SEGMENTS = Counter(
    "tocsin_sms_segments",
    "SMS parts billed for sent deliveries, by channel (cost awareness).",
    ["channel"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "tocsin_rate_limited",
    "Sends delayed by a channel's rate limit, by channel and action (waited, deferred).",
    ["channel", "action"],
    registry=REGISTRY,
)
CHANNEL_IN_FLIGHT = Gauge(
    "tocsin_channel_in_flight",
    "Deliveries claimed by a channel's lane and not yet recorded (sending, or waiting "
    "for the rate limit), by channel (\"other\": channels without an adapter).",
    ["channel"],
    registry=REGISTRY,
)
CHANNEL_QUEUED = Gauge(
    "tocsin_channel_queued",
    "Pending deliveries due now and not claimed, by channel: each lane's backlog.",
    ["channel"],
    registry=REGISTRY,
)
CIRCUIT_OPEN = Gauge(
    "tocsin_channel_circuit_open",
    "1 while a channel's circuit breaker is open or half-open (its deliveries wait, "
    "unattempted, for the cool-down and a probe), 0 when closed.",
    ["channel"],
    registry=REGISTRY,
)
CIRCUIT_OPENED = Counter(
    "tocsin_channel_circuit_opened",
    "Times a channel's circuit breaker opened (consecutive failures, or a failed probe).",
    ["channel"],
    registry=REGISTRY,
)

# --------------------------------------------------------------------------- Kafka source

KAFKA_CONSUMED = Counter(
    "tocsin_kafka_messages_consumed",
    "Kafka messages handed off to the intake (or dead-lettered), by topic.",
    ["topic"],
    registry=REGISTRY,
)
KAFKA_REDELIVERED = Counter(
    "tocsin_kafka_messages_redelivered",
    "Redelivered Kafka messages skipped because they were already in the intake.",
    ["topic"],
    registry=REGISTRY,
)
KAFKA_DEAD_LETTERED = Counter(
    "tocsin_kafka_messages_dead_lettered",
    "Undecodable or invalid Kafka messages sent to the dead-letter topic, by reason.",
    ["topic", "reason"],
    registry=REGISTRY,
)
KAFKA_DEAD_LETTER_FAILURES = Counter(
    "tocsin_kafka_dead_letter_failures",
    "Failed dead-letter produces (the partition is held at that offset and retried).",
    ["topic"],
    registry=REGISTRY,
)
KAFKA_COMMITTED = Counter(
    "tocsin_kafka_messages_committed",
    "Kafka messages whose offsets were committed to the consumer group, by topic.",
    ["topic"],
    registry=REGISTRY,
)
KAFKA_LAG = Gauge(
    "tocsin_kafka_consumer_lag",
    "Messages in the partition not yet handed off (end offset - next offset).",
    ["topic", "partition"],
    registry=REGISTRY,
)
KAFKA_PAUSED = Gauge(
    "tocsin_kafka_paused",
    "1 while the consumer pauses its partitions because the intake/outbox is behind.",
    registry=REGISTRY,
)
KAFKA_HANDOFF_LATENCY = Histogram(
    "tocsin_kafka_handoff_latency_seconds",
    "Time from a fetched batch to its alerts being durably in the intake.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
KAFKA_PUBLISHED = Counter(
    "tocsin_kafka_messages_published",
    "Cluster ingest: webhook alerts published to Kafka, by result (acked, failed).",
    ["result"],
    registry=REGISTRY,
)

# -- incidents (router/workers/scheduler.py, router/workers/intake.py) ---------------------
INCIDENT_FLUSHES = Counter(
    "tocsin_incident_flushes",
    "Incident timer evaluations by result (applied; conflict: recomputed after a change).",
    ["result"],
    registry=REGISTRY,
)
INCIDENT_ALERT_EVENTS = Counter(
    "tocsin_incident_alert_events",
    "Alerts applied to incidents (one per alert and matched route).",
    registry=REGISTRY,
)
PIPELINE_ITEM_FAILURES = Counter(
    "tocsin_pipeline_item_failures",
    "Items that failed one pipeline step and were set aside while the others went on, by "
    "stage (intake: a row dead-lettered; flush: an incident quarantined with back-off; "
    "plan, render: a notice dead-lettered; send: a channel's send raised, the delivery is "
    "retried) and reason (the exception's class).",
    ["stage", "reason"],
    registry=REGISTRY,
)

# -- retention (router/workers/retention.py) ----------------------------------------------
RETENTION_DELETED = Counter(
    "tocsin_retention_deleted_rows",
    "Rows deleted by retention, by kind (intake, dead_intake, deliveries, incidents).",
    ["kind"],
    registry=REGISTRY,
)

# -- back-pressure (router/backpressure.py) -----------------------------------------------
BACKLOG_ITEMS = Gauge(
    "tocsin_backlog_items",
    "Work due and not done, by stage: intake (accepted alerts not yet routed), incidents "
    "(timers overdue: e.g. a first notice not yet planned), deliveries (due now, not sent).",
    ["stage"],
    registry=REGISTRY,
)
BACKLOG_OLDEST_AGE = Gauge(
    "tocsin_backlog_oldest_age_seconds",
    "Seconds the oldest due item of each stage has waited (0 when nothing waits).",
    ["stage"],
    registry=REGISTRY,
)
BACKPRESSURE_ENGAGED = Gauge(
    "tocsin_backpressure_engaged",
    "1 while the stage's backlog bound holds back ingest (webhook 503, Kafka paused).",
    ["stage"],
    registry=REGISTRY,
)

# -- several instances (router/workers/instances.py, and where the workers claim) ------
INSTANCE_INFO = Gauge(
    "tocsin_instance_info",
    "1 for this instance: its id, version, rule-set hash and store kind (sqlite, postgresql).",
    ["instance", "version", "rules_hash", "store"],
    registry=REGISTRY,
)
INSTANCES_SEEN = Gauge(
    "tocsin_instances",
    "Instances that recorded a heartbeat in the store recently (this one included).",
    registry=REGISTRY,
)
RULES_HASH_MISMATCH = Gauge(
    "tocsin_rules_hash_mismatch",
    "Instances seen recently whose rule-set hash differs from this instance's (0: all agree).",
    registry=REGISTRY,
)
CLAIMS = Counter(
    "tocsin_claims",
    "Items this instance claimed with a lease, by role (intake: intake rows; incident: due "
    "incidents; delivery: due deliveries).",
    ["role"],
    registry=REGISTRY,
)

# -- memory (router/bytecache.py) -------------------------------------------------------
CACHE_BYTES = Gauge(
    "tocsin_cache_bytes",
    "Estimated bytes held by the caches keyed by alert content, by cache (fingerprints, "
    "routes, intake); all together stay under memory.cache_bytes.",
    ["cache"],
    registry=REGISTRY,
)

# -- SMS replies through SNS (router/http/sns_webhook.py) --------------------------------
SNS_INBOUND_MESSAGES = Counter(
    "tocsin_sns_inbound",
    "SNS messages posted to /webhook/sns, by type and result (accepted, duplicate, "
    "confirmed, unsubscribed, or the refusal reason: bad_signature, wrong_topic, stale...).",
    ["type", "result"],
    registry=REGISTRY,
)
SMS_REPLIES = Counter(
    "tocsin_sms_replies",
    "SMS replies handled, by outcome (acknowledged, already, closed, choices, opted_out, "
    "not_pending, not_understood, unknown_number).",
    ["outcome"],
    registry=REGISTRY,
)
