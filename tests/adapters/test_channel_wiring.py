"""Channel config sections, the registry wiring and the channel CLI commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from py_vapid import Vapid02  # type: ignore[import-untyped]

from adapters.registry import CHANNEL_KINDS, build_channels, sns_settings
from router.app import build_service_channels, channel_lanes, channel_rate_limits
from router.cli import main
from router.config import load_config
from router.errors import ConfigError
from router.push_keys import generate_vapid_keys
from router.store import SqliteStore
from router.workers.dispatcher import LaneSettings
from tests.store.factories import T0, make_delivery


def test_channel_kinds() -> None:
    """Rule files may name email, sms, topic and push."""
    assert {"email", "sms", "topic", "push"} <= CHANNEL_KINDS


async def test_env_alone_enables_sms_and_topic() -> None:
    """TOCSIN_SNS__REGION creates the sns section: sms and topic channels, 20/s default."""
    config = load_config(None, {"TOCSIN_SNS__REGION": "eu-west-1",
                                "TOCSIN_SNS__SENDER_ID": "TOCSIN"})
    assert config.sns is not None
    settings = sns_settings(config.sns)
    assert (settings.region, settings.sender.sender_id) == ("eu-west-1", "TOCSIN")
    channels = build_service_channels(config)
    try:
        assert set(channels) == {"email", "sms", "topic"}
        assert channel_rate_limits(config) == {"sms": 20.0, "topic": 10.0}
    finally:
        for channel in channels.values():
            await channel.close()


def test_bad_sns_values_named(tmp_path: Path) -> None:
    """A bad sender id and a lone access key are reported with their key paths."""
    path = tmp_path / "c.yaml"
    path.write_text("sns:\n  sender_id: 'too-long-sender-id'\n")
    with pytest.raises(ConfigError, match=r"sns\.sender_id"):
        load_config(path, {})
    path.write_text("sns:\n  access_key_id: AKIA\n")
    with pytest.raises(ConfigError, match=r"access_key_id and sns\.secret_access_key"):
        load_config(path, {})


def test_webpush_secrets_never_echoed(tmp_path: Path) -> None:
    """An invalid api_token is reported without its value."""
    path = tmp_path / "c.yaml"
    path.write_text("webpush:\n  vapid_private_key: k\n  vapid_subject: mailto:a@b.c\n"
                    "  api_token: short-secret\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert "webpush.api_token" in str(info.value)
    assert "short-secret" not in str(info.value)


def test_push_needs_the_store() -> None:
    """Without a subscription store the push channel is not built."""
    assert build_channels(None) == {}


def test_vapid_keys_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin push vapid-keys` prints a usable private key and its public key."""
    assert main(["push", "vapid-keys"]) == 0
    out = capsys.readouterr().out
    private = out.split("vapid_private_key: ")[1].split()[0]
    vapid = Vapid02.from_string(private_key=private)
    assert vapid.private_key is not None
    private2, public2 = generate_vapid_keys()
    assert private2 != private and len(public2) == 87


def test_deliveries_retry_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin deliveries retry ID` and `--failed` replay dead letters in the config's store."""
    db = tmp_path / "state.db"
    config = tmp_path / "tocsin.yaml"
    config.write_text(f"state_url: sqlite:///{db}\n")

    async def setup() -> list[int]:
        store = SqliteStore(str(db))
        await store.start()
        await store.commit_plan([], [make_delivery("a"), make_delivery("b")], now=T0,
                                deadline_s=60)
        ids = [d.id for d in await store.list_deliveries()]
        for delivery_id in ids:
            await store.mark_failed(delivery_id, T0, "550 refused")
        await store.close()
        return sorted(ids)

    first, second = asyncio.run(setup())
    assert main(["deliveries", "retry", str(first), "--config", str(config)]) == 0
    assert f"replayed 1 delivery: {first}" in capsys.readouterr().out
    assert main(["deliveries", "retry", str(first), "--config", str(config)]) == 1
    assert "not replayed" in capsys.readouterr().err
    assert main(["deliveries", "retry", "--failed", "--config", str(config)]) == 0
    assert f"replayed 1 delivery: {second}" in capsys.readouterr().out
    assert main(["deliveries", "retry", "--config", str(config)]) == 2


def test_channel_lanes_default_to_dispatch_and_channel_settings(tmp_path: Path) -> None:
    """Without dispatch.lanes every lane takes dispatch.concurrency and breaker_*, and the
    rate of its channel section (existing keys keep working); a lane key overrides."""
    path = tmp_path / "c.yaml"
    path.write_text("dispatch:\n  concurrency: 6\n  breaker_failures: 3\n"
                    "sns:\n  region: eu-west-1\n  rate_per_s: 7\n")
    lanes = channel_lanes(load_config(path, {}))
    assert lanes["sms"] == LaneSettings(concurrency=6, rate_per_s=7.0, breaker_failures=3)
    assert lanes["email"] == LaneSettings(concurrency=6, rate_per_s=0.0, breaker_failures=3)
    assert lanes["topic"].rate_per_s == 10.0
    path.write_text("dispatch:\n  lanes:\n    sms: {concurrency: 2, rate_per_s: 3, burst: 4,"
                    " breaker_failures: 0, breaker_cooldown_s: 9}\n"
                    "sns:\n  region: eu-west-1\n")
    lanes = channel_lanes(load_config(path, {"TOCSIN_DISPATCH__LANES__EMAIL__CONCURRENCY": "1"}))
    assert lanes["sms"] == LaneSettings(concurrency=2, rate_per_s=3.0, burst=4.0,
                                        breaker_failures=0, breaker_cooldown_s=9.0)
    assert lanes["email"].concurrency == 1


def test_unknown_lane_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    """A typo in a lane's channel is an error naming the key and the closest channel."""
    path = tmp_path / "c.yaml"
    path.write_text("dispatch:\n  lanes:\n    e-mail: {concurrency: 2}\n")
    with pytest.raises(ConfigError, match=r"dispatch\.lanes\.e-mail.*email"):
        load_config(path, {})
