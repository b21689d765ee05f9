"""The explicit table of outbound channel adapters.

``router`` never imports a concrete adapter by name; the service wires channels through
this module only. ``CHANNEL_KINDS`` is the set of channel names rule files may use.
"""

from __future__ import annotations

from adapters.smtp import SmtpChannel, SmtpSettings
from router.dispatch.channel import Channel

__all__ = ["CHANNEL_KINDS", "build_channels"]

#: Channel names known to the rules (cross-reference checks) and to the dispatcher.
CHANNEL_KINDS: frozenset[str] = frozenset({"email"})


def build_channels(smtp: SmtpSettings | None) -> dict[str, Channel]:
    """Instantiate every configured channel, keyed by its name.

    A channel without settings is left out: the dispatcher then fails its deliveries
    with a clear "no adapter configured" reason instead of guessing.
    """
    channels: dict[str, Channel] = {}
    if smtp is not None:
        channels["email"] = SmtpChannel(smtp)
    return channels
