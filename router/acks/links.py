"""The acknowledgement link of one contact for one incident, as a notice shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from router.acks.tokens import sign_token

__all__ = ["AckLinks"]


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Builds ``<public_url>/ack/<token>``; the token expires ``ttl_s`` after ``now``."""

    public_url: str  # e.g. https://tocsin.example.com (no trailing slash needed)
    key: bytes
    ttl_s: float = 86400.0

    def url(self, incident_id: str, contact_id: str, now: datetime) -> str:
        """The link ``contact_id`` follows to acknowledge ``incident_id``."""
        token = sign_token(self.key, incident_id, contact_id, now + timedelta(seconds=self.ttl_s))
        return f"{self.public_url.rstrip('/')}/ack/{token}"
