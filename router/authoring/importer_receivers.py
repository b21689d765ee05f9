"""Alertmanager receivers → Tocsin audiences, for the Alertmanager importer.

Each receiver becomes one audience named after it (made a valid audience name when it
is not one). What a receiver's integrations say about *who* is told is kept where
Tocsin has the channel: ``email_configs`` ``to`` addresses become email contacts,
``sns_configs`` ``topic_arn`` / ``phone_number`` become topic / SMS contacts. Every
other integration (Slack, PagerDuty, Opsgenie, webhooks, ...) is reported as not
imported; a receiver left without a contact gets one clearly marked placeholder
(``change-me+NAME@example.invalid``, a reserved domain that never delivers) so that
the rule file loads and the gap is visible.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

from pydantic import ValidationError

from router.rules.schema import ContactModel

__all__ = ["AudiencePlan", "ContactPlan", "placeholder_email", "plan_audiences"]

#: ``report(path, message)``: record a not-imported item at an Alertmanager YAML path.
Report = Callable[[tuple[str | int, ...], str], None]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.:@-]+")
_LOCAL_BAD = re.compile(r"[^A-Za-z0-9_.+-]+")
_WHAT = {
    "discord_configs": "Discord", "incidentio_configs": "incident.io", "jira_configs": "Jira",
    "msteams_configs": "Microsoft Teams", "msteamsv2_configs": "Microsoft Teams",
    "opsgenie_configs": "Opsgenie", "pagerduty_configs": "PagerDuty",
    "pushover_configs": "Pushover", "rocketchat_configs": "Rocket.Chat",
    "slack_configs": "Slack", "telegram_configs": "Telegram",
    "victorops_configs": "VictorOps", "webex_configs": "Webex",
    "webhook_configs": "webhook", "wechat_configs": "WeChat",
}
_EMAIL_SERVER_KEYS = ("from", "smarthost", "hello", "auth_username", "auth_password",
                      "auth_password_file", "auth_secret", "auth_secret_file",
                      "auth_identity", "require_tls", "tls_config")
_SNS_SERVICE_KEYS = ("api_url", "sigv4")


@dataclass
class ContactPlan:
    """One contact of an imported audience."""

    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    topic: str | None = None
    placeholder: bool = False


@dataclass
class AudiencePlan:
    """The audience made from one receiver."""

    receiver: str
    name: str
    integrations: list[str] = field(default_factory=list)  # e.g. "slack_configs (2)"
    contacts: list[ContactPlan] = field(default_factory=list)
    fill_in: list[str] = field(default_factory=list)  # what the placeholder stands for

    @property
    def channels(self) -> list[str]:
        """The channels this audience's contacts can be reached on, in Tocsin order."""
        out = []
        for channel, attr in (("email", "email"), ("sms", "phone"), ("topic", "topic")):
            if any(getattr(c, attr) for c in self.contacts):
                out.append(channel)
        return out


def _audience_name(receiver: str, taken: set[str]) -> str:
    name = receiver if _NAME.match(receiver) else _SLUG_BAD.sub("-", receiver).strip("-._:@")
    if not name or not name[0].isalnum():
        name = "receiver-" + name if name else "receiver"
    base, n = name, 2
    while name in taken:
        name = f"{base}-{n}"
        n += 1
    taken.add(name)
    return name


def placeholder_email(audience: str) -> str:
    """The placeholder address of an audience: valid, reserved, never delivered."""
    local = _LOCAL_BAD.sub("-", audience).strip("-.") or "receiver"
    return f"change-me+{local}@example.invalid"


def _valid(**fields: str) -> bool:
    try:
        ContactModel.model_validate(fields)
    except ValidationError:
        return False
    return True


def _email_contacts(plan: AudiencePlan, configs: list[Any], path: tuple[str | int, ...],
                    report: Report) -> None:
    for i, cfg in enumerate(configs):
        cpath = (*path, i)
        if not isinstance(cfg, dict):
            continue
        to = cfg.get("to")
        if not isinstance(to, str) or not to.strip():
            report(cpath, f"receiver '{plan.receiver}': email_configs[{i}] has no 'to' address")
            plan.fill_in.append("email_configs without 'to'")
        elif "{{" in to:
            report((*cpath, "to"), f"receiver '{plan.receiver}': email 'to' is a Go template "
                   f"({to!r}): addresses computed from alerts are not imported")
            plan.fill_in.append(f"templated email address {to!r}")
        else:
            for display, address in getaddresses([to]):
                if not _valid(id="x", name="x", email=address):
                    report((*cpath, "to"), f"receiver '{plan.receiver}': email address "
                           f"{address!r} is not valid for Tocsin (name@domain.tld)")
                    plan.fill_in.append(f"email address {address!r}")
                    continue
                if any(c.email == address for c in plan.contacts):
                    continue
                plan.contacts.append(ContactPlan(
                    id=f"{plan.name}-{len(plan.contacts) + 1}", name=display or address,
                    email=address))
        server = [k for k in _EMAIL_SERVER_KEYS if k in cfg]
        if server:
            report(cpath, f"receiver '{plan.receiver}': email_configs[{i}] "
                   f"{', '.join(server)}: the SMTP server and sender are set once in the "
                   "service config (smtp section), not per receiver")
        texts = [k for k in ("headers", "html", "text") if k in cfg]
        if texts:
            report(cpath, f"receiver '{plan.receiver}': email_configs[{i}] "
                   f"{', '.join(texts)}: Go templates are not converted; the rule file's "
                   "'default' template writes the messages")
        if str(cfg.get("send_resolved", "false")).lower() not in ("true", "yes"):
            report(cpath, f"receiver '{plan.receiver}': email_configs[{i}] does not send "
                   "resolved notices (send_resolved is false, Alertmanager's default for "
                   "email); Tocsin always tells recipients when an incident is resolved")


def _sns_contacts(plan: AudiencePlan, configs: list[Any], path: tuple[str | int, ...],
                  report: Report) -> None:
    for i, cfg in enumerate(configs):
        cpath = (*path, i)
        if not isinstance(cfg, dict):
            continue
        topic, phone = cfg.get("topic_arn"), cfg.get("phone_number")
        if isinstance(topic, str):
            if _valid(id="x", name="x", topic=topic):
                plan.contacts.append(ContactPlan(id=f"{plan.name}-{len(plan.contacts) + 1}",
                                                 name=f"SNS topic {topic.rsplit(':', 1)[-1]}",
                                                 topic=topic))
            else:
                report((*cpath, "topic_arn"), f"receiver '{plan.receiver}': SNS topic "
                       f"{topic!r} is not a literal SNS topic ARN")
                plan.fill_in.append(f"SNS topic {topic!r}")
        if isinstance(phone, str):
            if _valid(id="x", name="x", phone=phone):
                plan.contacts.append(ContactPlan(id=f"{plan.name}-{len(plan.contacts) + 1}",
                                                 name=f"SMS {phone}", phone=phone))
            else:
                report((*cpath, "phone_number"), f"receiver '{plan.receiver}': SNS phone "
                       f"number {phone!r} is not a valid phone number with its country code")
                plan.fill_in.append(f"SNS phone number {phone!r}")
        if "target_arn" in cfg:
            report((*cpath, "target_arn"), f"receiver '{plan.receiver}': SNS target_arn "
                   "(a mobile push endpoint) has no Tocsin equivalent")
            plan.fill_in.append("SNS target_arn")
        service = [k for k in _SNS_SERVICE_KEYS if k in cfg]
        if service:
            report(cpath, f"receiver '{plan.receiver}': sns_configs[{i}] "
                   f"{', '.join(service)}: the SNS region and credentials are set in the "
                   "service config")
        texts = [k for k in ("subject", "message", "attributes") if k in cfg]
        if texts:
            report(cpath, f"receiver '{plan.receiver}': sns_configs[{i}] {', '.join(texts)}: "
                   "Go templates are not converted; the 'default' template writes messages")


def plan_audiences(receivers: list[Any], report: Report,
                   error: Report) -> dict[str, AudiencePlan]:
    """Plan one audience per receiver, by receiver name.

    ``receivers`` is the Alertmanager ``receivers`` list (plain data from the YAML);
    ``report`` records what is not imported, ``error`` what makes the configuration
    invalid (a receiver without a name, a name used twice, an unknown key).
    """
    plans: dict[str, AudiencePlan] = {}
    taken: set[str] = set()
    for i, rec in enumerate(receivers):
        path: tuple[str | int, ...] = ("receivers", i)
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str) or not rec["name"]:
            error(path, "a receiver needs a 'name'")
            continue
        receiver = rec["name"]
        if receiver in plans:
            error((*path, "name"), f"receiver name '{receiver}' is not unique")
            continue
        plan = AudiencePlan(receiver=receiver, name=_audience_name(receiver, taken))
        for key, value in rec.items():
            if key == "name":
                continue
            if not key.endswith("_configs"):
                error((*path, key), f"unknown key '{key}' in receiver '{receiver}'")
                continue
            configs = value if isinstance(value, list) else []
            plan.integrations.append(f"{key} ({len(configs)})")
            if key == "email_configs":
                _email_contacts(plan, configs, (*path, key), report)
            elif key == "sns_configs":
                _sns_contacts(plan, configs, (*path, key), report)
            else:
                what = _WHAT.get(key, key.removesuffix("_configs"))
                report((*path, key), f"receiver '{receiver}': {key} ({len(configs)}) not "
                       f"imported: Tocsin has no {what} channel")
                plan.fill_in.append(f"{key} ({what})")
        if not rec.keys() - {"name"}:
            report(path, f"receiver '{receiver}' has no integrations: Alertmanager notifies "
                   "nobody for it; Tocsin has no silent route, so its audience has a "
                   "placeholder contact (fill it in, or route these alerts elsewhere)")
            plan.fill_in.append("no integration (Alertmanager notified nobody)")
        if not plan.contacts:
            plan.contacts.append(ContactPlan(id=f"{plan.name}-placeholder",
                                             name=f"{receiver} (placeholder)",
                                             email=placeholder_email(plan.name),
                                             placeholder=True))
        plans[receiver] = plan
    return plans
