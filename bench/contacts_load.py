"""Contact sources at the scale of a customer base: load time, memory, rules check.

Generates a CSV of 100,000 customers (``id,name,email,phone,locale,timezone,service,
plan``; half the numbers in E.164, half written the French way; 0.5 % of the rows with a
bad phone, e-mail or time zone) in a temporary folder, with a rule set whose audience
reads it (``contacts_from``, ``region: FR``, ``select: {service: payments}``), then
measures, each in a fresh process, in the same run:

- reference: Python's ``csv.DictReader`` reading the same file into a list of dicts
  (no validation at all): time and RSS growth;
- Tocsin: ``router.contacts.load_source`` (every row validated: E.164, e-mail, locale,
  IANA zone, duplicates): time and RSS growth (target ≤ 3 s, ≤ 150 MB);
- ``tocsin rules check`` of the rule set (wall time of the whole command; target ≤ 5 s);
- a second ``load_rules`` of the unchanged rule set in the same process (the contact
  file is served from the cache, not read again).

Usage: ``python bench/contacts_load.py [--rows 100000]``
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RULES = """\
audiences:
  customers-payments:
    contacts_from: [{file: customers.csv, region: FR, max_invalid: 2%}]
    select: {service: payments}
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "Dear {{ recipient.name }}"}
route: {audiences: [customers-payments], template: t, channels: {default: [email]}}
"""

_MEASURE = """
import json, sys, time, gc
sys.path.insert(0, {root!r})
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
what, path = sys.argv[1], sys.argv[2]
if what == 'reference':
    import csv
else:
    from router.contacts import SourceOptions, load_source
    from router.rules import load_rules
    from router.contacts import cache_stats
gc.collect()
before = rss()
t0 = time.perf_counter()
if what == 'reference':
    with open(path, encoding='utf-8', newline='') as f:
        kept = list(csv.DictReader(f))
    n = len(kept)
    extra = {{}}
elif what == 'tocsin':
    kept = load_source(path, SourceOptions(region='FR'))
    n = len(kept.contacts)
    extra = {{'valid': kept.valid, 'invalid': kept.invalid, 'problems': len(kept.problems)}}
else:
    kept = load_rules([path])
    first = time.perf_counter() - t0
    reads = cache_stats()['reads']
    t1 = time.perf_counter()
    again = load_rules([path])
    extra = {{'first_load_s': first, 'reload_s': time.perf_counter() - t1,
              'reads_on_reload': cache_stats()['reads'] - reads}}
    n = len(again.audiences['customers-payments'].contacts)
elapsed = time.perf_counter() - t0
gc.collect()
print(json.dumps({{'what': what, 'n': n, 'seconds': elapsed,
                  'rss_growth_mb': (rss() - before) / 1e6, **extra}}))
"""


def generate(path: Path, rows: int, seed: int = 11) -> None:
    """Write ``rows`` customers, 0.5 % of them with one bad field."""
    rng = random.Random(seed)
    zones = ["Europe/Paris", "Europe/Paris", "Europe/Brussels", "America/Montreal"]
    with path.open("w", encoding="utf-8") as f:
        f.write("id,name,email,phone,locale,timezone,service,plan\n")
        for i in range(rows):
            # French mobile ranges all assigned (6[0-2], 6[4-8], 7[3-8]).
            digits = f"{rng.choice('0124567')}{rng.randint(1_000_000, 9_999_999)}"
            phone = (f"+336{digits}" if i % 2
                     else f"06 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}")
            email = f"customer{i}@example.com"
            zone = rng.choice(zones)
            bad = rng.random() < 0.005
            if bad:
                which = rng.randrange(3)
                phone = "06 12" if which == 0 else phone
                email = "customer-at-example.com" if which == 1 else email
                zone = "Europe/Pariss" if which == 2 else zone
            service = "payments" if i % 3 else "billing"
            f.write(f"c{i:06d},Customer {i},{email},{phone},fr,{zone},{service},"
                    f"{rng.choice(['basic', 'pro'])}\n")


def _run(what: str, path: Path) -> dict[str, float]:
    code = _MEASURE.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, what, str(path)], check=False,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tocsin-contacts-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "customers.csv"
        generate(csv_path, args.rows)
        (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
        ref = _run("reference", csv_path)
        ours = _run("tocsin", csv_path)
        rules = _run("rules", folder)
        t0 = time.perf_counter()
        check = subprocess.run([sys.executable, "-m", "router", "rules", "check", str(folder)],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
        check_s = time.perf_counter() - t0
    print(f"rows: {args.rows} ({csv_path.name})")
    print(f"reference csv.DictReader: {ref['seconds']:.2f} s, RSS +{ref['rss_growth_mb']:.0f} MB")
    print(f"tocsin load_source:       {ours['seconds']:.2f} s, RSS +{ours['rss_growth_mb']:.0f} MB "
          f"({ours['valid']:.0f} valid, {ours['invalid']:.0f} invalid; "
          f"{ours['seconds'] / ref['seconds']:.1f}x the reference time, "
          f"{ours['rss_growth_mb'] / ref['rss_growth_mb']:.2f}x its memory)")
    print(f"load_rules: first {rules['first_load_s']:.2f} s, unchanged reload "
          f"{rules['reload_s']:.2f} s, contact files read on reload: "
          f"{rules['reads_on_reload']:.0f}")
    print(f"tocsin rules check: {check_s:.2f} s (exit {check.returncode}; target 5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
