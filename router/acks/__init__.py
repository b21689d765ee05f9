"""Acknowledgements: what a page asks of its recipients and how their answer comes back.

The subsystem is split by responsibility:

- :mod:`router.acks.contract` — the seam between the ways an answer arrives (an SMS reply
  through SNS, a signed link, the API and the CLI) and the service that records it
  (:class:`Acknowledger`): pending requests for an address, acknowledge, opt-outs;
- :mod:`router.acks.codes` — the short per-incident code a notice shows ("reply YES 4821");
- :mod:`router.acks.tokens` — the signed, expiring token of an acknowledgement link, and
  :mod:`router.acks.links` the URL a notice shows;
- SMS replies: :mod:`router.acks.sns_message` (an SNS message, its canonical string and
  signature), :mod:`router.acks.inbound_sms` (the reply AWS publishes),
  :mod:`router.acks.replies` (what a reply means, what to do, the answers' wording),
  :mod:`router.acks.sms_reply` (that decision carried out through the Acknowledger) and
  :mod:`router.acks.sns_dev` (a local SNS signer for ``tocsin dev reply`` and tests).

Everything here is pure: no store, HTTP or asyncio (``sms_reply.answer_sms`` only awaits
the :class:`Acknowledger` it is given); the service behind :class:`Acknowledger` lives
with the workers, the routes with :mod:`router.http`.
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
