"""`tocsin rules import-alertmanager`: outputs, report on stderr, exit statuses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from router.cli import main
from router.cli.rules import check_command

CONFIGS = Path(__file__).parent / "am_configs"
SIMPLE = CONFIGS / "alertmanager__doc-examples-simple.yml"


def test_prints_rules_to_stdout_and_report_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Without -o the rule file goes to stdout and the report to stderr; exit 0."""
    assert main(["rules", "import-alertmanager", str(SIMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Imported from ") and "\nroute:\n" in out
    assert f"{SIMPLE}:110: not imported: receiver 'team-X-pager': pagerduty_configs" in err
    assert err.endswith("5 receiver(s) became audiences\n")


def test_header_names_a_long_source_path_on_its_first_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """However long the source path, the first line is `# Imported from PATH`."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / "alertmanager.yml"
    deep.parent.mkdir(parents=True)
    deep.write_text(SIMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["rules", "import-alertmanager", str(deep)]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0] == f"# Imported from {deep}"


def test_writes_output_file_that_passes_check(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """-o writes the rule file (stdout stays empty); `tocsin rules check` accepts it."""
    target = tmp_path / "routes.yaml"
    assert main(["rules", "import-alertmanager", str(SIMPLE), "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"wrote {target}" in err
    assert main(["rules", "check", str(target)]) == 0


def test_no_template_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--no-template leaves the template out: the file checks with the shipped library."""
    target = tmp_path / "routes.yaml"
    assert main(["rules", "import-alertmanager", str(SIMPLE), "--no-template", "-o",
                 str(target)]) == 0
    assert "templates:" not in target.read_text(encoding="utf-8")
    shipped = Path(__file__).parents[2] / "rules" / "templates.yaml"
    capsys.readouterr()
    assert check_command([str(target), str(shipped)], io.StringIO()) == 0


def test_invalid_config_exits_1_with_positioned_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid Alertmanager config: file:line:col, the line, a caret; nothing written."""
    bad = tmp_path / "am.yml"
    bad.write_text("route:\n  receiver: pager\nreceivers:\n  - name: page\n", encoding="utf-8")
    target = tmp_path / "out.yaml"
    assert main(["rules", "import-alertmanager", str(bad), "-o", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and not target.exists()
    assert (f"{bad}:2:13: error: undefined receiver 'pager' used in route — did you mean "
            "'page'?\n      receiver: pager\n") in err
    assert "not a valid Alertmanager configuration" in err


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable input is a failure (1), not a crash."""
    assert main(["rules", "import-alertmanager", str(tmp_path / "nope.yml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """No input file is a usage error (2); --help shows an example and exits 0."""
    assert main(["rules", "import-alertmanager"]) == 2
    capsys.readouterr()
    assert main(["rules", "import-alertmanager", "--help"]) == 0
    assert "tocsin rules import-alertmanager /etc/alertmanager/alertmanager.yml" in (
        capsys.readouterr().out)
