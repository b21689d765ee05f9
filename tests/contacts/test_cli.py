"""``tocsin contacts check``: problems per row, a summary, the threshold, JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

from router.cli.contacts import check_command
from router.cli.main import main
from router.contacts import parse_threshold

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contacts"
BAD = str(FIXTURES / "bad-rows.csv")


def test_text_report_lists_every_bad_row_then_a_summary() -> None:
    """One line per problem, the summary, and exit 1 over the default 1%."""
    out = io.StringIO()
    assert check_command([BAD], out, region="FR") == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{BAD}:3: phone: invalid phone number")
    assert lines[-2] == (f"{BAD}: 11 row(s): 3 valid, 7 invalid (3 skipped), 1 duplicate(s); "
                         "reachable: email 5, sms 4")
    assert lines[-1] == f"{BAD}: error: 8 bad row(s) of 11, over --max-invalid 1%"


def test_a_raised_threshold_passes() -> None:
    """--max-invalid 8 (or 80%): the same file is accepted, its problems still listed."""
    for limit in ("8", "80%"):
        out = io.StringIO()
        assert check_command([BAD], out, region="FR", max_invalid=parse_threshold(limit)) == 0
        assert "error" not in out.getvalue()


def test_json_for_ci() -> None:
    """--format json: one document with every source, its counts and problems."""
    out = io.StringIO()
    code = check_command([BAD, str(FIXTURES / "no-id.csv")], out, region="FR", fmt="json")
    doc = json.loads(out.getvalue())
    assert code == 1 and doc["ok"] is False
    bad, no_id = doc["sources"]
    assert (bad["rows"], bad["valid"], bad["invalid"], bad["duplicates"]) == (11, 3, 7, 1)
    assert bad["reachable"] == {"email": 5, "sms": 4} and bad["over_threshold"] is True
    assert bad["problems"][4] == {"file": BAD, "line": 7, "column": "id", "why":
                                  "duplicate id 'c1' (first at line 2); the row is skipped",
                                  "skipped": True}
    assert no_id["error"].startswith("missing required column(s) id")


def test_the_command_is_registered() -> None:
    """tocsin contacts check PATH --region FR --max-invalid N runs through main."""
    assert main(["contacts", "check", BAD, "--region", "FR", "--max-invalid", "80%"]) == 0
    assert main(["contacts", "check", BAD, "--max-invalid", "lots"]) == 2
    assert main(["contacts"]) == 2
