"""The ``kafka`` config section: enabled by the environment alone, validated strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kafka.client import consumer_options
from router.config import env_names, load_config
from router.errors import ConfigError


def test_environment_alone_enables_the_consumer() -> None:
    """The three documented variables are enough; lists and mappings parse from env."""
    config = load_config(None, {
        "TOCSIN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092,127.0.0.1:9093",
        "TOCSIN_KAFKA__TOPICS": "alerts,events",
        "TOCSIN_KAFKA__GROUP_ID": "tocsin-prod",
        "TOCSIN_KAFKA__FORMATS": "{events: event}",
        "TOCSIN_KAFKA__LABELS__KEY": "kafka_key",
    })
    kafka = config.kafka
    assert kafka is not None and kafka.consumer_enabled
    assert kafka.bootstrap_servers == ["127.0.0.1:9092", "127.0.0.1:9093"]
    assert kafka.topics == ["alerts", "events"]
    assert kafka.group_id == "tocsin-prod"
    assert kafka.format_for("events") == "event"
    assert kafka.format_for("alerts") == "alertmanager_webhook"
    assert kafka.labels.key == "kafka_key"


def test_kafka_keys_are_listed_as_environment_names() -> None:
    """``env_names`` (used by --help) includes the nested kafka keys."""
    names = env_names()
    assert "TOCSIN_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "TOCSIN_KAFKA__SASL__PASSWORD" in names
    assert "TOCSIN_KAFKA__PUBLISH__TOPIC" in names


def test_consumer_never_auto_commits_and_passes_tuning_and_sasl() -> None:
    """enable_auto_commit is off; timeouts, max records and SCRAM credentials pass through."""
    config = load_config(None, {
        "TOCSIN_KAFKA__BOOTSTRAP_SERVERS": "k:9093",
        "TOCSIN_KAFKA__TOPIC_PATTERN": "alerts\\..*",
        "TOCSIN_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TOCSIN_KAFKA__SASL__MECHANISM": "SCRAM-SHA-512",
        "TOCSIN_KAFKA__SASL__USERNAME": "tocsin",
        "TOCSIN_KAFKA__SASL__PASSWORD": "s3cret",
        "TOCSIN_KAFKA__SESSION_TIMEOUT_MS": "2000",
        "TOCSIN_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
        "TOCSIN_KAFKA__REBALANCE_TIMEOUT_MS": "1000",
        "TOCSIN_KAFKA__MAX_RECORDS": "50",
    })
    assert config.kafka is not None
    options = consumer_options(config.kafka)
    assert options["enable_auto_commit"] is False
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["session_timeout_ms"] == 2000
    assert options["rebalance_timeout_ms"] == 1000
    assert options["max_poll_records"] == 50


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "needs topics"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__TOPIC_PATTERN": "a.*"}, "exclusive"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"},
         "needs kafka.sasl"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__TOPIC_PATTERN": "("}, "regular expression"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__LABELS__KEY": "kafka-key"}, "label name"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__DEFAULT_FORMAT": "xml"}, "must be one of"),
        ({"TOCSIN_KAFKA__TOPICS": "a", "TOCSIN_KAFKA__PAUSE_DEPTH": "10"},
         "TOCSIN_KAFKA__PAUSE_DEPTH: it sets no config key"),
    ],
)
def test_inconsistent_settings_are_refused(env: dict[str, str], words: str) -> None:
    """Each inconsistent kafka setting is a ConfigError naming the problem."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TOCSIN_KAFKA__BOOTSTRAP_SERVERS": "k:9092", **env})
    assert words in str(info.value)


def test_moved_backpressure_keys_point_to_the_backpressure_section(tmp_path: Path) -> None:
    """kafka.pause_depth of earlier versions is refused with where its bound went."""
    path = tmp_path / "tocsin.yaml"
    path.write_text("kafka:\n  bootstrap_servers: [k:9092]\n  topics: [a]\n"
                    "  pause_depth: 5000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert "kafka.pause_depth was replaced by the backpressure section" in str(info.value)
    assert "backpressure.max_intake_pending" in str(info.value)


def test_no_kafka_section_by_default() -> None:
    """Without kafka keys, there is no consumer and no publisher."""
    assert load_config(None, {}).kafka is None
