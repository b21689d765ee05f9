"""The loaded, validated, compiled rule set (immutable once built)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from router.errors import Problem
from router.models import Alert, Contact, Phase, RenderedMessage, RouteDecision
from router.rules.incident_rules import IncidentRules
from router.rules.render_cache import RenderCache
from router.rules.templates import CompiledTemplate, RenderError, build_context, render_message
from router.rules.tree import Route, Trace, evaluate
from router.rules.view import NOT_REQUESTED, AckView, IncidentView, StormItem
from router.sms import SmsOverflowError

__all__ = ["RULES_HASH_CHARS", "Audience", "ContactSourceReport", "RuleSet", "rules_hash"]

#: Hex digits kept of the SHA-256 of the rule files (:func:`rules_hash`).
RULES_HASH_CHARS = 16


@dataclass(frozen=True, slots=True)
class ContactSourceReport:
    """What loading one contact source (``contacts_from`` file) found.

    ``problems`` are one-line texts ``file:line: column: why`` (personal data masked);
    ``reachable`` counts the valid contacts per channel.
    """

    path: str
    loaded_at: datetime
    rows: int
    valid: int
    invalid: int
    duplicates: int
    reachable: tuple[tuple[str, int], ...] = ()
    problems: tuple[str, ...] = ()
    #: Invalid rows that became no contact (no id, no usable address).
    unreachable: int = 0
    #: Contacts of the file the audience takes (after its ``select``).
    selected: int = 0


@dataclass(frozen=True, slots=True)
class Audience:
    """A named group of contacts: inline ones and those of its ``contacts_from`` sources
    (``sources`` reports each load; empty for an audience written inline only)."""

    name: str
    contacts: tuple[Contact, ...]
    description: str | None = None
    sources: tuple[ContactSourceReport, ...] = ()


def rules_hash(files: Sequence[tuple[str, str]]) -> str:
    """The content hash of a rule set: SHA-256 over ``(file name, text)`` in load order.

    File names without their folder, so that instances mounting the same files under
    different paths agree; the first :data:`RULES_HASH_CHARS` hex digits.
    """
    digest = hashlib.sha256()
    for name, text in files:
        for part in (name, text):
            data = part.encode("utf-8", "surrogateescape")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.hexdigest()[:RULES_HASH_CHARS]


class RuleSet:
    """Routing rules compiled once: evaluate alerts to decisions, render messages.

    Build it with :func:`router.rules.load_rules`; it never changes afterwards, so a
    running service can swap rule sets atomically by replacing the reference.
    """

    def __init__(
        self,
        *,
        root: Route,
        audiences: Mapping[str, Audience],
        templates: Mapping[str, CompiledTemplate],
        default_locale: str,
        default_timezone: str,
        source_files: tuple[Path, ...],
        warnings: list[Problem],
        incident: IncidentRules | None = None,
        content_hash: str = "",
        contact_files: tuple[tuple[str, int, int, int], ...] = (),
    ) -> None:
        self.root = root
        self.audiences: Mapping[str, Audience] = audiences
        self.templates: Mapping[str, CompiledTemplate] = templates
        self.default_locale = default_locale
        self.default_timezone = default_timezone
        self.source_files = source_files
        #: The contact files of the audiences as read: (path, inode, size, mtime_ns).
        self.contact_files = contact_files
        self.warnings = warnings
        #: Time intervals, quiet hours, inhibition rules and storm control.
        self.incident = incident if incident is not None else IncidentRules()
        #: :func:`rules_hash` of the files it was loaded from: instances compare it.
        self.content_hash = content_hash
        self._routes = {r.route_id: r for r in root.walk()}
        self._positions = {r.position: r for r in self._routes.values()}
        self._renders = RenderCache()

    @property
    def routes(self) -> Mapping[str, Route]:
        """Every route by route_id, in pre-order."""
        return self._routes

    def route_at(self, position: str) -> Route | None:
        """The route at ``position`` in the tree (``root/1/0``), if any."""
        return self._positions.get(position)

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        """One RouteDecision per matched route, in Alertmanager order. Pure and fast."""
        return [r.decide(labels) for r in evaluate(self.root, labels)]

    def evaluate_naive(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        """Same result as :meth:`evaluate` without the child indexes (reference/benchmark)."""
        return [r.decide(labels) for r in evaluate(self.root, labels, indexed=False)]

    def explain(self, labels: Mapping[str, str]) -> tuple[list[Trace], list[RouteDecision]]:
        """The walk through the tree (one Trace per visited or skipped node) and decisions.

        Uses the same evaluator as :meth:`evaluate` (with a tracer), so the explanation
        cannot drift from the real behaviour.
        """
        traces: list[Trace] = []
        matched = evaluate(self.root, labels, tracer=traces.append)
        return traces, [r.decide(labels) for r in matched]

    def render(
        self,
        decision: RouteDecision,
        alert: Alert,
        contact: Contact,
        channel: str,
        phase: Phase,
        meta: Mapping[str, str],
        *,
        incident: IncidentView | None = None,
        storm: tuple[StormItem, ...] = (),
        ack: AckView = NOT_REQUESTED,
    ) -> RenderedMessage:
        """Render ``decision.template`` for ``channel`` in the contact's locale.

        The template is ``<template>.<phase>`` when the rule set has it with messages for
        ``channel`` (``outage.reminder``), else ``<template>`` itself, rendered with
        ``phase`` set (every phase, acknowledgement phases included, falls back that way).
        Locale order: the contact's locale, its language (``fr`` for ``fr-CA``), the
        template's ``fallback_locale``, then the rule set's default locale. ``ack``: what
        the notice asks of the contact (router/rules/view.py). Raises RenderError when
        rendering fails.
        """
        # A lifecycle variant (`outage.resolved`) wins over the base template (`outage`).
        template = self.templates.get(f"{decision.template}.{phase}")
        if template is None or channel not in template.channels:
            template = self.templates.get(decision.template)
        if template is None:
            raise RenderError(f"unknown template '{decision.template}'")
        locale, message = template.pick(channel, contact.locale, self.default_locale)

        def make() -> RenderedMessage:
            context = build_context(decision, alert, contact, phase, meta, locale,
                                    incident=incident, storm=storm, ack=ack)
            rendered = render_message(template, message, context)
            if channel == "sms" and template.sms_policy is not None:
                rendered = _fit_sms(template, locale, rendered)
            return rendered

        # Recipients who would see the same message share one render (render_cache.py).
        return self._renders.render(message, channel, locale, phase, contact, ack,
                                    (decision, alert, meta, incident, storm), make)


def _fit_sms(template: CompiledTemplate, locale: str,
             rendered: RenderedMessage) -> RenderedMessage:
    """Apply the template's ``sms_policy`` (router/rules/sms_policy.py) to its SMS."""
    assert template.sms_policy is not None
    try:
        return replace(rendered, text=template.sms_policy.fit(rendered.text))
    except SmsOverflowError as exc:
        raise RenderError(
            f"the SMS of template '{template.name}' ({locale}) needs {exc.info.segments} "
            f"parts ({exc.info.encoding}, {exc.info.units} units) but its sms_policy allows "
            f"at most {exc.max_segments} (overflow: fail)") from None
