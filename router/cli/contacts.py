"""``tocsin contacts ...``: the people of the audiences (``forget``: :mod:`router.cli.forget`)."""

from __future__ import annotations

from router.cli.base import Commands, group
from router.cli.forget import register_forget

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``contacts forget`` to the ``tocsin`` parser."""
    contacts = group(
        commands, "contacts", help="the people of the audiences (forget)",
        description="Work on the contacts of the audiences.",
        missing="tocsin contacts: a subcommand is required (forget)")
    register_forget(contacts)
