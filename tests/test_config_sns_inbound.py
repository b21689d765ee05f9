"""The sns.inbound section: defaults, environment overrides, and what it refuses."""

from __future__ import annotations

import re

import pytest

from router.config import load_config
from router.config.channels import SNS_HOST_PATTERN
from router.errors import ConfigError

A = "arn:aws:sns:eu-west-1:123456789012:replies"
B = "arn:aws-cn:sns:cn-north-1:123456789012:replies-2"


def test_topic_arns_from_the_environment_are_comma_split() -> None:
    """TOCSIN_SNS__INBOUND__TOPIC_ARNS=a,b gives the list [a, b]."""
    config = load_config(None, {"TOCSIN_SNS__INBOUND__ENABLED": "true",
                                "TOCSIN_SNS__INBOUND__TOPIC_ARNS": f"{A},{B}"})
    assert config.sns is not None
    assert config.sns.inbound.enabled and config.sns.inbound.topic_arns == [A, B]
    assert config.sns.inbound.replay_window_s == 3600


@pytest.mark.parametrize("url", [
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem"])
def test_default_pattern_accepts_sns_hosts(url: str) -> None:
    """The default accepts the SNS endpoints of every region, China included."""
    assert re.match(SNS_HOST_PATTERN, url)


@pytest.mark.parametrize("url", [
    "http://sns.eu-west-1.amazonaws.com/x.pem",  # not https
    "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
    "https://evil.example/https://sns.eu-west-1.amazonaws.com/x.pem",
    "https://sns.eu-west-1.amazonaws.com@evil.example/x.pem",
    "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/x.pem"])
def test_default_pattern_refuses_other_hosts(url: str) -> None:
    """Look-alike hosts, user-info tricks and plain http are refused."""
    assert not re.match(SNS_HOST_PATTERN, url)


@pytest.mark.parametrize(("env", "words"), [
    ({"TOCSIN_SNS__INBOUND__ENABLED": "true"}, "needs sns.inbound.topic_arns"),
    ({"TOCSIN_SNS__INBOUND__TOPIC_ARNS": "not-an-arn"}, "is not an SNS topic ARN"),
    ({"TOCSIN_SNS__INBOUND__CERT_URL_PATTERN": "^(unclosed"}, "not a valid regular"),
    ({"TOCSIN_SNS__INBOUND__DEDUP_KEEP_S": "60"}, "at least replay_window_s"),
])
def test_invalid_settings_are_refused(env: dict[str, str], words: str) -> None:
    """Each mistake is a ConfigError that says what to fix."""
    with pytest.raises(ConfigError, match=words):
        load_config(None, env)
