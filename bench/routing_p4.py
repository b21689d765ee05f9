"""P4: route one 10-label alert against 1000 rules, compiled + indexed vs naive, same run.

The rule set is generated (written to a temporary folder and loaded by the real loader):
1000 routes under the root, shaped like a large multi-team configuration:

* 950 routes keyed by an equality matcher on ``service`` (``service="svc-N"``), with two
  more matchers each (``env=~"prod|staging"``, ``severity!="info"``);
* 50 routes keyed only by regexes (``namespace=~"ns-N-.*"``, ``alertname=~"Team-N.+"``):
  they cannot be indexed and are always checked.

Two alerts of 10 labels: one matched by route #990 (so the naive walk checks 990 routes
before it), one matched by no child (it falls to the root: the naive walk checks all).
``RuleSet.evaluate`` (compiled matchers + child index) and ``RuleSet.evaluate_naive``
(the same compiled matchers, every child in order) are timed alternately in the same
process; the medians of several rounds are compared. Both must return the same decisions.

Usage: ``python bench/routing_p4.py [--rounds 7] [--iterations 2000]``
Target (docs/../performance.md P4): indexed ≥ 15× faster than naive (≤ ~10 µs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.rules import RuleSet, load_rules  # noqa: E402 — after the sys.path tweak

ROUTES = 1000
REGEX_ROUTES = 50

HEADER = """\
audiences:
  ops: {contacts: [{id: ops, name: Ops, email: ops@example.com}]}
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ severity }}"}
route:
  audiences: [ops]
  template: t
  channels: {default: [email]}
  routes:
"""


def rule_text() -> str:
    """The generated rule file (1000 child routes)."""
    lines = [HEADER]
    for i in range(ROUTES):
        if i % (ROUTES // REGEX_ROUTES) == 7:  # 50 regex-only routes spread through the list
            lines.append(f"    - matchers: ['namespace=~\"ns-{i}-.*\"', "
                         f"'alertname=~\"Team{i}.+\"']\n")
        else:
            lines.append(f"    - matchers: ['service=\"svc-{i}\"', 'env=~\"prod|staging\"', "
                         f"'severity!=\"info\"']\n")
    return "".join(lines)


def alert(service: str) -> dict[str, str]:
    """A realistic 10-label alert."""
    return {
        "alertname": "HighErrorRate", "service": service, "env": "prod",
        "severity": "critical", "namespace": "payments", "instance": "10.0.3.17:8080",
        "job": "payments-api", "pod": "payments-api-7d9f8-xk2lq", "cluster": "eu-west-1",
        "team": "payments",
    }


def time_per_call_us(fn: Callable[[Mapping[str, str]], object], labels: Mapping[str, str],
                     iterations: int) -> float:
    """Mean µs per call over ``iterations`` calls."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        fn(labels)
    return (time.perf_counter_ns() - start) / iterations / 1000


def measure(rules: RuleSet, labels: Mapping[str, str], rounds: int,
            iterations: int) -> tuple[float, float]:
    """Median µs per evaluation (indexed, naive), timed alternately."""
    assert rules.evaluate(labels) == rules.evaluate_naive(labels), "results differ"
    indexed: list[float] = []
    naive: list[float] = []
    naive_iterations = max(1, iterations // 20)
    for _ in range(rounds):
        indexed.append(time_per_call_us(rules.evaluate, labels, iterations))
        naive.append(time_per_call_us(rules.evaluate_naive, labels, naive_iterations))
    return statistics.median(indexed), statistics.median(naive)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(rule_text(), encoding="utf-8")
        t0 = time.perf_counter()
        rules = load_rules([path])
        load_s = time.perf_counter() - t0
    print(f"rule set: {len(rules.routes) - 1} routes under the root "
          f"({REGEX_ROUTES} regex-only), loaded and compiled in {load_s * 1000:.0f} ms")
    print(f"{'case':<34} {'indexed µs':>11} {'naive µs':>10} {'ratio':>7}")
    worst = float("inf")
    for case, labels in (("matched by route #990", alert("svc-990")),
                         ("matched by no child (root)", alert("svc-none"))):
        decision = rules.evaluate(labels)[0].route_id
        indexed_us, naive_us = measure(rules, labels, args.rounds, args.iterations)
        ratio = naive_us / indexed_us
        worst = min(worst, ratio)
        print(f"{case + ' → ' + decision:<34} {indexed_us:>11.2f} {naive_us:>10.1f} "
              f"{ratio:>6.0f}×")
    verdict = "PASS" if worst >= 15 else "FAIL"
    print(f"P4 target: indexed ≥ 15× faster than naive — {verdict} (lowest ratio {worst:.0f}×)")
    return 0 if worst >= 15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
