"""Contact sources: customer and staff lists kept apart from the routing rules.

Pure: files in, contacts and a report out; no store, no HTTP. ``sources`` reads CSV and
YAML lists (with a process-wide cache), ``rows`` validates each row (phones to E.164 per
region, e-mails, locales, IANA time zones, duplicate ids), ``select`` takes a segment by
attributes, ``threshold`` says when a source has too many bad rows. The rule loader
(``router/rules/loader.py``) and ``tocsin contacts check`` use them.
"""

from __future__ import annotations

from router.contacts.rows import STANDARD_COLUMNS, RowProblem, SourceOptions
from router.contacts.select import SELECTABLE_FIELDS, select_contacts
from router.contacts.sources import (
    LoadedSource,
    cache_stats,
    clear_cache,
    load_source,
    read_source,
)
from router.contacts.threshold import DEFAULT_MAX_INVALID, Threshold, parse_threshold

__all__ = ["DEFAULT_MAX_INVALID", "SELECTABLE_FIELDS", "STANDARD_COLUMNS", "LoadedSource",
           "RowProblem", "SourceOptions", "Threshold", "cache_stats", "clear_cache",
           "load_source", "parse_threshold", "read_source", "select_contacts"]
