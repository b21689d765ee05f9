"""Turn pydantic validation errors into positioned Problems an SRE understands.

``loc`` paths are mapped back to YAML nodes (skipping pydantic's union tags), and the
wording is rewritten: ``unknown key 'chanels' — did you mean 'channels'?``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from router.errors import Problem
from router.yamlsrc import Path_, SourceFile

__all__ = ["did_you_mean", "forget_sources", "format_problem", "validation_problems"]


@lru_cache(maxsize=64)
def _source_lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def format_problem(problem: Problem) -> str:
    """``file:line:col: error: message`` plus the offending line and a caret."""
    text = str(problem)
    lines = _source_lines(problem.file) if problem.line and problem.excerpt else ()
    if 0 < problem.line <= len(lines):
        src = lines[problem.line - 1].expandtabs(1)
        caret = " " * max(problem.col - 1, 0) + "^"
        text += f"\n    {src}\n    {caret}"
    return text


def forget_sources() -> None:
    """Drop the source lines :func:`format_problem` cached (files may have changed)."""
    _source_lines.cache_clear()


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` — did you mean 'x'?`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _data_path(data: Any, loc: Sequence[str | int]) -> Path_:
    """Keep only the loc components that exist in the data (drops union tags)."""
    path: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, dict) and isinstance(part, str) and not path_is_tag(part):
            path.append(part)  # a missing or unknown key: keep it for the message
            cur = None
        # else: a union tag such as 'from_label' — skip
    return tuple(path)


_TAGS = frozenset({"fixed", "from_label", "str", "list[str]",
                   "ack_switch", "ack_policy"})  # router.rules.ack_policy.AckSetting


def path_is_tag(part: str) -> bool:
    """Pydantic inserts union member names into ``loc``; they are not YAML keys."""
    return part in _TAGS


def _unwrap(tp: Any) -> list[Any]:
    """The model classes reachable one level below a field annotation."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    if origin in (list, dict):
        return _unwrap(typing.get_args(tp)[-1])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _model_keys(root: type[BaseModel], loc: Sequence[str | int]) -> set[str]:
    """YAML keys accepted by the model found at ``loc`` (for "did you mean")."""
    models: list[type[BaseModel]] = [root]
    for part in loc:
        if not isinstance(part, str) or path_is_tag(part):
            continue
        nxt: list[type[BaseModel]] = []
        for model in models:
            for fname, finfo in model.model_fields.items():
                if (finfo.alias or fname) == part:
                    nxt.extend(_unwrap(finfo.annotation))
        if nxt:
            models = nxt
    keys: set[str] = set()
    for model in models:
        keys.update(finfo.alias or fname for fname, finfo in model.model_fields.items())
    return keys


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
}

_BOUND_WORDS = {
    "less_than_equal": "at most",
    "less_than": "less than",
    "greater_than_equal": "at least",
    "greater_than": "more than",
}


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'"


def validation_problems(
    exc: ValidationError,
    src: SourceFile,
    root: type[BaseModel],
    prefix: Path_ = (),
    data: Any = None,
) -> list[Problem]:
    """Map every pydantic error of ``exc`` to a positioned Problem in ``src``."""
    problems: list[Problem] = []
    base = src.data if data is None else data
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        rel = _data_path(base, loc)
        path = (*prefix, *rel)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(rel[-1]) if rel else "?"
            hint = did_you_mean(key, _model_keys(root, loc[:-1]))
            problems.append(src.problem(path, f"unknown key '{key}'{hint}", key=True))
        elif kind == "missing":
            key = str(rel[-1]) if rel else "?"
            problems.append(src.problem(path[:-1], f"missing required key '{key}'", key=True))
        elif kind in _TYPE_WORDS:
            problems.append(src.problem(
                path, f"expected {_TYPE_WORDS[kind]}, got {_describe(err.get('input'))}"))
        elif kind == "value_error":
            ctx = err.get("ctx") or {}
            problems.append(src.problem(path, str(ctx.get("error", err["msg"]))))
        elif kind == "literal_error":
            expected = str((err.get("ctx") or {}).get("expected", "")).replace("'", "")
            problems.append(src.problem(
                path, f"expected {expected}, got {_describe(err.get('input'))}"))
        elif kind in _BOUND_WORDS:
            bound = next(iter((err.get("ctx") or {}).values()), "?")
            problems.append(src.problem(
                path, f"must be {_BOUND_WORDS[kind]} {bound}, got {_describe(err.get('input'))}"))
        elif kind == "too_short":
            problems.append(src.problem(path, "must not be empty"))
        elif kind == "string_too_short":
            problems.append(src.problem(path, "must not be an empty string"))
        else:
            problems.append(src.problem(path, err["msg"]))
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[int, int, str]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (p.line, p.col, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
