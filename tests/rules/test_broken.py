"""Every broken rule file in tests/rules/broken reports exactly the expected problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import RuleError
from router.rules import load_rules

BROKEN = Path(__file__).parent / "broken"
CASES = sorted(p.stem for p in BROKEN.glob("*.expected"))


def test_every_case_has_an_input() -> None:
    """Each NAME.expected has a NAME.yaml or NAME/ next to it (no stale expectations)."""
    for name in CASES:
        assert (BROKEN / f"{name}.yaml").is_file() or (BROKEN / name).is_dir(), name


@pytest.mark.parametrize("name", CASES)
def test_broken_case(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_rules reports exactly the lines of NAME.expected (file:line:col: sev: message)."""
    monkeypatch.chdir(BROKEN)
    target = f"{name}.yaml" if (BROKEN / f"{name}.yaml").is_file() else name
    expected = [line for line in (BROKEN / f"{name}.expected").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    only_warnings = all(": warning: " in line for line in expected)
    if only_warnings:
        rules = load_rules([target])
        got = [str(p) for p in rules.warnings]
    else:
        with pytest.raises(RuleError) as info:
            load_rules([target])
        got = [str(p) for p in info.value.problems]
    assert got == expected
