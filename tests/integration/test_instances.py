"""Two instances on one PostgreSQL with different rule sets say so; the same rules agree."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services.http import request, wait_until
from tests.services.postgres import fresh_database_url
from tests.services.smtp import SmtpServer
from tests.services.tocsin import REPO, TocsinProcess

pytestmark = pytest.mark.integration


def test_a_differing_rule_set_shows_in_readyz_metrics_and_logs(
    tmp_path: Path, smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """b's rules differ by one comment: both report the mismatch (still ready), each
    logs it once; a copy of the same files elsewhere agrees."""
    url = fresh_database_url()
    edited, same = tmp_path / "edited-rules", tmp_path / "same-rules"
    shutil.copytree(REPO / "rules", edited)
    shutil.copytree(REPO / "rules", same)
    routes = edited / "routes.yaml"
    routes.write_text(routes.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    procs = {}
    for name, rules in (("a", REPO / "rules"), ("b", edited), ("c", same)):
        workdir = tmp_path / name
        workdir.mkdir()
        procs[name] = tocsin_factory(
            smtp_port=smtp_server.port, workdir=workdir, rules=[str(rules)],
            extra={"state_url": url,
                   "instance": {"id": f"tocsin-{name}", "heartbeat_s": 0.5}}).start()

    def mismatch(name: str) -> float | None:
        return procs[name].metric("tocsin_rules_hash_mismatch")

    wait_until(lambda: mismatch("a") == 1 and mismatch("b") == 2 and mismatch("c") == 1,
               what="the rule sets compared")
    code, ready = request("GET", f"{procs['a'].url}/readyz")
    assert code == 200, ready
    assert "tocsin-b (" in ready["instance"]["rules_mismatch"]
    assert "tocsin-c" not in ready["instance"]["rules_mismatch"]  # same files, elsewhere
    for name in ("a", "b"):
        assert procs[name].log().count("instances.rules_mismatch") >= 1
