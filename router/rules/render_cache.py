"""Renders shared by the recipients of one notice.

A notice to an audience renders one message per (recipient, channel), but most recipients
of one audience see the same message: the incident, the alert, the phase and the route
are the flush's, and what differs per recipient is only what the template reads of them.
:class:`RenderCache` keys a render on exactly that — the compiled message (template,
channel, picked locale), the recipient's time zone (the ``date`` filter reads it), the
recipient fields the template references (``recipient.id`` / ``recipient.name``,
:func:`router.rules.template_fields.per_recipient_reads`), the ``ack`` field when it is
read, and the identity of the flush's objects (decision, alert, meta, incident view,
storm list). A template whose output is not a function of those (random filters, other
templates, the recipient object passed whole) is never cached. The planner shares one
incident view among the recipients that see the same one, so a 100,000-recipient flush
with a template that does not greet by name renders a few messages per locale.

The flush's objects are held by the entry (their identities cannot be reused while it
lives) and compared on a hit. The cache is bounded (cleared when full), per rule set,
and safe to use from the render threads (router/flush_offload.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from router.models import Contact, RenderedMessage, RouteDecision
from router.rules.templates import CompiledMessage

__all__ = ["RenderCache"]

_MAX_ENTRIES: Final = 4096


class RenderCache:
    """Rendered messages keyed by what their template reads (see the module docstring)."""

    __slots__ = ("_entries", "_lock", "hits", "max_entries", "misses")

    def __init__(self, max_entries: int = _MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[CompiledMessage, tuple[object, ...],
                                            RenderedMessage]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def render(self, message: CompiledMessage, channel: str, locale: str, phase: str,
               contact: Contact, ack: Hashable,
               held: tuple[RouteDecision, object, Mapping[str, str], object, object],
               make: Callable[[], RenderedMessage]) -> RenderedMessage:
        """The message ``make`` renders, from the cache when an equal render was made.

        ``held``: the flush's objects the render reads (decision, alert, meta, incident
        view, storm list), keyed by identity."""
        reads = message.reads
        if reads is None:
            return make()
        key: tuple[Any, ...] = (
            id(message), channel, locale, phase, contact.timezone,
            contact.id if "id" in reads else None,
            contact.name if "name" in reads else None,
            ack if "ack" in reads else None,
            *(id(obj) for obj in held))
        try:
            with self._lock:
                found = self._entries.get(key)
        except TypeError:  # an unhashable ack value: not cached
            return make()
        if (found is not None and found[0] is message
                and all(a is b for a, b in zip(found[1], held, strict=True))):
            self.hits += 1
            return found[2]
        rendered = make()  # a failure is raised, never cached
        with self._lock:
            self.misses += 1
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (message, held, rendered)
        return rendered
