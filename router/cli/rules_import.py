"""The argument parser of ``tocsin rules import-alertmanager`` (kept out of router/cli/rules.py)."""

from __future__ import annotations

from router.cli.base import Commands, Handler, command

__all__ = ["register"]


def register(rule_commands: Commands, *, run: Handler) -> None:
    """Add the ``import-alertmanager`` subcommand, run by ``run``, to the ``rules`` group."""
    imp = command(
        rule_commands,
        "import-alertmanager",
        help="convert an Alertmanager config (alertmanager.yml) into a rule file",
        description=(
            "Convert an Alertmanager configuration into one Tocsin rule file that routes\n"
            "alerts as Alertmanager does: route tree (matchers, match, match_re, continue,\n"
            "group_by, timers, time intervals), time_intervals and inhibit_rules. Each\n"
            "receiver becomes an audience of the same name: email_configs 'to' addresses\n"
            "and SNS topics/phones become contacts; other integrations (Slack, PagerDuty,\n"
            "...) get a placeholder contact, change-me+NAME@example.invalid, to fill in.\n"
            "A minimal 'default' template is included, so the file passes\n"
            "'tocsin rules check' on its own.\n\n"
            "The rule file goes to stdout (or -o FILE); the report of what was not\n"
            "imported (integrations, global settings, Go templates, route labels),\n"
            "with Alertmanager line numbers, to stderr.\n"
            "Exit 0 ok, 1 when the input is not a valid Alertmanager configuration."
        ),
        epilog=(
            "examples:\n"
            "  tocsin rules import-alertmanager /etc/alertmanager/alertmanager.yml "
            "-o rules/routes.yaml\n"
            "  tocsin rules check rules/routes.yaml\n"
            "  tocsin rules import-alertmanager alertmanager.yml --no-template "
            "> rules/routes.yaml   # use rules/templates.yaml"
        ),
        run=run,
    )
    imp.add_argument("config", metavar="ALERTMANAGER.yml",
                     help="the Alertmanager configuration file")
    imp.add_argument("-o", "--output", metavar="OUT.yaml", default=None,
                     help="write the rule file here (default: stdout)")
    imp.add_argument("--no-template", dest="template", action="store_false",
                     help="do not include the minimal 'default' template (reference the "
                          "one of the shipped rules/templates.yaml)")
