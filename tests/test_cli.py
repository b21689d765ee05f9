"""The `tocsin` command line: help everywhere, exit statuses 0 / 1 / 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router import __version__
from router.cli import build_parser, main
from router.cli.base import EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["serve"], ["rules"], ["rules", "check"], ["rules", "test"], ["version"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tocsin")
def test_every_command_has_help_with_an_example(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--help` exits 0 and shows usage and at least one example."""
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tocsin")
    assert "example" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin version` and `tocsin --version` print the package version."""
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"tocsin {__version__}\n"
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["rules"], ["rules", "check"],
     ["rules", "test", "rules/", "--labels", "no-equals-sign"],
     ["rules", "test", "rules/", "--labels", "a=b", "--format", "yaml"],
     ["serve", "--unknown-flag"]],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Missing/unknown commands, missing arguments and bad values are usage errors (2)."""
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_rules_check_valid_example_set(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example rules pass `tocsin rules check` (exit 0), with the one note that
    SMS answers need a two-way origination number."""
    assert main(["rules", "check", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("ok:")
    assert out.count(": warning: ") == 1 and "two-way SMS" in out


def test_rules_check_broken_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule file with an unknown key fails with a positioned error (exit 1)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("route:\n  audiences: [ops]\n  chanels: {}\n")
    assert main(["rules", "check", str(broken)]) == 1
    assert f"{broken}:" in capsys.readouterr().out


def test_rules_test_one_alert(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin rules test PATH --labels ...` explains the routing of one alert (exit 0)."""
    code = main(["rules", "test", str(REPO / "rules"), "--labels", "alertname=HostDown",
                 "severity=critical", "--annotations", "summary=node down", "--format", "json"])
    assert code == 0
    assert '"matched_routes"' in capsys.readouterr().out


def test_serve_with_invalid_config_exits_1(tmp_path: Path) -> None:
    """`tocsin serve` with a bad config prints the problem and exits 1 (no traceback)."""
    config = tmp_path / "tocsin.yaml"
    config.write_text("listen: 127.0.0.1:9095\nsmtp:\n  prot: 25\n")
    result = _run(["serve", "--config", str(config)], cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown key 'smtp.prot' — did you mean 'port'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_unknown_env_variable_exits_1(tmp_path: Path) -> None:
    """A misspelt TOCSIN_ variable stops `serve` with a suggestion."""
    result = _run(["serve"], cwd=tmp_path, env={"TOCSIN_LISTN": "127.0.0.1:1"})
    assert result.returncode == 1
    assert "did you mean TOCSIN_LISTEN?" in result.stderr


def test_serve_with_broken_rules_exits_1_with_positions(tmp_path: Path) -> None:
    """`tocsin serve` refuses an invalid rule set, printing file:line:col, exit 1."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "routes.yaml").write_text("route:\n  audiences: [nobody]\n")
    result = _run(["serve"], cwd=tmp_path, env={"TOCSIN_LISTEN": "127.0.0.1:1"})
    assert result.returncode == 1
    assert "rules/routes.yaml:" in result.stderr


def test_python_dash_m_router_works(tmp_path: Path) -> None:
    """`python -m router version` is the same CLI."""
    result = _run(["version"], cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"tocsin {__version__}\n"


def _run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("TOCSIN_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60,
        check=False,
    )


def test_intake_retry_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin intake retry ID` and `--dead` turn dead-lettered intake rows back to unrouted."""
    import asyncio

    from router.fingerprint import fingerprint
    from router.models import Alert, IntakeRecord
    from router.store import SqliteStore

    db = tmp_path / "state.db"
    config = tmp_path / "tocsin.yaml"
    config.write_text(f"state_url: sqlite:///{db}\n")
    now = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

    async def setup() -> list[int]:
        store = SqliteStore(str(db))
        await store.start()
        records = [IntakeRecord(source="alertmanager", received_at=now, meta={}, alert=Alert(
            labels={"alertname": n}, annotations={}, status="firing", starts_at=now,
            ends_at=None, generator_url="", fingerprint=fingerprint({"alertname": n})))
            for n in ("A", "B")]
        ids = await store.append_intake(records)
        await store.dead_letter_intake([(i, "ZeroDivisionError: bug") for i in ids], now=now)
        assert (await store.counts())["intake_pending"] == 0
        await store.close()
        return sorted(ids)

    async def pending() -> int:
        store = SqliteStore(str(db))
        await store.start()
        try:
            return (await store.counts())["intake_pending"]
        finally:
            await store.close()

    first, second = asyncio.run(setup())
    assert main(["intake", "retry", str(first), "--config", str(config)]) == 0
    assert f"replayed 1 intake row: {first}" in capsys.readouterr().out
    assert asyncio.run(pending()) == 1
    assert main(["intake", "retry", str(first), "--config", str(config)]) == 1
    assert "not replayed" in capsys.readouterr().err
    assert main(["intake", "retry", "--dead", "--config", str(config)]) == 0
    assert f"replayed 1 intake row: {second}" in capsys.readouterr().out
    assert main(["intake", "retry", "--config", str(config)]) == 2


def _leaf_commands(parser: argparse.ArgumentParser,
                   path: tuple[str, ...]) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _leaf_commands(child, (*path, name))
    return found


def test_every_registered_command_has_a_handler() -> None:
    """Each command and command group of the tree was added through router.cli.base, so
    it runs a handler (a group without its subcommand answers a usage error, exit 2)."""
    missing = [" ".join(path) for path, parser in _leaf_commands(build_parser(), ())[1:]
               if parser.get_default("run") is None]
    assert missing == []


@pytest.mark.parametrize("group", ["rules", "deliveries", "intake", "push", "state"])
def test_a_group_without_its_subcommand_is_a_usage_error(
        group: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin GROUP` alone exits 2 and names the subcommands it expects."""
    assert main([group]) == EXIT_USAGE
    assert f"tocsin {group}: a subcommand is required" in capsys.readouterr().err
