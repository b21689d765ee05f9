"""Read a contact source (CSV or YAML list) into contacts, with a process-wide cache.

CSV: UTF-8 with or without a BOM, a header line (``id`` and ``name`` required, and
``email`` and/or ``phone``; optional ``locale``, ``timezone``, ``channels``,
``quiet_hours``, ``tags``; any other column is an attribute), ``;`` or ``,`` as the
separator, whichever the header line has more of. YAML (``.yaml``/``.yml``): a list of
mappings with the same keys, read by :mod:`router.yamlsrc` (positions per item).

A file-level fault (unreadable, not UTF-8, no header, a required column missing, not a
list) makes the whole source unusable: :attr:`LoadedSource.error`. The rule loader keeps
the rules in force then, as for a broken rule file.

:func:`read_source` caches what it read by ``(path, inode, size, mtime_ns)`` and the
read options, the latest version per path and options, at most :data:`CACHE_ENTRIES`
sources: a rule reload that does not touch a contact file does not read it again.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.contacts.rows import STANDARD_COLUMNS, RowBuilder, RowProblem, SourceOptions
from router.models import Contact
from router.yamlsrc import read_yaml

__all__ = ["CACHE_ENTRIES", "FileIdentity", "LoadedSource", "cache_stats", "clear_cache",
           "load_source", "read_source"]

#: How many parsed sources the process keeps (the latest version of each).
CACHE_ENTRIES = 64
#: (inode, size, mtime_ns) of a file as it was read.
FileIdentity = tuple[int, int, int]
_DEFAULTS = SourceOptions()
_REQUIRED = ("id", "name")
_ADDRESSES = ("email", "phone")


@dataclass(frozen=True, slots=True)
class LoadedSource:
    """One contact source as read: its contacts (with their lines), counts, problems."""

    path: str
    identity: FileIdentity
    loaded_at: datetime
    contacts: tuple[Contact, ...] = ()
    lines: array[int] = field(default_factory=lambda: array("I"))
    columns: tuple[str, ...] = ()  # every column (standard ones and attributes)
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    unreachable: int = 0
    reachable: tuple[tuple[str, int], ...] = ()
    problems: tuple[RowProblem, ...] = ()
    error: str | None = None  # the whole source is unusable
    error_line: int = 0

    @property
    def bad_rows(self) -> int:
        """Rows with a problem: invalid ones and duplicates (what thresholds count)."""
        return self.invalid + self.duplicates


def _identity(path: Path) -> FileIdentity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


_lock = threading.Lock()
_cache: OrderedDict[tuple[str, SourceOptions], LoadedSource] = OrderedDict()
_stats = {"hits": 0, "reads": 0}


def read_source(path: str | Path, options: SourceOptions = _DEFAULTS) -> LoadedSource:
    """:func:`load_source`, from the cache when the file has not changed."""
    p = Path(path)
    key = (os.path.abspath(p), options)
    ident = _identity(p)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and ident is not None and cached.identity == ident:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return cached
    loaded = load_source(p, options)
    if loaded.identity != (0, -1, 0):
        with _lock:
            _cache[key] = loaded
            _cache.move_to_end(key)
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return loaded


def cache_stats() -> dict[str, int]:
    """Hits and reads of :func:`read_source` so far (tests, benchmarks)."""
    with _lock:
        return dict(_stats)


def clear_cache() -> None:
    """Forget every cached source."""
    with _lock:
        _cache.clear()


def load_source(path: str | Path, options: SourceOptions = _DEFAULTS) -> LoadedSource:
    """Read and validate one contact file (no cache)."""
    p = Path(path)
    name = str(p)
    now = datetime.now(UTC)
    ident = _identity(p)
    with _lock:
        _stats["reads"] += 1
    if ident is None:
        return LoadedSource(name, (0, -1, 0), now, error="no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        return LoadedSource(name, ident, now, error=f"cannot read: {exc.strerror}")
    # The identity of what was read: a write racing the read shows up on the next stat.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return LoadedSource(name, ident, now, error=f"not UTF-8 text ({exc.reason})",
                            error_line=line)
    if p.suffix.lower() in (".yaml", ".yml"):
        return _from_yaml(name, ident, now, text, options)
    return _from_csv(name, ident, now, text, options)


def _result(name: str, ident: FileIdentity, now: datetime, columns: tuple[str, ...],
            b: RowBuilder) -> LoadedSource:
    return LoadedSource(
        name, ident, now, contacts=tuple(b.contacts), lines=b.lines, columns=columns,
        rows=b.rows, valid=b.valid, invalid=b.invalid, duplicates=b.duplicates,
        unreachable=b.unreachable, reachable=tuple(sorted(b.reachable.items())),
        problems=tuple(b.problems))


def _missing_columns(columns: set[str]) -> str | None:
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        return (f"missing required column(s) {', '.join(missing)} (a contact file needs "
                "id, name and email and/or phone)")
    if not any(c in columns for c in _ADDRESSES):
        return "no 'email' nor 'phone' column: a contact needs an address"
    return None


def _from_csv(name: str, ident: FileIdentity, now: datetime, text: str,
              options: SourceOptions) -> LoadedSource:
    first = text.split("\n", 1)[0]
    if not first.strip():
        return LoadedSource(name, ident, now, error="no header line (the first line names "
                            "the columns: id,name,email,phone,...)", error_line=1)
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header = [h.strip() for h in next(reader)]
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        col = h.lower() if h.lower() in STANDARD_COLUMNS else h
        if not col:
            return LoadedSource(name, ident, now, error=f"column {i + 1} of the header has "
                                "no name", error_line=1)
        if col in index:
            return LoadedSource(name, ident, now, error=f"column '{col}' is named twice in "
                                "the header", error_line=1)
        index[col] = i
    missing = _missing_columns(set(index))
    if missing:
        return LoadedSource(name, ident, now, error=missing, error_line=1)
    attributes = tuple(c for c in index if c not in STANDARD_COLUMNS)
    attr_at = [index[c] for c in attributes]
    absent = width = len(header)
    std_at = [index.get(c, absent) for c in STANDARD_COLUMNS]
    b = RowBuilder(name, options, attributes)
    previous = reader.line_num
    for row in reader:
        line = previous + 1
        previous = reader.line_num
        size = len(row)
        if size <= 1 and not (row and row[0].strip()):
            continue  # a blank line
        if size > width:
            b.rows += 1
            b.invalid += 1
            b.unreachable += 1
            b.problems.append(RowProblem(name, line, "row", f"{size} fields but the "
                                         f"header has {width} (a separator inside an "
                                         "unquoted value?); the row is skipped", True))
            continue
        if size < width:
            row += [""] * (width - size)
        row.append("")
        b.add(line, [row[i].strip() or None for i in std_at],
              [row[i].strip() for i in attr_at])
    return _result(name, ident, now, tuple(index), b)


def _from_yaml(name: str, ident: FileIdentity, now: datetime, text: str,
               options: SourceOptions) -> LoadedSource:
    src, problems = read_yaml(name, text)
    if src is None or problems:
        first = problems[0] if problems else None
        return LoadedSource(name, ident, now, error=first.message if first else "invalid YAML",
                            error_line=first.line if first else 0)
    if src.data == {}:
        src.data = []
    if not isinstance(src.data, list):
        return LoadedSource(name, ident, now, error="a YAML contact file is a list of "
                            "contacts (- id: ..., name: ..., email: ...)", error_line=1)
    items: list[dict[str, Any]] = [i if isinstance(i, dict) else {} for i in src.data]
    columns: dict[str, None] = {}
    for item in items:
        for k in item:
            columns.setdefault(k.lower() if k.lower() in STANDARD_COLUMNS else k)
    attributes = tuple(c for c in columns if c not in STANDARD_COLUMNS)
    b = RowBuilder(name, options, attributes)
    for i, item in enumerate(src.data):
        line = src.mark((i,)).line
        if not isinstance(item, dict):
            b.rows += 1
            b.invalid += 1
            b.unreachable += 1
            b.problems.append(RowProblem(name, line, "row", "a contact is a mapping (id: ..., "
                                         "name: ...); the item is skipped", True))
            continue
        fields = {(k.lower() if k.lower() in STANDARD_COLUMNS else k): v
                  for k, v in item.items()}
        nested = [k for k, v in fields.items() if isinstance(v, dict | list)
                  and k not in ("channels", "tags")]
        for k in nested:
            b.problems.append(RowProblem(name, line, k, "expected a text value; left out"))
            fields[k] = None
        b.add(line, [_text(fields.get(c)) for c in STANDARD_COLUMNS],
              [_text(fields.get(a)) or "" for a in attributes])
    return _result(name, ident, now, tuple(columns), b)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    text = str(value).strip()
    return text or None
