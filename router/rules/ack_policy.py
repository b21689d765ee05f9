"""A route's ``ack:`` block: the notices ask for an answer (docs/rules.md "Acknowledgements").

The YAML shape is :class:`AckModel` (strict, unknown keys rejected) or a boolean:
``ack: false`` switches acknowledgements off for a route and the routes below it,
``ack: true`` switches them on with the inherited (or default) settings. Inheritance
merges per key: a child's ``ack:`` mapping overrides only the keys it writes, the others
come from its parent's effective policy (``escalate`` is one key: a child's list
replaces the parent's, tiers are not merged one by one). :func:`merge_ack` computes the
effective :class:`~router.models.AckPolicy`; :func:`check_ack` checks the references
(audiences, channels) and the order of the tiers, with positions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal, Protocol

from pydantic import BeforeValidator, Discriminator, Field, Tag

from router.models import AckPolicy, EscalationTier
from router.rules.durations import Duration
from router.rules.problems import did_you_mean
from router.strict import Strict
from router.yamlsrc import Path_, SourceFile

__all__ = [
    "AckModel",
    "AckSetting",
    "EscalationModel",
    "check_ack",
    "duration_text",
    "merge_ack",
    "tier_channels",
]

class EscalationModel(Strict):
    """One tier of ``escalate``: page ``audiences`` ``after`` the first notice, unanswered."""

    after: Duration = Field(gt=0)
    audiences: list[str] = Field(min_length=1)
    # severity (or ``default``) → channels; absent: the route's own channels.
    channels: dict[str, list[str]] | None = None


class AckModel(Strict):
    """The ``ack:`` mapping; every key optional (absent: the parent's, else the default)."""

    mode: Literal["first", "each"] | None = None
    resend_after: Duration | None = Field(default=None, gt=0)
    max_resends: int | None = Field(default=None, ge=0)
    escalate: list[EscalationModel] | None = None
    notify_on_ack: bool | None = None


#: The words pydantic reads as booleans (as for ``continue:``); rule files keep scalars
#: as written.
_TRUE = frozenset({"true", "yes", "on", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "off", "n", "f", "0"})


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    shown = "a list" if isinstance(value, list) else f"'{value}'"
    raise ValueError(f"expected false (no acknowledgement), true, or a mapping with the keys "
                     f"mode, resend_after, max_resends, escalate, notify_on_ack; got {shown}")


def _ack_kind(value: Any) -> str:
    return "ack_policy" if isinstance(value, dict) else "ack_switch"


#: The type of ``RouteModel.ack``: a boolean switch or an :class:`AckModel`. The tags
#: are union member names pydantic puts in an error's ``loc``: ``router.rules.problems``
#: skips them when it maps the error back to the YAML node.
AckSetting = Annotated[
    Annotated[bool, BeforeValidator(_switch), Tag("ack_switch")]
    | Annotated[AckModel, Tag("ack_policy")],
    Discriminator(_ack_kind),
]


def merge_ack(setting: bool | AckModel | None, parent: AckPolicy | None) -> AckPolicy | None:
    """The effective ack policy of a route: ``setting`` (its ``ack:``) over ``parent``'s.

    None (no ``ack:``) inherits; ``False`` switches off; ``True`` switches on with the
    parent's settings (or the defaults); a mapping overrides the keys it writes.
    """
    if setting is None:
        return parent
    if setting is False:
        return None
    base = parent if parent is not None else AckPolicy()
    if setting is True:
        return base
    changes: dict[str, Any] = {}
    if setting.mode is not None:
        changes["mode"] = setting.mode
    if setting.resend_after is not None:
        changes["resend_after_s"] = setting.resend_after
    if setting.max_resends is not None:
        changes["max_resends"] = setting.max_resends
    if setting.escalate is not None:
        changes["escalate"] = tuple(_tier(t) for t in setting.escalate)
    if setting.notify_on_ack is not None:
        changes["notify_on_ack"] = setting.notify_on_ack
    return replace(base, **changes)


def _tier(model: EscalationModel) -> EscalationTier:
    channels = tuple(sorted((sev, tuple(chans)) for sev, chans in (model.channels or {}).items()))
    return EscalationTier(after_s=model.after, audiences=tuple(model.audiences),
                          channels=channels)


def tier_channels(tier: EscalationTier, severity: str,
                  route_channels: Sequence[str]) -> tuple[str, ...]:
    """The channels a tier pages on for ``severity``: its own list for the severity, else
    its ``default``, else (no ``channels`` given, or no entry for it) ``route_channels``
    (the channels the route picked for that severity)."""
    table = dict(tier.channels)
    if severity in table:
        return table[severity]
    if "default" in table:
        return table["default"]
    return tuple(route_channels)


class Reporter(Protocol):
    """Where :func:`check_ack` reports (the loader's context)."""

    def error(self, src: SourceFile, path: Path_, message: str, *, key: bool = False) -> None:
        ...

    def warn(self, src: SourceFile, path: Path_, message: str, *, key: bool = False) -> None:
        ...


def check_ack(setting: bool | AckModel | None, effective: AckPolicy | None, src: SourceFile,
              path: Path_, *, audiences: Collection[str], channel_kinds: Collection[str],
              ctx: Reporter) -> None:
    """Check the ``ack:`` a route writes at ``path`` (``…/ack``): tiers' audiences and
    channels exist, tiers in strictly increasing ``after`` order; warn about a
    ``max_resends`` that has no ``resend_after`` to act on."""
    if not isinstance(setting, AckModel):
        return
    previous: tuple[float, int] | None = None
    for i, tier in enumerate(setting.escalate or []):
        tpath: Path_ = (*path, "escalate", i)
        if previous is not None and tier.after <= previous[0]:
            ctx.error(src, (*tpath, "after"), f"escalation tier {i + 1} must come after tier "
                      f"{previous[1] + 1} ({duration_text(previous[0])}): tiers are listed in "
                      "strictly increasing 'after', measured from the first notice")
        previous = (tier.after, i)
        for j, name in enumerate(tier.audiences):
            if name not in audiences:
                ctx.error(src, (*tpath, "audiences", j), f"unknown audience '{name}' in "
                          f"escalation tier {i + 1}{did_you_mean(name, audiences)}")
        _check_channels(tier.channels or {}, src, (*tpath, "channels"), channel_kinds, ctx)
    if (setting.max_resends is not None and effective is not None
            and effective.resend_after_s is None and setting.max_resends > 0):
        ctx.warn(src, (*path, "max_resends"), "max_resends has no effect without "
                 "resend_after (no reminder is ever sent): set resend_after here or on a "
                 "parent route", key=True)


def _check_channels(table: Mapping[str, list[str]], src: SourceFile, path: Path_,
                    channel_kinds: Collection[str], ctx: Reporter) -> None:
    for sev, chans in table.items():
        if not chans:
            ctx.error(src, (*path, sev), f"no channels for '{sev}': list at least one "
                      f"(known channels: {', '.join(sorted(channel_kinds))})")
        for k, ch in enumerate(chans):
            if ch not in channel_kinds:
                ctx.error(src, (*path, sev, k), f"unknown channel '{ch}'"
                          f"{did_you_mean(ch, channel_kinds)} (known channels: "
                          f"{', '.join(sorted(channel_kinds))})")


def duration_text(value: float) -> str:
    """A duration in seconds the way a rule author writes it (``20m``, ``1h30m``)."""
    total = int(value)
    if total != value or total == 0:
        return f"{value:g}s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out.append(f"{amount}{unit}")
    return "".join(out)
