"""The short code of an incident in a notice that asks for an answer ("YES 4821").

Derived from the incident id, so the planner (which shows it) and the reply parser
(which reads it back) need no stored table and agree by construction. Four digits keep
an SMS reply easy to type; two open incidents paging the same phone with the same code
(one chance in 9,000) are told apart by the choices message like a reply without code.
"""

from __future__ import annotations

import hashlib

__all__ = ["CODE_DIGITS", "ack_code"]

#: Digits of a code: 1000–9999 (never a leading zero that a phone keyboard might drop).
CODE_DIGITS = 4


def ack_code(incident_id: str) -> str:
    """The 4-digit code of ``incident_id`` (stable across processes and versions)."""
    digest = hashlib.sha256(incident_id.encode("utf-8")).digest()
    return str(1000 + int.from_bytes(digest[:8], "big") % 9000)
