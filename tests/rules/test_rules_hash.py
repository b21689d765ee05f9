"""The rule-set content hash: what instances compare to agree they run the same rules."""

from __future__ import annotations

import shutil
from pathlib import Path

from router.rules import load_rules
from router.rules.ruleset import RULES_HASH_CHARS, rules_hash

REPO = Path(__file__).resolve().parents[2]


def test_same_files_in_another_folder_give_the_same_hash(tmp_path: Path) -> None:
    """The hash depends on file names and contents, not on where they are mounted."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(REPO / "rules", copy)
    here, there = load_rules([REPO / "rules"]), load_rules([copy])
    assert here.content_hash == there.content_hash
    assert len(here.content_hash) == RULES_HASH_CHARS


def test_a_changed_file_changes_the_hash(tmp_path: Path) -> None:
    """One edited character in one file gives another hash."""
    copy = tmp_path / "rules"
    shutil.copytree(REPO / "rules", copy)
    before = load_rules([copy]).content_hash
    first = sorted(copy.glob("*.yaml"))[0]
    first.write_text(first.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert load_rules([copy]).content_hash != before


def test_names_and_texts_are_delimited() -> None:
    """Moving text between a file name and its content, or between files, is a change."""
    assert rules_hash([("a", "bc")]) != rules_hash([("ab", "c")])
    assert rules_hash([("a", "x"), ("b", "y")]) != rules_hash([("a", "xb"), ("", "y")])
