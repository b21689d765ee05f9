"""Route-tree conformance against Alertmanager's own routing cases (tests/rules/corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.authoring.importer import import_alertmanager
from router.rules import RuleSet, load_rules
from tests.rules.helpers import by_position

CORPUS = Path(__file__).parent / "corpus"
ROUTE_FILES = [
    "am-dispatch-TestRouteMatch.yaml",
    "am-dispatch-TestRouteMatchers.yaml",
    "am-dispatch-TestRouteMatchersAndMatch.yaml",
    "am-dispatch-TestRouteLabelsLoading.yaml",
    "am-cli-TestRoutingTest-conf.routing.yaml",
    "am-cli-TestRoutingTest-conf.routing-reverted.yaml",
    "am-doc-simple-yml.yaml",
    "am-docs-route-example.yaml",
]


def _cases() -> list[Any]:
    out = []
    for name in ROUTE_FILES:
        doc = yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))
        for case in doc["cases"]:
            out.append(pytest.param(name, doc["config"], case, id=f"{name}:{case['id']}"))
    return out


_loaded: dict[str, RuleSet] = {}


def _intervals_used(route: Any) -> set[str]:
    names = set(route.get("mute_time_intervals") or []) | set(
        route.get("active_time_intervals") or [])
    for child in route.get("routes") or []:
        names |= _intervals_used(child)
    return names


def _complete(config: str) -> str:
    """The config plus the time intervals and root receiver it uses but omits.

    The docs' route example names intervals it never defines, and a route-only fragment
    of upstream's unit tests has no root receiver (Alertmanager would refuse both, the
    importer too); routing does not depend on them.
    """
    doc = yaml.safe_load(config)
    if "receiver" not in doc["route"]:
        doc["route"]["receiver"] = "default"
        doc["receivers"] = [{"name": "default"}]
        config = yaml.safe_dump(doc)
    defined = {t["name"] for t in (doc.get("time_intervals") or [])}
    missing = sorted(_intervals_used(doc["route"]) - defined)
    if not missing:
        return config
    return config + "\ntime_intervals:\n" + "".join(
        f"  - name: {name}\n    time_intervals: [{{weekdays: [saturday]}}]\n"
        for name in missing)


def _rules(config: str, tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    if config not in _loaded:
        folder = tmp_path_factory.mktemp("am")
        result = import_alertmanager(_complete(config), "alertmanager.yml")
        (folder / "rules.yaml").write_text(result.rules_yaml, encoding="utf-8")
        _loaded[config] = load_rules([folder])
    return _loaded[config]


@pytest.mark.parametrize(("file", "config", "case"), _cases())
def test_route_match_case(file: str, config: str, case: dict[str, Any],
                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tocsin matches the same receivers, in the same order, with the same group_by."""
    rules = _rules(config, tmp_path_factory)
    labels = {str(k): str(v) for k, v in (case.get("labels") or {}).items()}
    decisions = rules.evaluate(labels)
    assert [d.audiences[0] for d in decisions] == case["expect"]["receivers"]
    assert rules.evaluate_naive(labels) == decisions
    for d, exp in zip(decisions, case["expect"].get("routes") or [], strict=False):
        if "group_by" in exp:
            assert sorted(d.group_by) == sorted(exp["group_by"])
        if "group_by_all" in exp:
            assert d.group_by_all == exp["group_by_all"]


def _trees() -> dict[str, Any]:
    doc = yaml.safe_load((CORPUS / "am-dispatch-route-tree.yaml").read_text(encoding="utf-8"))
    return {t["id"]: t for t in doc["trees"]}


def test_route_walk_receivers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pre-order walk of effective (inherited) receivers equals Alertmanager's."""
    tree = _trees()["TestRouteWalk"]
    rules = _rules(tree["config"], tmp_path_factory)
    walked = [r.audiences[0] for r in rules.routes.values()]
    assert walked == tree["expect"]["walk_receivers"]


def test_group_by_all_inheritance(tmp_path_factory: pytest.TempPathFactory) -> None:
    """group_by ['...'] is inherited until a child sets its own group_by."""
    tree = _trees()["TestInheritParentGroupByAll"]
    rules = _rules(tree["config"], tmp_path_factory)
    by_path = {"route": "root"}
    for node in tree["expect"]["walk_group_by_all"]:
        path = node["path"]
        route_id = by_path.get(path) or "root" + "".join(
            f"/{part.split('[')[1].rstrip(']')}" for part in path.split(".")[1:])
        route = by_position(rules)[route_id]
        assert route.group_by_all == node["group_by_all"], path
        if "group_by" in node:
            assert list(route.group_by) == node["group_by"]
