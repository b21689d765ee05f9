"""The minimal ``default`` template written into an imported Alertmanager rule file.

Alertmanager's Go templates are not converted; this small template (English) lets the
imported file load and send readable messages on its own, for every phase, until it is
replaced by the shipped library (rules/templates.yaml) or the team's own words.
"""

from __future__ import annotations

from collections.abc import Sequence

from router.authoring.importer_yaml import Block

__all__ = ["template_block"]

_STATE = ("{% if phase in ('resolved', 'summary') %}RESOLVED{% else %}"
          "{{ phase | upper }}:{{ severity }}{% endif %}")
_TITLE = "{{ alert.labels.alertname or 'alert' }}"
_SUMMARY = "{{ alert.annotations.summary or 'no summary' }}"

_EMAIL = f"""\
email:
  en:
    subject: "[{_STATE}] {_TITLE}"
    text: |
      {_TITLE} is {{{{ alert.status }}}} (severity {{{{ severity }}}}).
      Summary: {{{{ alert.annotations.summary or "(no summary)" }}}}
      {{% if alert.annotations.description %}}
      Details: {{{{ alert.annotations.description }}}}
      {{% endif %}}
      Started: {{{{ alert.starts_at | date }}}}
      Labels:
      {{% for name, value in alert.labels | dictsort %}}
        {{{{ name }}}}={{{{ value }}}}
      {{% endfor %}}
      {{% if alert.generator_url %}}
      Source: {{{{ alert.generator_url }}}}
      {{% endif %}}"""

_SMS = f"""\
sms:
  en:
    text: "{_STATE} {_TITLE}: {_SUMMARY}\""""

_TOPIC = f"""\
topic:
  en:
    subject: "[{_STATE}] {_TITLE}"
    text: "{_TITLE} is {{{{ alert.status }}}}: {_SUMMARY}\""""


def template_block(channels: Sequence[str]) -> Block:
    """``templates: {default: ...}`` with messages for email and the given channels."""
    out = Block()
    out.comment(0, "A minimal template so that this file works on its own (Alertmanager's "
                "Go templates are not converted). To use the shipped library instead, "
                "delete this block and put the file next to rules/templates.yaml.")
    out.line(0, "templates:")
    out.line(1, "default:")
    out.line(2, "fallback_locale: en")
    parts = [_EMAIL]
    if "sms" in channels:
        parts.append(_SMS)
    if "topic" in channels:
        parts.append(_TOPIC)
    for part in parts:
        for line in part.splitlines():
            out.line(2, line)
    return out
