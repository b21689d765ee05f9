"""The strict shape of a rule file (pydantic, ``extra="forbid"``).

These models check structure and simple formats only; cross-references (audience,
template and channel names), matcher syntax and template syntax are checked by the
loader, which knows positions. Field names are the YAML keys; docs/rules.md documents
each of them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from router.checks import check_email, check_locale, check_timezone
from router.contacts import parse_threshold
from router.phones import normalise_phone
from router.rules.ack_policy import AckSetting
from router.rules.durations import Duration
from router.rules.inhibit import InhibitRuleModel
from router.rules.lifecycle import (
    BreakQuietHours,
    QuietHoursSpecs,
    ResolvedDuringQuietHours,
    StormControlModel,
)
from router.rules.sms_policy import SmsPolicyModel
from router.rules.time_intervals import TimeIntervalSpecModel
from router.strict import Strict

__all__ = [
    "AudienceModel",
    "ContactModel",
    "ContactSourceModel",
    "DefaultsModel",
    "MessageModel",
    "RouteModel",
    "RuleFileModel",
    "SeverityFromLabel",
    "TemplateModel",
]

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


class ContactModel(Strict):
    """One person or mailbox of an audience."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None
    quiet_hours: str | None = None  # a quiet_hours name, or "none" (incident rule keys)
    topic: str | None = None  # SNS topic ARN: this contact is a topic (channel "topic")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return None if v is None else check_email(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        # Validated and normalised to E.164 with libphonenumber (router.phones).
        return None if v is None else normalise_phone(v)

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and not _TOPIC_ARN.match(v):
            raise ValueError(f"invalid topic '{v}': expected an SNS topic ARN such as "
                             "arn:aws:sns:eu-west-1:123456789012:status")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        return None if v is None else check_locale(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)

    @model_validator(mode="after")
    def _reachable(self) -> ContactModel:
        if self.email is None and self.phone is None and self.topic is None:
            raise ValueError(f"contact '{self.id}' has neither 'email' nor 'phone'")
        return self


class ContactSourceModel(Strict):
    """One ``contacts_from`` item: a CSV or YAML contact file (router/contacts/)."""

    file: str = Field(min_length=1)  # relative to the rule file
    region: str | None = None  # default phone region of numbers written without '+'
    max_invalid: str | None = None  # bad rows allowed: a count (10) or a share (2%)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region '{v}': use an ISO 3166 country code "
                             "such as FR, GB or US")
        return None if v is None else v.upper()

    @field_validator("max_invalid")
    @classmethod
    def _max_invalid(cls, v: str | None) -> str | None:
        if v is not None:
            parse_threshold(v)
        return v


class AudienceModel(Strict):
    """A named group of contacts: inline ``contacts``, ``contacts_from`` files, or both;
    ``select`` keeps the contacts of the files whose attributes match."""

    description: str | None = None
    contacts: list[ContactModel] | None = None
    contacts_from: list[ContactSourceModel] | None = None
    select: dict[str, str | list[str]] | None = None
    quiet_hours: str | None = None  # a quiet_hours name (incident rule keys)

    @model_validator(mode="after")
    def _members(self) -> AudienceModel:
        if not self.contacts and not self.contacts_from:
            raise ValueError("an audience needs 'contacts' or 'contacts_from' (or both)")
        if self.select is not None and not self.contacts_from:
            raise ValueError("'select' picks contacts of 'contacts_from' files: this "
                             "audience has none")
        return self


class MessageModel(Strict):
    """The fields of one message (per template, channel and locale).

    Which fields a channel takes (and requires) is checked by the loader: email
    ``subject``/``text``/``html``, sms ``text``, topic ``subject``/``text``, push
    ``title``/``body``.
    """

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None
    body: str | None = None


class TemplateModel(BaseModel):
    """A message template: ``fallback_locale`` plus one mapping per channel name.

    Channel keys are open here (``extra="allow"``) because the known channel names come
    from the adapter registry; the loader checks them and validates each as
    ``dict[locale, MessageModel]``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    fallback_locale: str | None = None
    # The template's own SMS budget (router/rules/sms_policy.py); default: the channel's.
    sms_policy: SmsPolicyModel | None = None

    @field_validator("fallback_locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        return None if v is None else check_locale(v)


class SeverityFromLabel(Strict):
    """Severity taken from a label value, through an optional mapping."""

    label: str = Field(min_length=1)
    map: dict[str, str] | None = None
    default: str = "warning"


def _severity_kind(v: Any) -> str:
    return "from_label" if isinstance(v, dict) else "fixed"


Severity = Annotated[
    Annotated[str, Tag("fixed")] | Annotated[SeverityFromLabel, Tag("from_label")],
    Discriminator(_severity_kind),
]


class RouteModel(Strict):
    """One node of the route tree (see docs/rules.md for the inheritance rules)."""

    name: str | None = None
    matchers: list[str] | None = None
    match: dict[str, str] | None = None
    match_re: dict[str, str] | None = None
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    severity: Severity | None = None
    audiences: list[str] | None = None
    channels: dict[str, list[str]] | None = None
    template: str | None = None
    owner: str | None = None
    # Per-recipient channel fallback, e.g. {sms: email}: when the SMS to a contact fails
    # permanently, email the same contact (docs/rules.md "Channel fallback").
    fallback: dict[str, str] | None = None
    # Incident lifecycle keys (router/rules/lifecycle.py, docs/rules.md "Incidents").
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    follow_up_after: Duration | None = None
    max_follow_ups: int | None = Field(default=None, ge=0)
    break_quiet_hours: BreakQuietHours | None = None
    on_resolved_during_quiet_hours: ResolvedDuringQuietHours | None = None
    mute_time_intervals: list[str] | None = None
    active_time_intervals: list[str] | None = None
    # The notices ask for an answer (router/rules/ack_policy.py, docs/rules.md
    # "Acknowledgements"): a mapping merged per key over the parent's, or false/true.
    ack: AckSetting | None = None
    routes: list[RouteModel] | None = None

    model_config = ConfigDict(populate_by_name=False)  # extra="forbid", frozen: Strict

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(
                f"invalid route name '{v}': use letters, digits, '_', '-', '.', ':' or '@'"
            )
        return v

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if "..." in v and len(v) > 1:
            raise ValueError("'...' (group by all labels) cannot be mixed with label names")
        seen: set[str] = set()
        for item in v:
            if item in seen:
                raise ValueError(f"label '{item}' is listed twice in group_by")
            seen.add(item)
        return v


class DefaultsModel(Strict):
    """Rule-set wide defaults."""

    locale: str = "en"
    timezone: str = "UTC"
    #: Bad rows a contact file may have unless its contacts_from item says (10, or 2%).
    max_invalid: str | None = None

    @field_validator("max_invalid")
    @classmethod
    def _max_invalid(cls, v: str | None) -> str | None:
        if v is not None:
            parse_threshold(v)
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        return check_locale(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)


class RuleFileModel(Strict):
    """One rule file. Several files are merged; exactly one of them has ``route``."""

    defaults: DefaultsModel | None = None
    audiences: dict[str, AudienceModel] | None = None
    templates: dict[str, TemplateModel] | None = None
    route: RouteModel | None = None
    # Incident rule keys (router/rules/lifecycle.py, time_intervals.py, inhibit.py).
    time_intervals: dict[str, list[TimeIntervalSpecModel]] | None = None
    inhibit_rules: list[InhibitRuleModel] | None = None
    quiet_hours: dict[str, QuietHoursSpecs] | None = None
    storm_control: StormControlModel | None = None
