"""This instance among the others sharing the store: its identity, and whether their
rule sets agree.

Several Tocsin instances on one PostgreSQL must route with the same rules. Each records
a heartbeat with the hash of its rule set (:func:`router.rules.ruleset.rules_hash`) in
the store's instances table (:class:`router.store.base.Instances`);
:func:`compare` decides from what was read, purely, which recently seen instances run
another rule set. :class:`InstanceStatus` holds the latest verdict for ``/readyz`` (a
detail, never a failure: a rolling rule change passes through a moment of disagreement)
and is kept by :class:`router.workers.instances.InstanceHeartbeat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from router.store.base import InstanceInfo

__all__ = ["Agreement", "Identity", "InstanceStatus", "compare"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this instance is: its id, Tocsin version, store kind and start time."""

    instance_id: str
    version: str
    store: str  # the state_url scheme: sqlite, postgresql
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Agreement:
    """What one heartbeat found: the instances seen, and those whose rule set differs."""

    rules_hash: str
    seen: tuple[InstanceInfo, ...]
    differing: tuple[InstanceInfo, ...]

    @property
    def agrees(self) -> bool:
        """True when every instance seen runs this instance's rule set."""
        return not self.differing

    def key(self) -> frozenset[tuple[str, str]]:
        """What changes when the disagreement changes: ``(instance, hash)`` of the others."""
        return frozenset((i.instance_id, i.rules_hash) for i in self.differing)

    def describe(self) -> str:
        """One line for the logs and ``/readyz``."""
        others = ", ".join(f"{i.instance_id} ({i.rules_hash})" for i in self.differing)
        return (f"rule set {self.rules_hash} differs from the one of {len(self.differing)} "
                f"other instance(s): {others}")


def compare(instance_id: str, rules_hash: str, seen: Sequence[InstanceInfo]) -> Agreement:
    """The instances of ``seen`` (this one excluded) whose rule-set hash is not ours."""
    differing = tuple(i for i in seen
                      if i.instance_id != instance_id and i.rules_hash != rules_hash)
    return Agreement(rules_hash=rules_hash, seen=tuple(seen), differing=differing)


@dataclass
class InstanceStatus:
    """The identity and the latest agreement, as ``/readyz`` reports them."""

    identity: Identity
    agreement: Agreement | None = None  # None until the first heartbeat answered

    def detail(self) -> dict[str, object]:
        """The ``instance`` object of ``/readyz``: id, version, rule-set hash, peers."""
        doc: dict[str, object] = {"id": self.identity.instance_id,
                                  "version": self.identity.version,
                                  "store": self.identity.store}
        agreement = self.agreement
        if agreement is not None:
            doc["rules_hash"] = agreement.rules_hash
            doc["instances"] = [i.instance_id for i in agreement.seen]
            if not agreement.agrees:
                doc["rules_mismatch"] = agreement.describe()
        return doc
