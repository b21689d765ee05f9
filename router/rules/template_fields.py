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

__all__ = ["CONTEXT_ATTRIBUTES", "unknown_attribute"]

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
