"""Acknowledgements: what a page asks of its recipients and how their answer comes back.

The subsystem is split by responsibility:

- :mod:`router.acks.contract` — the seam between the ways an answer arrives (an SMS reply
  through SNS, a signed link, the API and the CLI) and the service that records it
  (:class:`Acknowledger`): pending requests for an address, acknowledge, opt-outs;
- :mod:`router.acks.codes` — the short per-incident code a notice shows ("reply YES 4821");
- :mod:`router.acks.tokens` — the signed, expiring token of an acknowledgement link, and
  :mod:`router.acks.links` the URL a notice shows.

Everything here is pure: no store, HTTP or asyncio; the service behind
:class:`Acknowledger` lives with the workers, the routes with :mod:`router.http`.
"""

from router.acks.codes import ack_code
from router.acks.contract import AckBy, Acknowledger, AckResult, PendingAck
from router.acks.links import AckLinks
from router.acks.tokens import AckToken, TokenError, sign_token, verify_token

__all__ = [
    "AckBy",
    "AckLinks",
    "AckResult",
    "AckToken",
    "Acknowledger",
    "PendingAck",
    "TokenError",
    "ack_code",
    "sign_token",
    "verify_token",
]
