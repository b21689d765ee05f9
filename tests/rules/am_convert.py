"""Test helper: convert an Alertmanager config's route tree into a Tocsin rule file.

Receivers become audiences (one placeholder contact each), ``receiver`` becomes
``audiences: [name]``; ``match``, ``match_re``, ``matchers``, ``continue``, ``group_by``
and ``routes`` are copied with every scalar kept as the exact string written (so
``test: 2`` stays ``"2"``, as in Alertmanager). Timers, time intervals and route
``labels`` do not affect matching and are dropped. The result is YAML text that goes
through the real loader.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["am_to_rules"]

_KEEP = ("match", "match_re", "matchers", "continue", "group_by", "routes", "receiver")


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return node.value
    if isinstance(node, yaml.SequenceNode):
        return [_plain(n) for n in node.value]
    assert isinstance(node, yaml.MappingNode)
    return {k.value: _plain(v) for k, v in node.value}


def _route(node: Any, receivers: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "receiver":
            receivers.add(value)
            out["audiences"] = [value]
        elif key == "routes":
            out["routes"] = [_route(child, receivers) for child in value or []]
        elif key == "matchers" and isinstance(value, str):
            out["matchers"] = [value]
        else:
            out[key] = value
    return out


def am_to_rules(config_text: str) -> str:
    """Return a Tocsin rule file (YAML text) equivalent, for routing, to the AM config."""
    root_node = yaml.compose(config_text, Loader=yaml.SafeLoader)
    data = _plain(root_node)
    receivers: set[str] = {r["name"] for r in data.get("receivers") or []}
    route = _route(data["route"], receivers)
    route["template"] = "t"
    route["channels"] = {"default": ["email"]}
    if "audiences" not in route:
        route["audiences"] = ["no-receiver"]
        receivers.add("no-receiver")
    rules = {
        "audiences": {
            name: {"contacts": [{"id": "c", "name": name, "email": "c@example.com"}]}
            for name in sorted(receivers)
        },
        "templates": {"t": {"email": {"en": {"subject": "s", "text": "t"}}}},
        "route": route,
    }
    return yaml.safe_dump(rules, allow_unicode=True, sort_keys=False)
