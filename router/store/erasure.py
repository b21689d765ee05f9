"""What forgetting a contact writes in place of its personal data (both stores).

``tocsin contacts forget ID`` (:meth:`router.store.base.Privacy.forget_contact`) keeps
the history's rows — that a notice went out, when, on which channel, how it ended — and
replaces what identifies the person: addresses are masked as in the logs
(:func:`router.masking.mask_address`), message subjects, texts and error texts are
replaced by :data:`ERASED`, HTML dropped, a name becomes its initials. The SQL of each
store only selects and writes; these functions decide what the new values are, so
SQLite and PostgreSQL write exactly the same thing.
"""

from __future__ import annotations

import json
from typing import Any, Final

from router.masking import mask_address, mask_name

__all__ = ["ERASED", "FORGOTTEN_REASON", "erased_channels", "erased_event_detail",
           "masked_recipient"]

#: What a forgotten contact's message subject, text and error text become.
ERASED: Final = "[erased]"
#: ``dead_letter_reason`` of a forgotten contact's deliveries that were still pending
#: (cancelled: their address is gone).
FORGOTTEN_REASON: Final = "contact forgotten"


def masked_recipient(address: str) -> str:
    """The masked form of an address (idempotent: a masked address stays as it is)."""
    return address if "*" in address else mask_address(address)


def erased_channels(channels_json: str) -> str:
    """A notification log's ``[[channel, address, locale], ...]`` with addresses masked."""
    channels = json.loads(channels_json)
    return json.dumps([[c[0], masked_recipient(str(c[1])), *c[2:]] for c in channels],
                      separators=(",", ":"))


def erased_event_detail(detail_json: str) -> str:
    """A timeline event's detail with the contact's name reduced to initials and any
    address masked (the contact id stays: the history says who answered)."""
    detail: dict[str, Any] = json.loads(detail_json)
    if isinstance(detail.get("by"), str):
        detail["by"] = mask_name(detail["by"])
    for key in ("address", "recipient", "phone", "email"):
        if isinstance(detail.get(key), str):
            detail[key] = masked_recipient(detail[key])
    return json.dumps(detail, separators=(",", ":"), sort_keys=True)
