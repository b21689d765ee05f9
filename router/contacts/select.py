"""``select``: the segment of a source's contacts an audience takes.

``{attribute: value}`` keeps the contacts whose attribute is exactly ``value`` (case
and spaces as written); a list of values means any of them; several keys must all
match. Besides the extra columns, ``locale``, ``timezone`` and ``quiet_hours`` compare
the contact's field, and ``tags`` keeps the contacts having one of the tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from router.models import Contact

__all__ = ["SELECTABLE_FIELDS", "select_contacts"]

#: The standard fields ``select`` can test (any other key is an attribute).
SELECTABLE_FIELDS = frozenset({"locale", "timezone", "quiet_hours", "tags"})


def _matches(contact: Contact, key: str, wanted: frozenset[str]) -> bool:
    if key == "tags":
        return any(t in wanted for t in contact.tags)
    if key in ("locale", "timezone", "quiet_hours"):
        return getattr(contact, key) in wanted
    return contact.attributes.get(key) in wanted


def select_contacts(contacts: Sequence[Contact],
                    select: Mapping[str, Iterable[str]]) -> list[int]:
    """The indexes of ``contacts`` that ``select`` keeps (all of them when empty)."""
    tests = [(k, frozenset(v)) for k, v in select.items()]
    if not tests:
        return list(range(len(contacts)))
    return [i for i, c in enumerate(contacts)
            if all(_matches(c, k, wanted) for k, wanted in tests)]
