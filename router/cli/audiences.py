"""``tocsin audiences plan AUDIENCE...``: a fan-out plan before it goes.

The rule set is the service config's (``rules``; ``--rules PATH`` instead), the rates
and prices are the service config's (``dispatch.lanes``, ``sns``, ``webpush``,
``costs``): see :mod:`router.authoring.fanout_plan`. Exit 0 with a plan, 1 when the
config or the rules are invalid, an audience or template is unknown, or a sample SMS
fails to render; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from router.cli.base import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, command, group

__all__ = ["plan_command", "register"]


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def register(commands: Commands) -> None:
    """Add ``audiences plan`` to the ``tocsin`` parser."""
    audiences = group(
        commands, "audiences", help="see who a notice to audiences reaches, how long, at what cost",
        description="Work with the audiences of the rule set.",
        missing="tocsin audiences: a subcommand is required (plan)")
    plan = command(
        audiences, "plan",
        help="the fan-out plan of a notice: recipients, unreachable, SMS segments, time, cost",
        description=(
            "Plan the firing notice of TEMPLATE (default: 'default') to AUDIENCE...: the\n"
            "recipients per channel and locale, the contacts a channel cannot reach and why,\n"
            "the SMS of each locale rendered for a sample contact with --labels (encoding,\n"
            "segments), how long each channel takes at the configured rates\n"
            "(dispatch.lanes.<channel>.rate_per_s, sns.rate_per_s: 20/s by default, ...)\n"
            "and the estimated cost at the configured prices (costs.sms_segment,\n"
            "costs.email, ...). Nothing is sent. The rule set is the service config's\n"
            "`rules` unless --rules is given."),
        epilog=(
            "examples:\n"
            "  tocsin audiences plan customers --template crisis-outage "
            "--labels crisis=outage\n"
            "  tocsin audiences plan customers ops --config deploy/local/tocsin.yaml "
            "--format json"),
        run=_run)
    plan.add_argument("audiences", nargs="+", metavar="AUDIENCE", help="audience names")
    plan.add_argument("--rules", nargs="+", metavar="PATH", default=None,
                      help="rule files or folders (default: the config's `rules`)")
    plan.add_argument("--config", "-c", metavar="FILE", type=Path,
                      help="service config file (default: TOCSIN_CONFIG, then built-ins)")
    plan.add_argument("--template", "-t", default="default", help="template (default: default)")
    plan.add_argument("--channels", nargs="+", metavar="CHANNEL", default=None,
                      help="channels to plan (default: every channel of the template)")
    plan.add_argument("--labels", nargs="+", action="extend", type=_key_value, default=[],
                      metavar="NAME=VALUE", help="alert labels the sample messages see")
    plan.add_argument("--annotations", nargs="+", action="extend", type=_key_value,
                      default=[], metavar="NAME=VALUE", help="alert annotations")
    plan.add_argument("--topic-threshold", type=int, default=None, metavar="N",
                      help="advise an SNS topic above N SMS recipients (default: 10000)")
    plan.add_argument("--at", metavar="TIME", default=None,
                      help="when the notice goes, ISO 8601 (quiet hours, dates in the "
                           "sample SMS); default: now")
    plan.add_argument("--format", choices=("text", "json"), default="text",
                      help="output format (default: text)")


def _run(args: argparse.Namespace) -> int:
    from router.config import load_command_config
    from router.errors import ConfigError

    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin audiences plan: {exc}\n")
        return EXIT_FAILURE
    from router.authoring.testfile import parse_time

    try:
        at = parse_time(args.at) if args.at is not None else None
    except ValueError as exc:
        sys.stderr.write(f"tocsin audiences plan: --at: {exc}\n")
        return EXIT_USAGE
    if args.topic_threshold is not None and args.topic_threshold < 0:
        sys.stderr.write("tocsin audiences plan: --topic-threshold must be >= 0\n")
        return EXIT_USAGE
    return plan_command(
        config, list(args.audiences), sys.stdout, sys.stderr,
        rule_paths=args.rules, template=args.template, channels=args.channels,
        labels=dict(args.labels), annotations=dict(args.annotations), fmt=args.format,
        topic_threshold=args.topic_threshold, at=at)


def plan_command(config: object, audiences: list[str], out: TextIO, err: TextIO, *,
                 rule_paths: list[str] | None = None, template: str = "default",
                 channels: list[str] | None = None,
                 labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None,
                 fmt: Literal["text", "json"] = "text",
                 topic_threshold: int | None = None, at: datetime | None = None) -> int:
    """Print the fan-out plan (text or JSON) to ``out``, problems to ``err``; 0 ok, 1
    invalid rules, unknown audience/template/channel or a sample SMS that fails."""
    from router.authoring.fanout_plan import (
        TOPIC_THRESHOLD,
        channel_rates,
        format_plan,
        plan_fanout,
    )
    from router.config import ServiceConfig
    from router.errors import PlanError, RuleError
    from router.rules.loader import load_rules
    from router.rules.problems import forget_sources, format_problem

    assert isinstance(config, ServiceConfig)
    paths = rule_paths if rule_paths else list(config.rules)
    try:
        rules = load_rules(paths)
    except RuleError as exc:
        forget_sources()
        for p in exc.problems:
            err.write(format_problem(p) + "\n")
        err.write(f"tocsin audiences plan: the rule set {' '.join(paths)} is invalid\n")
        return EXIT_FAILURE
    try:
        plan = plan_fanout(
            rules, audiences, template=template, labels=labels, annotations=annotations,
            channels=channels, rates=channel_rates(config), costs=config.costs, now=at,
            topic_threshold=TOPIC_THRESHOLD if topic_threshold is None else topic_threshold)
    except PlanError as exc:
        err.write(f"tocsin audiences plan: {exc}\n")
        return EXIT_FAILURE
    if fmt == "json":
        out.write(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(format_plan(plan))
    sms = plan["channels"].get("sms")
    failed = sms is not None and any("error" in d for d in sms["sms"]["locales"].values())
    return EXIT_FAILURE if failed else EXIT_OK
