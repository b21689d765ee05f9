"""The rule commands behind ``tocsin rules check`` and ``tocsin rules test --labels``.

The service's argparse CLI parses arguments and calls these; they write to ``out`` and
return the exit status (0 ok, 1 errors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal, TextIO

from router.errors import Problem, RuleError
from router.rules.explain import explain_alert, format_text
from router.rules.loader import load_rules
from router.rules.ruleset import RuleSet

__all__ = ["check_command", "explain_command", "format_problem"]


@lru_cache(maxsize=64)
def _source_lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def format_problem(problem: Problem) -> str:
    """``file:line:col: error: message`` plus the offending line and a caret."""
    text = str(problem)
    lines = _source_lines(problem.file) if problem.line else ()
    if 0 < problem.line <= len(lines):
        src = lines[problem.line - 1].expandtabs(1)
        caret = " " * max(problem.col - 1, 0) + "^"
        text += f"\n    {src}\n    {caret}"
    return text


def _print_problems(problems: Sequence[Problem], out: TextIO) -> None:
    _source_lines.cache_clear()
    for p in problems:
        out.write(format_problem(p) + "\n")


def _load(paths: Sequence[str], out: TextIO) -> RuleSet | None:
    try:
        rules = load_rules(paths)
    except RuleError as exc:
        _print_problems(exc.problems, out)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        warnings = len(exc.problems) - errors
        out.write(f"{errors} error(s), {warnings} warning(s)\n")
        return None
    _print_problems(rules.warnings, out)
    return rules


def check_command(paths: list[str], out: TextIO) -> int:
    """Validate rule files; print every problem (errors and warnings). 0 ok, 1 errors."""
    rules = _load(paths, out)
    if rules is None:
        return 1
    out.write(
        f"ok: {len(rules.source_files)} file(s), {len(rules.routes)} route(s), "
        f"{len(rules.audiences)} audience(s), {len(rules.templates)} template(s), "
        f"{len(rules.warnings)} warning(s)\n"
    )
    return 0


def explain_command(
    paths: list[str],
    labels: dict[str, str],
    annotations: dict[str, str],
    fmt: Literal["text", "json"],
    out: TextIO,
) -> int:
    """Explain how one alert is routed and rendered. 0 ok, 1 invalid rules or render error."""
    rules = _load(paths, out) if fmt == "text" else _load_quiet(paths, out)
    if rules is None:
        return 1
    doc = explain_alert(rules, labels, annotations)
    if fmt == "json":
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(format_text(doc))
    return 1 if _has_render_error(doc) else 0


def _load_quiet(paths: Sequence[str], out: TextIO) -> RuleSet | None:
    """Load for JSON output: problems go out as one JSON document on failure."""
    try:
        return load_rules(paths)
    except RuleError as exc:
        out.write(json.dumps({"errors": [
            {"file": p.file, "line": p.line, "col": p.col, "severity": p.severity,
             "message": p.message} for p in exc.problems]}, indent=2, ensure_ascii=False)
            + "\n")
        return None


def _has_render_error(doc: Mapping[str, object]) -> bool:
    routes = doc.get("matched_routes")
    if not isinstance(routes, list):
        return False
    for r in routes:
        for rec in r["recipients"]:
            for ch in rec["channels"]:
                for msg in ch.get("messages", {}).values():
                    if "error" in msg:
                        return True
    return False
