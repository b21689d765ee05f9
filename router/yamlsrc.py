"""Read a YAML file a person wrote into plain Python values, keeping every node's position.

The one YAML path of Tocsin: rule files (:mod:`router.rules.loader`), rule test files
and the service config (:mod:`router.config.load`) are read here, so every error they
report points at ``file:line:col`` the same way.

PyYAML's composer gives nodes with line/column marks; we convert them ourselves instead
of using its constructor, for three reasons:

* positions: every value (and every mapping key) is recorded by its path, so a pydantic
  error location or a cross-reference check can point at ``file:line:col``;
* typing: YAML 1.1 turns ``2``, ``10:00`` and ``yes`` into int, sexagesimal int and bool.
  Rule files hold label values, so every scalar stays the exact string written (only a
  plain ``null``/``~``/empty value becomes ``None``); pydantic coerces ``"true"`` for the
  few boolean keys. The service config asks for ``typed=True``: scalars then take YAML's
  own types (``port: 2525`` is an int), as a YAML loader would give them;
* strictness: a key repeated in one mapping is an error (PyYAML keeps the last silently).

Merge keys (``<<: *anchor``) and aliases are supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from router.errors import Problem

__all__ = ["Mark", "SourceFile", "read_yaml"]

Path_ = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in a file, plus the scalar style (for column arithmetic)."""

    line: int
    col: int
    style: str | None = None  # None (plain), "'", '"', "|", ">"


@dataclass(slots=True)
class SourceFile:
    """A parsed rule file: its data, the positions of values and keys, its source lines."""

    path: str
    data: Any
    lines: list[str]
    values: dict[Path_, Mark] = field(default_factory=dict)
    keys: dict[Path_, Mark] = field(default_factory=dict)

    def mark(self, path: Path_, *, key: bool = False) -> Mark:
        """Best position for ``path``: the exact node, else its nearest recorded parent."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if key and p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), Mark(1, 1))

    def position(self, path: Path_) -> Mark | None:
        """Where ``path`` or its nearest recorded parent is written: the key of a mapping
        entry, the start of a list item; None when no part of ``path`` is in the file."""
        p = tuple(path)
        while p:
            mark = self.keys.get(p)
            if mark is None and isinstance(p[-1], int):
                mark = self.values.get(p)
            if mark is not None:
                return mark
            p = p[:-1]
        return None

    def problem(self, path: Path_, message: str, *, key: bool = False,
                severity: str = "error") -> Problem:
        """A Problem positioned at ``path`` (at its key when ``key``)."""
        m = self.mark(path, key=key)
        return Problem(self.path, m.line, m.col, message, severity)


def _mark(node: yaml.Node) -> Mark:
    style = getattr(node, "style", None)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1, style)


def read_yaml(path: str, text: str, *,
              typed: bool = False) -> tuple[SourceFile | None, list[Problem]]:
    """Parse ``text``; return the SourceFile, or None and the problems when it is not YAML.

    ``typed``: scalars take their YAML types (int, float, bool, timestamp) instead of
    staying the strings written.
    """
    src = SourceFile(path=path, data=None, lines=text.splitlines())
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = mark.column + 1 if mark else 0
        what = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark is not None:
            what += (f" ({exc.context} at line {exc.context_mark.line + 1}, column "
                     f"{exc.context_mark.column + 1})")
        return None, [Problem(path, line, col, f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, [Problem(path, 0, 0, f"invalid YAML: {exc}")]
    problems: list[Problem] = []
    if node is None:
        src.data = {}
        return src, problems
    scalars = yaml.constructor.SafeConstructor() if typed else None
    src.data = _convert(node, (), src, problems, set(), scalars)
    return src, problems


def _convert(node: yaml.Node, path: Path_, src: SourceFile, problems: list[Problem],
             active: set[int], scalars: yaml.constructor.SafeConstructor | None) -> Any:
    src.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and _NULL.match(node.value):
            return None
        if scalars is not None:
            return scalars.construct_object(node)
        return node.value
    if id(node) in active:  # a recursive alias; YAML allows it, rule files do not
        problems.append(Problem(src.path, *_pos(node), "recursive YAML alias"))
        return None
    active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_convert(item, (*path, i), src, problems, active, scalars)
                    for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        out: dict[str, Any] = {}
        seen: dict[str, Mark] = {}
        # Explicit keys win over merged ones, whatever their order.
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if isinstance(value_node, yaml.MappingNode):
                    merged.append(value_node)
                elif isinstance(value_node, yaml.SequenceNode):
                    merged.extend(v for v in value_node.value if isinstance(v, yaml.MappingNode))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(src.path, *_pos(key_node),
                                        "a key must be a plain string, not a list or mapping"))
                continue
            key = key_node.value
            km = _mark(key_node)
            if key in seen:
                first = seen[key]
                problems.append(Problem(src.path, km.line, km.col,
                                        f"duplicate key '{key}' (first defined at line "
                                        f"{first.line})"))
                continue
            seen[key] = km
            src.keys[(*path, key)] = km
            out[key] = _convert(value_node, (*path, key), src, problems, active, scalars)
        for m in merged:
            extra = _convert(m, (*path, "<<"), src, problems, active, scalars)
            if isinstance(extra, dict):
                for k, v in extra.items():
                    if k not in out:
                        out[k] = v
                        src.keys.setdefault((*path, k), src.keys.get((*path, "<<", k),
                                                                      _mark(m)))
        return out
    finally:
        active.discard(id(node))


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
