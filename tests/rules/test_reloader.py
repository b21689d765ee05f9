"""Hot reload: validate completely, swap atomically, or reject and keep the running rules."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from router.app import create_app
from router.config import ServiceConfig
from router.http import ServiceState
from router.http.state import RELOADER, RULES, RulesRef
from router.metrics import REGISTRY
from router.rules import load_rules
from router.workers.reloader import RuleReloader
from tests.rules.helpers import HEADER


def _metric(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def _write(folder: Path, audience: str) -> None:
    path = folder / "rules.yaml"
    path.write_text(HEADER + textwrap.dedent(f"""\
        route: {{audiences: [{audience}], template: t, channels: {{default: [email]}}}}
        """), encoding="utf-8")
    # Make the change visible even on file systems with coarse modification times.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _write(tmp_path, "a")
    return tmp_path


async def test_valid_reload_swaps_and_sets_metrics(folder: Path) -> None:
    """A valid new rule set replaces the old one; success gauge 1, timestamp set."""
    ref = RulesRef(load_rules([folder]))
    old = ref.current
    reloader = RuleReloader([str(folder)], ref, wall_clock=lambda: 1234.5)
    _write(folder, "b")
    result = await reloader.reload("test")
    assert result.ok and ref.current is result.rules and ref.current is not old
    assert ref.current is not None and ref.current.evaluate({})[0].audiences == ("b",)
    assert _metric("tocsin_rules_reload_success") == 1
    assert _metric("tocsin_rules_last_reload_timestamp_seconds") == 1234.5
    assert old is not None and old.evaluate({})[0].audiences == ("a",)  # in-flight users


async def test_invalid_reload_keeps_running_rules_and_logs_positions(folder: Path) -> None:
    """An invalid rule set is rejected: rules unchanged, gauge 0, positioned errors logged."""
    ref = RulesRef(load_rules([folder]))
    old = ref.current
    reloader = RuleReloader([str(folder)], ref)
    _write(folder, "nobody")
    with capture_logs() as logs:
        result = await reloader.reload("test")
    assert not result.ok and ref.current is old
    assert _metric("tocsin_rules_reload_success") == 0
    expected = f"{folder / 'rules.yaml'}:10:21: error: unknown audience 'nobody'"
    assert [str(p) for p in result.problems] == [expected]
    problems = [e["problem"] for e in logs if e["event"] == "rule problem"]
    assert problems == [expected]
    assert any(e["event"].startswith("rule reload rejected") and e["log_level"] == "error"
               for e in logs)


async def test_check_files_reloads_only_on_change(folder: Path) -> None:
    """Unchanged files: nothing happens; a change reloads; the same broken files once only."""
    ref = RulesRef(load_rules([folder]))
    reloader = RuleReloader([str(folder)], ref)
    await reloader.prime()
    assert await reloader.check_files() is None
    _write(folder, "c")
    result = await reloader.check_files()
    assert result is not None and result.ok
    _write(folder, "zz")
    result = await reloader.check_files()
    assert result is not None and not result.ok
    assert await reloader.check_files() is None  # not retried until the files change again
    (folder / "extra.yaml").write_text("audiences: {e: {contacts: [{id: e, name: E, "
                                       "email: e@example.com}]}}\n", encoding="utf-8")
    _write(folder, "e")
    result = await reloader.check_files()
    assert result is not None and result.ok  # a new file in the folder is picked up


async def test_watch_picks_up_an_edit(folder: Path) -> None:
    """The watcher polls the files and swaps in the edited rules without any signal."""
    ref = RulesRef(load_rules([folder]))
    reloader = RuleReloader([str(folder)], ref, poll_interval_s=0.05)
    await reloader.prime()
    task = asyncio.create_task(reloader.watch())
    try:
        _write(folder, "d")
        for _ in range(1500):  # up to ~30 s on a loaded machine
            if ref.current is not None and ref.current.evaluate({})[0].audiences == ("d",):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the watcher did not reload the edited rules")
    finally:
        task.cancel()


async def _client(folder: Path, **overrides: Any) -> TestClient[Any, Any]:
    data: dict[str, Any] = {"state_url": f"sqlite:///{folder / 'state.db'}",
                            "rules": [str(folder)], "rules_poll_interval_s": 0}
    data.update(overrides)
    config = ServiceConfig.model_validate(data)
    app = create_app(config, rules=load_rules([folder]), state=ServiceState(),
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_post_reload_endpoint(folder: Path) -> None:
    """POST /-/reload: 200 with a summary when swapped, 422 with problems when rejected."""
    client = await _client(folder)
    try:
        _write(folder, "b")
        resp = await client.post("/-/reload")
        body = await resp.json()
        assert resp.status == 200, body
        assert (body["status"], body["routes"]) == ("success", 1)
        rules = client.app[RULES].current
        assert rules is not None and rules.evaluate({})[0].audiences == ("b",)
        _write(folder, "nobody")
        resp = await client.post("/-/reload")
        body = await resp.json()
        assert resp.status == 422
        assert body["status"] == "error"
        assert "unknown audience 'nobody'" in body["problems"][0]
        assert client.app[RULES].current is rules
        assert client.app[RELOADER].paths == [str(folder)]
    finally:
        await client.close()


async def test_post_reload_needs_scope_operate_when_credentials_are_set(folder: Path) -> None:
    """With credentials configured, /-/reload needs scope operate (the webhook's: 403)."""
    client = await _client(folder, webhook={"bearer_token": "s3cret"}, api={"tokens": [
        {"name": "deploy", "token": "operate-token-0123456789", "scopes": ["operate"]}]})
    try:
        assert (await client.post("/-/reload")).status == 401
        webhook = await client.post("/-/reload", headers={"Authorization": "Bearer s3cret"})
        assert webhook.status == 403
        resp = await client.post("/-/reload",
                                 headers={"Authorization": "Bearer operate-token-0123456789"})
        assert resp.status == 200
    finally:
        await client.close()


def _contacts(folder: Path, rows: str) -> None:
    path = folder / "customers.csv"
    path.write_text("id,name,email\n" + rows, encoding="utf-8")
    st = path.stat()  # visible even with coarse modification times
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_an_edited_contact_file_reloads_and_a_broken_one_keeps_the_old(
        tmp_path: Path) -> None:
    """The contact files of the rules in force are watched: an edit swaps the rule set,
    a broken file (a required column lost) is rejected and the old list stays."""
    _contacts(tmp_path, "a,Alice,alice@example.com\n")
    header = HEADER.replace("audiences:\n", "audiences:\n  customers: {contacts_from: "
                            "[{file: customers.csv}]}\n", 1)
    (tmp_path / "rules.yaml").write_text(header + "route: {audiences: [customers], "
                                         "template: t, channels: {default: [email]}}\n",
                                         encoding="utf-8")
    ref = RulesRef(load_rules([tmp_path]))
    reloader = RuleReloader([str(tmp_path)], ref)
    await reloader.prime()
    assert await reloader.check_files() is None  # nothing changed
    _contacts(tmp_path, "a,Alice,alice@example.com\nb,Bob,bob@example.com\n")
    result = await reloader.check_files()
    assert result is not None and result.ok
    assert ref.current is not None
    assert [c.id for c in ref.current.audiences["customers"].contacts] == ["a", "b"]
    in_force = ref.current
    (tmp_path / "customers.csv").write_text("name,email\nCarl,carl@example.com\n",
                                            encoding="utf-8")
    result = await reloader.check_files()
    assert result is not None and not result.ok and ref.current is in_force
    assert any("missing required column(s) id" in p.message for p in result.problems)
    assert await reloader.check_files() is None  # the same broken file: not retried
    _contacts(tmp_path, "c,Carl,carl@example.com\n")
    result = await reloader.check_files()
    assert result is not None and result.ok
    assert [c.id for c in ref.current.audiences["customers"].contacts] == ["c"]
