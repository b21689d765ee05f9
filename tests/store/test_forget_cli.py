"""``tocsin contacts forget ID`` on each store: what it changed, where the person is
still listed, the exit codes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from router.cli.main import main
from tests.store.factories import T0, make_delivery
from tests.store.impls import RawDb, started_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures logging to the stderr of its run: undone after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def config_file(tmp_path: Path, store_url: str) -> Path:
    """A service config on ``store_url`` with the repository's rule set."""
    path = tmp_path / "tocsin.yaml"
    rules = json.dumps(str(REPO / "rules"))
    path.write_text(f"state_url: {json.dumps(store_url)}\nrules: [{rules}]\n")
    return path


def seed(store_url: str) -> None:
    """One e-mail for ``astreinte-fr`` (listed in the repository's rules), one for ``ops``."""

    async def run() -> None:
        async with started_store(store_url) as store:
            await store.commit_plan([], [
                replace(make_delivery("k1", recipient="astreinte@example.fr"),
                        contact_id="astreinte-fr"),
                make_delivery("k2", recipient="ops@example.com"),
            ], now=T0, deadline_s=60)
            await store.add_push_subscription("astreinte-fr", "https://push.example/a",
                                              "B" * 87, "A" * 22, now=T0)

    asyncio.run(run())


def test_forget_prints_the_counts_and_where_the_contact_is_still_listed(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 0; the counts per table; the audience still listing the person; its address
    is gone from the store."""
    seed(store_url)
    config = config_file(tmp_path, store_url)
    assert main(["contacts", "forget", "astreinte-fr", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "forgot contact 'astreinte-fr' in the state store (2 rows changed)" in out
    assert "push subscriptions deleted" in out
    assert "still listed in audience(s) astreinte" in out
    assert "astreinte@example.fr" not in out
    recipients = dict(RawDb(store_url).rows("SELECT contact_id, recipient FROM deliveries"))
    assert recipients == {"astreinte-fr": "a***@e***.fr", "ops": "ops@example.com"}


def test_forget_json_and_an_unknown_contact(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``--format json``: the counts by name; a contact the store never saw: zeros, exit 0."""
    config = config_file(tmp_path, store_url)
    assert main(["contacts", "forget", "nobody", "--config", str(config),
                 "--format", "json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # the store's own log lines go to stderr
    assert report["contact_id"] == "nobody"
    assert set(report["changed"].values()) == {0}
    assert report["still_listed_in"] == {"audiences": [], "files": []}


def test_forget_usage_and_config_errors(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """No ID: usage (2); a config that cannot be read: failure (1)."""
    assert main(["contacts", "forget"]) == 2
    assert main(["contacts"]) == 2
    missing = tmp_path / "missing.yaml"
    assert main(["contacts", "forget", "x", "--config", str(missing)]) == 1
    assert "tocsin contacts forget:" in capsys.readouterr().err
