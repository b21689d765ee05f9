"""The exception tree of Tocsin, in one place.

Every exception Tocsin raises on purpose is a :class:`TocsinError`. User errors (a bad
rule file, a bad payload or request, a bad config: fix the input and try again) are
separate from delivery errors (a channel refused or failed), broker errors (Kafka did not
acknowledge), store errors and internal errors (a broken invariant: a bug in Tocsin).
A store never lets its database driver's exceptions out: what the database cannot do
now (disk, lock, a damaged file, a PostgreSQL server lost or refusing connections) is a
StoreUnavailable, with the driver's error as its ``__cause__``. Anything else that
escapes is a bug or a failure of the environment (OSError).
The tree::

    TocsinError
    ├── UserError                    the input is at fault; the message says where
    │   ├── ConfigError              the service configuration (tocsin.yaml, state_url)
    │   ├── RuleError                a rule set, with every positioned Problem
    │   ├── AlertmanagerConfigError  an Alertmanager file the importer refuses
    │   ├── InvalidMatcher           a matcher or regex Alertmanager itself would refuse
    │   ├── MatcherParseError        a matcher string, with the offset of the problem
    │   │   └── RegexParseError      a regex inside it that RE2 (so Go) rejects
    │   ├── RegexError               an expression RE2 rejects, with Go's code
    │   ├── TemplateCompileError     a template source that does not compile
    │   ├── RenderError              a template that fails at run time
    │   │   └── RenderBudgetError    one over its time or output budget
    │   ├── SmsOverflowError         a text over its SMS part budget (router.sms: it
    │   │                            carries an SmsInfo, and this module imports nothing)
    │   └── PayloadError             an inbound payload or request (4xx, or dead letter)
    │       ├── WebhookPayloadError  an Alertmanager webhook body
    │       ├── KafkaMessageError    a Kafka message that cannot become alerts
    │       ├── BadQuery             an HTTP query parameter
    │       ├── SubscriptionError    a PushSubscription JSON
    │       ├── EndpointRefused      a push endpoint Tocsin will not POST to
    │       ├── AckTokenError        an acknowledgement link: malformed, forged, expired
    │       └── SnsMessageError      an inbound SNS message: signature, topic, replay
    ├── DeliveryError                a channel could not deliver (retryable or not)
    ├── BrokerError                  the Kafka broker did not acknowledge
    │   ├── PublishError             publishing webhook alerts
    │   └── DeadLetterError          writing a dead letter
    ├── StoreError                   the state store cannot do what was asked
    │   ├── StoreClosedError         it is not started, or already closed
    │   ├── StoreUnavailable         the database cannot be reached or written now
    │   └── ConflictError            a guarded update lost a race (stale version)
    └── InternalError                a broken invariant: a bug in Tocsin

Pydantic validators keep raising ``ValueError`` (pydantic turns it into a positioned
validation error, reported as a ConfigError or RuleError), and a wrong argument from
Tocsin's own code stays a ``ValueError`` or ``TypeError``: neither is a signal to callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXCERPT_CHARS",
    "STORED_ERROR_CHARS",
    "AckTokenError",
    "AlertmanagerConfigError",
    "BadQuery",
    "BrokerError",
    "ConfigError",
    "ConflictError",
    "DeadLetterError",
    "DeliveryError",
    "EndpointRefused",
    "InternalError",
    "InvalidMatcher",
    "KafkaMessageError",
    "MatcherParseError",
    "PayloadError",
    "Problem",
    "PublishError",
    "RegexError",
    "RegexParseError",
    "RenderBudgetError",
    "RenderError",
    "RuleError",
    "SnsMessageError",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailable",
    "SubscriptionError",
    "TemplateCompileError",
    "TocsinError",
    "UserError",
    "WebhookPayloadError",
    "excerpt",
]

#: Longest excerpt of a provider's answer kept in an error (``last_error``, logs).
EXCERPT_CHARS: Final = 200
#: Longest error text stored for a delivery (several excerpts joined, e.g. Web Push).
STORED_ERROR_CHARS: Final = 1000
_WHITESPACE = re.compile(r"\s+")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A provider's answer cut to one short line: never stored or shown whole.

    Control characters and runs of whitespace become one space; longer than ``limit``
    characters, it is cut with an ellipsis.
    """
    line = "".join(ch if ch.isprintable() else " " for ch in text)
    line = _WHITESPACE.sub(" ", line).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class TocsinError(Exception):
    """Base of every error Tocsin raises on purpose."""


class UserError(TocsinError):
    """The input is at fault (a file, a payload, a request): fix it and try again."""


class ConfigError(UserError):
    """The service configuration is invalid."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One positioned finding in a user-edited file."""

    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.col:
                where += f":{self.col}"
        return f"{where}: {self.severity}: {self.message}"


class RuleError(UserError):
    """A rule set failed validation; ``problems`` holds every positioned error."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PayloadError(UserError):
    """An inbound payload cannot be accepted (answered 4xx, or dead-lettered)."""

    def __init__(self, message: str, *, status: int = 400, location: str | None = None) -> None:
        self.status = status
        self.location = location
        super().__init__(message)


class AlertmanagerConfigError(UserError):
    """The input is not a valid Alertmanager configuration; ``problems`` are positioned."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InvalidMatcher(UserError):
    """Alertmanager itself would reject this matcher or regex."""


class MatcherParseError(UserError):
    """A matcher string (or a regex inside it) cannot be parsed.

    ``offset`` is the 0-based character index inside the matcher string where the problem
    starts (0 when the whole string is at fault); ``column`` is the same, 1-based.
    """

    def __init__(self, message: str, *, text: str, offset: int = 0) -> None:
        self.message = message
        self.text = text
        self.offset = max(0, offset)
        super().__init__(f"{message} (in matcher {text!r}, column {self.offset + 1})")

    @property
    def column(self) -> int:
        """1-based column of the problem inside the matcher string."""
        return self.offset + 1


class RegexParseError(MatcherParseError):
    """A regex matcher value Alertmanager's regexp (RE2) rejects.

    ``described`` names the regex and gives Go's reason (Tocsin's wording, the default
    ``message``); ``go_message`` is the text of Go's ``regexp.Compile`` error, which the
    classic parser port reports as upstream does.
    """

    def __init__(self, message: str, *, text: str, offset: int = 0, described: str,
                 go_message: str) -> None:
        self.described = described
        self.go_message = go_message
        super().__init__(message, text=text, offset=offset)

    def at(self, *, text: str, offset: int, go_wording: bool = False) -> RegexParseError:
        """The same error, positioned in ``text`` (optionally worded as Go's)."""
        return RegexParseError(self.go_message if go_wording else self.described, text=text,
                               offset=offset, described=self.described,
                               go_message=self.go_message)


class RegexError(UserError):
    """An expression Alertmanager's regexp (RE2) rejects.

    ``code`` and ``arg`` are Go's (``arg`` is a piece of the anchored source
    ``^(?:value)$``, as in Alertmanager's message); ``hint`` explains the common cases
    of syntax other engines accept.
    """

    def __init__(self, value: str, code: str, arg: str, hint: str = "") -> None:
        self.value = value
        self.code = code
        self.arg = arg
        self.hint = hint
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """Go's code and argument, plus the hint when there is one."""
        text = f"{self.code}: `{self.arg}`"
        return f"{text} ({self.hint})" if self.hint else text

    @property
    def go_message(self) -> str:
        """Exactly what Go's ``regexp.Compile`` (so Alertmanager) says."""
        return f"error parsing regexp: {self.code}: `{self.arg}`"


class TemplateCompileError(UserError):
    """A template source is invalid; ``lineno`` is 1-based within the template text."""

    def __init__(self, message: str, lineno: int) -> None:
        self.message = message
        self.lineno = lineno
        super().__init__(message)


class RenderError(UserError):
    """A template failed at run time (e.g. an undefined attribute or a failing filter)."""


class RenderBudgetError(RenderError):
    """A render exceeded its time or output budget (``templates.*`` in the service file)."""


class DeliveryError(TocsinError):
    """A channel could not deliver a message.

    ``retryable`` says whether the dispatcher may try again; ``retry_after_s`` carries a
    provider's Retry-After when it gave one. Adapters never retry nor sleep by themselves.
    """

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(message)


class WebhookPayloadError(PayloadError):
    """A rejected webhook body; ``reason`` is a short metric label.

    Reasons (status 400): ``malformed_json``, ``not_an_object``, ``empty_alerts``,
    ``invalid_payload``; (status 413, a ``webhook.max_*`` limit) ``too_many_alerts``,
    ``too_many_labels``, ``labels_too_large``, ``annotations_too_large``.
    """

    def __init__(self, message: str, *, reason: str, location: str | None = None,
                 status: int = 400) -> None:
        super().__init__(message, status=status, location=location)
        self.reason = reason


class KafkaMessageError(PayloadError):
    """A message that cannot become alerts; ``reason`` is a short metric label.

    Reasons: ``empty``, ``malformed_json``, ``invalid_payload``, ``unknown_format``.
    """

    def __init__(self, message: str, *, reason: str, location: str | None = None) -> None:
        super().__init__(message, status=400, location=location)
        self.reason = reason


class BadQuery(PayloadError):
    """A query parameter is invalid; answered 400 with ``location`` = ``query.NAME``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"query parameter {name} {message}", location=f"query.{name}")


class SubscriptionError(PayloadError):
    """A PushSubscription JSON that cannot be used (the API answers 400 with it)."""


class EndpointRefused(PayloadError):
    """An endpoint Tocsin will not POST to; the message says why, in a short line."""


class AckTokenError(PayloadError):
    """An acknowledgement link token that is malformed, forged or expired.

    ``reason`` names which (``malformed``, ``forged``, ``expired``): the link page words
    it and answers 400, 403 or 410.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        self.reason = reason
        status = {"forged": 403, "expired": 410}.get(reason, 400)
        super().__init__(message, status=status)


class SnsMessageError(PayloadError):
    """An inbound SNS message refused: bad signature, certificate URL, topic, or replay.

    ``reason`` is a short metric label (``tocsin_sns_inbound_total{result}``) also shown
    in the JSON answer: ``malformed``, ``type_mismatch``, ``unsupported_type``,
    ``unsupported_signature_version``, ``cert_url_refused``, ``certificate_invalid``,
    ``bad_signature``, ``wrong_topic``, ``stale``, ``subscribe_url_refused``,
    ``bad_sms`` (status 400 or 403); ``certificate_unavailable`` and
    ``confirmation_failed`` are answered 503 so that SNS tries again.
    """

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message, status=status)
        self.reason = reason


class BrokerError(TocsinError):
    """The Kafka broker did not acknowledge in time (or refused)."""


class PublishError(BrokerError):
    """The broker did not acknowledge every published message in time."""


class DeadLetterError(BrokerError):
    """The dead-letter topic did not acknowledge the message."""


class StoreError(TocsinError):
    """The state store cannot do what was asked."""


class StoreClosedError(StoreError, RuntimeError):
    """The store is not started, or already closed: nothing will run the job.

    Also a ``RuntimeError``, as asyncio's own "closed" errors are.
    """


class StoreUnavailable(StoreError):
    """The database cannot be reached or written now (disk, lock, a damaged file): retry later.

    The driver's own error is the ``__cause__``; nothing of the batch was committed.
    """


class ConflictError(StoreError):
    """A guarded update lost a race: the row's version is no longer the one read."""


class InternalError(TocsinError):
    """A broken invariant: a bug in Tocsin, never the user's input."""
