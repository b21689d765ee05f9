"""Imported rule sets route like the real Alertmanager (``amtool config routes test``).

For each Alertmanager config in tests/rules/am_configs/, label sets are generated from the
values its matchers mention, near misses (prefix, suffix, case), empty values and missing
labels, plus hand-picked probes for the RE2 dialect cases. Each label set goes to
``amtool`` (Go, RE2: Alertmanager's own routing code) and to the imported Tocsin rule set;
the receivers must be the same, in the same order.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from router.authoring.importer import import_alertmanager
from router.authoring.importer_matchers import raw_matchers
from router.rules import RuleSet, load_rules
from router.yamlsrc import read_yaml
from tests.services.requirements import require_binary

CONFIGS = Path(__file__).parent / "am_configs"
FILES = sorted(p.name for p in CONFIGS.iterdir() if p.suffix in (".yml", ".yaml"))
CASES_PER_CONFIG = 90
#: Hand-picked values where Go RE2 and other engines differ (tocsin__re2-dialect.yml) and
#: UTF-8 values; merged into the generated candidates.
PROBES: dict[str, dict[str, list[str]]] = {
    "tocsin__re2-dialect.yml": {
        "build": ["v12", "v١٢", "v", "v1x"],
        "zone": ["eu-1", "éu-1", "EU-9", "eu-12"],
        "shard": ["x{,3}", "xxx", "x", ""],
        "host": ["db.1", "db.1.example", "dbx1", "DB.1"],
        "alertname": ["DiskFULL", "diskfull", "DiskFull", "DISKfull"],
        "job": ["node", "node-exporter", "nod"],
        "team": ["é", "db_1", "Ünit", "a b"],
        "path": ["/var", "/var\n", "/var\n\n", "/va"],
        "city": ["évry", "Zürich", "Evry", "zürich"],
        "message": ["disk down now", "disk down_now", "diskdown", "é down é", "édown",
                    "downé"],
        "code": ["123", "١٢٣", "12a", ""],
        "tag": ["x", "ab", "١", "1", "x١", "x1"],
        "script": ["αβγ", "Ωμέγα", "abc", "αb"],
        "login": ["ADMIN", "Admin", "admın", "admİn", "adm"],
        "side": ["l", "r", "lx", "xr", "xl", "rx"],
        "edge": ["l", "r", "lx", "xr", "xl", "rx"],
        "run": ["a" * 40 + "c", "a" * 40 + "b", "b", "ab", ""],
    },
    "tocsin__platform-teams.yml": {
        "site": ["Zürich", "Zurich", "zürich"],
        "severity": ["crit", "critical", "warning", "info", "warning "],
        "service": ["postgres", "postgresql", "redis-", "redis-cache", "mysql"],
        "region": ["eu-west-1", "us-east-1", "us-east-2", "ap-south-1"],
    },
}
_PLAIN = re.compile(r"^[A-Za-z0-9_ :/@.-]*$")


def _walk_routes(route: Any) -> Iterator[dict[str, Any]]:
    if isinstance(route, dict):
        yield route
        for child in route.get("routes") or []:
            yield from _walk_routes(child)


def _candidates(config: Mapping[str, Any], name: str) -> dict[str, list[str]]:
    """Label name → values worth trying (from the matchers, near misses, probes)."""
    found: dict[str, set[str]] = {}

    def add(label: str, value: str, regex: bool) -> None:
        values = found.setdefault(label, set())
        parts = value.split("|") if regex else [value]
        for part in parts:
            base = re.sub(r"(\.\*|\.\+)$", "", part) if regex else part
            if regex and not _PLAIN.match(base):
                continue
            values.update({base, base + "x", "x" + base, base.upper(), base[:-1]})
        values.add("")

    for route in _walk_routes(config.get("route")):
        for label, value in (route.get("match") or {}).items():
            add(label, value, regex=False)
        for label, value in (route.get("match_re") or {}).items():
            add(label, value, regex=True)
        for text in route.get("matchers") or []:
            for label, op, value in raw_matchers(text):
                add(label, value, regex=op in ("=~", "!~"))
    for label, values in PROBES.get(name, {}).items():
        found.setdefault(label, set()).update(values)
    return {k: sorted(v) for k, v in sorted(found.items())}


def _label_sets(name: str, candidates: dict[str, list[str]]) -> list[dict[str, str]]:
    """Deterministic label sets: each candidate value alone, then random combinations."""
    rng = random.Random(name)
    sets: list[dict[str, str]] = [{}]
    for label, values in candidates.items():
        for value in values:
            sets.append({label: value})
    rng.shuffle(sets)
    sets = sets[: CASES_PER_CONFIG // 2]
    labels = list(candidates)
    while len(sets) < CASES_PER_CONFIG:
        chosen = rng.sample(labels, k=min(len(labels), rng.randint(1, 4)))
        sets.append({label: rng.choice(candidates[label]) for label in chosen})
    return sets


def _amtool_arg(name: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


def _amtool_receivers(amtool: str, config: Path, labels: Mapping[str, str]) -> list[str]:
    args = [amtool, "config", "routes", "test", f"--config.file={config}",
            *(_amtool_arg(k, v) for k, v in labels.items())]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"amtool failed for {labels}: {done.stderr}"
    return done.stdout.strip().split(",")


def _amtool_config(name: str, tmp_path: Path) -> Path:
    """The config as amtool 0.25 (Debian) reads it: it predates the `tracing` block."""
    text = (CONFIGS / name).read_text(encoding="utf-8")
    if "\ntracing:" not in text:
        return CONFIGS / name
    stripped = tmp_path / name
    stripped.write_text(text.split("\ntracing:")[0] + "\n", encoding="utf-8")
    return stripped


def _tocsin(name: str, tmp_path: Path) -> tuple[RuleSet, dict[str, str]]:
    result = import_alertmanager((CONFIGS / name).read_text(encoding="utf-8"), name)
    out = tmp_path / "imported.yaml"
    out.write_text(result.rules_yaml, encoding="utf-8")
    return load_rules([out]), {aud: rec for rec, aud in result.audiences.items()}


@pytest.mark.integration
@pytest.mark.parametrize("name", FILES)
def test_imported_rules_route_like_amtool(name: str, tmp_path: Path) -> None:
    """For ~90 generated label sets and each probe, Tocsin picks amtool's receivers, in order."""
    amtool = require_binary("amtool", "install the Debian package prometheus-alertmanager "
                            "(deploy/system-deps.sh)")
    src, _ = read_yaml(name, (CONFIGS / name).read_text(encoding="utf-8"))
    assert src is not None
    label_sets = _label_sets(name, _candidates(src.data, name))
    # Every hand-picked probe alone too (the random sample may leave some out).
    label_sets += [probe for label, values in PROBES.get(name, {}).items() for value in values
                   if (probe := {label: value}) not in label_sets]
    rules, receiver_of = _tocsin(name, tmp_path)
    config = _amtool_config(name, tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        expected = list(pool.map(lambda ls: _amtool_receivers(amtool, config, ls), label_sets))
    mismatches = []
    for labels, want in zip(label_sets, expected, strict=True):
        decisions = rules.evaluate(labels)
        got = [receiver_of[d.audiences[0]] for d in decisions]
        if got != want:
            mismatches.append(f"{labels}: amtool {want}, tocsin {got}")
        assert rules.evaluate_naive(labels) == decisions
    assert not mismatches, f"{len(mismatches)}/{len(label_sets)} differ:\n" + "\n".join(
        mismatches[:15])
