"""The documented attributes of the template context objects, checked at load time.

``{{ alert.oops }}`` or ``{{ incident.etaa }}`` would otherwise only fail when a message
is rendered, in the middle of an incident. Every attribute read directly on a context
object (``alert``, ``route``, ``recipient``, ``incident``, ``ack``, and the items of
``incident.alerts`` & co. in a ``for`` loop) is checked against the documented fields;
mappings (``alert.labels``, ``meta``, ...) accept any key, as documented.
"""

from __future__ import annotations

import dataclasses

from jinja2 import nodes

__all__ = ["CONTEXT_ATTRIBUTES", "RECIPIENT_FIELDS", "per_recipient_reads", "unknown_attribute"]

_ALERT = frozenset({"labels", "annotations", "status", "starts_at", "ends_at",
                    "fingerprint", "generator_url"})


def _incident_fields() -> frozenset[str]:
    from router.rules.view import IncidentView

    return frozenset(f.name for f in dataclasses.fields(IncidentView))


def _ack_fields() -> frozenset[str]:
    from router.rules.view import AckView

    return frozenset(f.name for f in dataclasses.fields(AckView))


#: Context object → the attributes a template may read from it.
CONTEXT_ATTRIBUTES: dict[str, frozenset[str]] = {
    "alert": _ALERT,
    "route": frozenset({"id", "name"}),
    "recipient": frozenset({"id", "name", "locale", "timezone", "attributes", "tags"}),
    "incident": _incident_fields(),
    "ack": _ack_fields(),
}
#: ``incident.<list>`` whose items are alerts (their loop variables are checked too).
_ALERT_LISTS = frozenset({"alerts", "firing", "resolved", "new"})


def _loop_alert_names(tree: nodes.Template) -> dict[str, str]:
    """Loop variables bound to the items of ``incident.alerts`` (and co.): name → 'alert'."""
    names: dict[str, str] = {}
    for loop in tree.find_all(nodes.For):
        it, target = loop.iter, loop.target
        if (isinstance(it, nodes.Getattr) and isinstance(it.node, nodes.Name)
                and it.node.name == "incident" and it.attr in _ALERT_LISTS
                and isinstance(target, nodes.Name)):
            names[target.name] = "alert"
    return names


def unknown_attribute(tree: nodes.Template) -> tuple[str, str, int] | None:
    """The first undocumented ``object.attribute`` read: (object, attribute, line)."""
    aliases = _loop_alert_names(tree)
    for node in tree.find_all(nodes.Getattr):
        base = node.node
        if not isinstance(base, nodes.Name):
            continue
        kind = aliases.get(base.name, base.name)
        allowed = CONTEXT_ATTRIBUTES.get(kind)
        if allowed is not None and node.attr not in allowed:
            return base.name, node.attr, node.lineno
    return None


#: The recipient's fields a cached render may be keyed on (every other one is refused).
RECIPIENT_FIELDS: frozenset[str] = frozenset({"id", "name", "locale", "timezone"})
# What makes a render not a function of its context: random output, other templates.
_UNCACHEABLE_FILTERS = frozenset({"random", "shuffle"})
_UNCACHEABLE_NAMES = frozenset({"lipsum", "cycler", "joiner"})
_OTHER_TEMPLATES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


def per_recipient_reads(tree: nodes.Template) -> frozenset[str] | None:
    """What of one recipient a template's output depends on, beyond the fields every
    render is keyed on anyway (the picked locale and the recipient's time zone, which the
    ``date`` and ``duration`` filters read): ``recipient.id`` / ``recipient.name`` as
    ``id`` / ``name``, and ``ack`` (per-recipient links). None: the output is not a pure
    function of what can be keyed (random filters, other templates, the recipient object
    used otherwise than by reading one of its documented fields), so it is never cached.
    """
    if any(True for _ in tree.find_all(_OTHER_TEMPLATES)):
        return None
    for used in tree.find_all(nodes.Filter):
        if used.name in _UNCACHEABLE_FILTERS:
            return None
    reads: set[str] = set()
    attribute_bases: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, (nodes.Getattr, nodes.Getitem))
        base = node.node
        if not (isinstance(base, nodes.Name) and base.name == "recipient"):
            continue
        if isinstance(node, nodes.Getattr):
            field = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            field = node.arg.value
        else:
            return None  # recipient[some_expression]
        if field not in RECIPIENT_FIELDS:
            return None
        attribute_bases.add(id(base))
        if field in ("id", "name"):
            reads.add(field)
    for name in tree.find_all(nodes.Name):
        if name.name in _UNCACHEABLE_NAMES:
            return None
        if name.name == "recipient" and id(name) not in attribute_bases:
            return None  # passed whole (to a macro, a {% set %}, a filter...)
        if name.name == "ack":
            reads.add("ack")
    return frozenset(reads)
