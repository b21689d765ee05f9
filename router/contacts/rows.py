"""One row of a contact source to a Contact: plain code, no pydantic (100,000 rows).

A row is checked field by field. A bad field is dropped and reported, and the contact
stays reachable on its other channels; a row that keeps no address (neither a valid
e-mail nor a valid phone), has no id or repeats an id is skipped and reported. Every
problem names the row's line and column, with the personal data in it masked.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from router.checks import check_email, check_locale, check_timezone
from router.masking import mask_address, mask_email, mask_phone
from router.models import CHANNEL_KINDS, NO_ATTRIBUTES, Attributes, Contact
from router.phones import phone_or_error

__all__ = ["STANDARD_COLUMNS", "RowBuilder", "RowProblem", "SourceOptions"]

#: The columns with a meaning; any other column is an attribute.
STANDARD_COLUMNS = ("id", "name", "email", "phone", "locale", "timezone", "channels",
                    "quiet_hours", "tags")
_T = TypeVar("_T")
_LIST = re.compile(r"[;,|\s]+")


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What a source's rows are read with: the default phone region and the defaults
    of a contact without locale, time zone or quiet hours."""

    region: str | None = None
    default_locale: str = "en"
    default_timezone: str = "UTC"
    quiet_hours: str | None = None


@dataclass(frozen=True, slots=True)
class RowProblem:
    """``file:line: column: why``; ``skipped``: the row became no contact."""

    file: str
    line: int
    column: str
    why: str
    skipped: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.column}: {self.why}"


def _why(check: Callable[[str], str], value: str) -> str:
    """The error of ``check(value)``, or "" when it passes."""
    try:
        check(value)
    except ValueError as exc:
        return str(exc)
    return ""


def _shown_id(value: str) -> str:
    """An id as it may be shown: masked when it is an address (e-mail, phone)."""
    return mask_address(value) if "@" in value or value.startswith("+") else value


@dataclass
class RowBuilder:
    """Turns rows into contacts for one source, keeping counts and problems."""

    file: str
    options: SourceOptions
    attribute_names: tuple[str, ...] = ()
    contacts: list[Contact] = field(default_factory=list)
    lines: array[int] = field(default_factory=lambda: array("I"))
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    unreachable: int = 0
    reachable: dict[str, int] = field(default_factory=lambda: {"email": 0, "sms": 0})
    _seen: dict[str, int] = field(default_factory=dict)
    #: One object per distinct value (locales, zones, attribute values): less memory.
    _shared: dict[object, object] = field(default_factory=dict)
    #: Locales and time zones already found good.
    _good: set[str] = field(default_factory=set)

    def add(self, line: int, values: Sequence[str | None],
            attributes: Sequence[str]) -> None:
        """One row: ``values`` its standard fields in the order of
        :data:`STANDARD_COLUMNS` (None: no such column, or empty), ``attributes`` the
        values of :attr:`attribute_names`."""
        self.rows += 1
        found: list[RowProblem] = []
        cid, name, email, phone, locale, timezone, raw_channels, quiet, raw_tags = values

        def bad(column: str, why: str, *, skipped: bool = False) -> None:
            found.append(RowProblem(self.file, line, column, why, skipped))

        if not cid:
            bad("id", "empty: every contact needs an id; the row is skipped", skipped=True)
            self._finish(found, duplicate=False)
            return
        first = self._seen.get(cid)
        if first is not None:
            bad("id", f"duplicate id '{_shown_id(cid)}' (first at line {first}); the row is "
                "skipped", skipped=True)
            self._finish(found, duplicate=True)
            return
        self._seen[cid] = line
        opts = self.options
        if email is not None and _why(check_email, email):
            bad("email", f"invalid email address '{mask_email(email)}': expected "
                "name@domain.tld")
            email = None
        if phone is not None:
            number, why = phone_or_error(phone, opts.region)
            if number is None:
                masked = mask_phone(phone)
                why = why.replace(phone, masked) if phone in why else why
                if opts.region and not phone.strip().startswith("+") and opts.region not in why:
                    why += f" (read as a number of region {opts.region})"
                bad("phone", why)
            phone = number
        if locale is None:
            locale = opts.default_locale
        elif locale not in self._good:
            why = _why(check_locale, locale)
            if why:
                bad("locale", f"{why}; the default '{opts.default_locale}' is used")
                locale = opts.default_locale
            else:
                self._good.add(locale)
        if timezone is None:
            timezone = opts.default_timezone
        elif timezone not in self._good:
            why = _why(check_timezone, timezone)
            if why:
                bad("timezone", f"{why}; the default '{opts.default_timezone}' is used")
                timezone = opts.default_timezone
            else:
                self._good.add(timezone)
        channels: frozenset[str] | None = None
        if raw_channels is not None:
            names = frozenset(n for n in _LIST.split(raw_channels) if n)
            unknown = sorted(names - CHANNEL_KINDS)
            if unknown:
                bad("channels", f"unknown channel(s) {', '.join(unknown)} (known: "
                    f"{', '.join(sorted(CHANNEL_KINDS))}); left out")
            channels = self._one(names & CHANNEL_KINDS)
        tags: tuple[str, ...] = () if raw_tags is None else self._one(
            tuple(t for t in _LIST.split(raw_tags) if t))
        reach = [ch for ch, address in (("email", email), ("sms", phone))
                 if address is not None and (channels is None or ch in channels)]
        if email is None and phone is None:
            bad("email, phone", "no usable address (a valid email or phone); the row is "
                "skipped", skipped=True)
            self._finish(found, duplicate=False)
            return
        if found and reach:
            kept = " and ".join({"email": "e-mail", "sms": "SMS"}[c] for c in reach)
            found = [RowProblem(p.file, p.line, p.column, f"{p.why}; still reachable by {kept}")
                     if p.column in ("email", "phone") else p for p in found]
        for ch in reach:
            self.reachable[ch] += 1
        quiet = quiet or opts.quiet_hours
        self.contacts.append(Contact(
            id=cid, name=name or cid, email=email, phone=phone,
            locale=self._one(locale), timezone=self._one(timezone),
            quiet_hours=self._one(quiet) if quiet else None,
            attributes=Attributes(self.attribute_names,
                                  tuple(self._one(v) for v in attributes))
            if self.attribute_names else NO_ATTRIBUTES,
            tags=tags, channels=channels))
        self.lines.append(line)
        self._finish(found, duplicate=False)

    def _finish(self, found: list[RowProblem], *, duplicate: bool) -> None:
        if duplicate:
            self.duplicates += 1
        elif found:
            self.invalid += 1
            if any(p.skipped for p in found):
                self.unreachable += 1
        else:
            self.valid += 1
        self.problems.extend(found)

    def _one(self, value: _T) -> _T:
        shared = self._shared.setdefault(value, value)
        return shared  # type: ignore[return-value]
