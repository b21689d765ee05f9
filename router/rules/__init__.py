"""Routing rules: load YAML rule files, evaluate alerts against the route tree, render.

Public surface::

    load_rules(paths) -> RuleSet          # raises RuleError with positioned Problems
    RuleSet.evaluate(labels) -> list[RouteDecision]
    RuleSet.render(decision, alert, contact, channel, phase, meta) -> RenderedMessage
    RuleSet.explain(labels)               # the walk through the tree, for `rules test`

Everything is pure and synchronous; rule files are the only I/O (at load time).
"""

from router.rules.loader import load_rules
from router.rules.ruleset import Audience, RuleSet
from router.rules.templates import CONTEXT_FIELDS, RenderError

__all__ = ["CONTEXT_FIELDS", "Audience", "RenderError", "RuleSet", "load_rules"]
