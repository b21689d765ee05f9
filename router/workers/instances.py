"""The instance heartbeat: record this instance in the store, compare rule sets.

Every ``instance.heartbeat_s`` the worker upserts this instance's row (id, version,
rule-set hash, start time; :meth:`router.store.base.Instances.heartbeat`), reads the
instances seen within ``instance.stale_after_s`` and compares their rule-set hashes with
its own (:func:`router.instances.compare`). A disagreement is logged once per change (a
warning naming the other instances and their hashes; an info line once they agree
again), shown in ``/readyz``'s detail and counted in ``tocsin_rules_hash_mismatch``;
``tocsin_instance_info`` carries the identity and the hash in force.
"""

from __future__ import annotations

from collections.abc import Callable

from router.clock import Clock
from router.instances import Agreement, InstanceStatus, compare
from router.logging import get_logger
from router.metrics import INSTANCE_INFO, INSTANCES_SEEN, RULES_HASH_MISMATCH
from router.store.base import Instances
from router.workers.loop import Loop

__all__ = ["InstanceHeartbeat"]

_log = get_logger("router.workers.instances")


class InstanceHeartbeat(Loop):
    """Heartbeats into ``store`` and keeps ``status`` (and the metrics) up to date.

    ``rules_hash``: the hash of the rule set in force at each call (a reload changes it;
    the next heartbeat records and compares the new one).
    """

    name = "instances"
    failure_event = "instances.heartbeat_failed"

    def __init__(self, store: Instances, status: InstanceStatus, *,
                 rules_hash: Callable[[], str], clock: Clock, heartbeat_s: float,
                 stale_after_s: float) -> None:
        super().__init__(poll_interval_s=heartbeat_s)
        self._store = store
        self._status = status
        self._rules_hash = rules_hash
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._info_labels: tuple[str, str, str, str] | None = None
        self._last_key: frozenset[tuple[str, str]] = frozenset()

    async def one_pass(self) -> float | None:
        """One heartbeat, then the comparison with the instances seen."""
        await self.beat()
        return None

    async def beat(self) -> Agreement:
        """Record this instance, read the others, update the status; return the verdict."""
        identity = self._status.identity
        rules_hash = self._rules_hash()
        now = self._clock.now()
        await self._store.heartbeat(identity.instance_id, version=identity.version,
                                    rules_hash=rules_hash, started_at=identity.started_at,
                                    now=now)
        seen = await self._store.instances(now, self._stale_after_s)
        agreement = compare(identity.instance_id, rules_hash, seen)
        self._status.agreement = agreement
        self._export(rules_hash, agreement)
        self._log_change(agreement)
        return agreement

    def _export(self, rules_hash: str, agreement: Agreement) -> None:
        identity = self._status.identity
        labels = (identity.instance_id, identity.version, rules_hash, identity.store)
        if labels != self._info_labels:
            if self._info_labels is not None:
                INSTANCE_INFO.remove(*self._info_labels)
            INSTANCE_INFO.labels(*labels).set(1)
            self._info_labels = labels
        INSTANCES_SEEN.set(len(agreement.seen))
        RULES_HASH_MISMATCH.set(len(agreement.differing))

    def _log_change(self, agreement: Agreement) -> None:
        key = agreement.key()
        if key == self._last_key:
            return
        if agreement.differing:
            _log.warning("instances.rules_mismatch", rules_hash=agreement.rules_hash,
                         others={i.instance_id: i.rules_hash for i in agreement.differing},
                         detail=agreement.describe())
        else:
            _log.info("instances.rules_agree", rules_hash=agreement.rules_hash,
                      instances=len(agreement.seen))
        self._last_key = key

    async def on_stop(self) -> None:
        """Drop this instance's info series (the process is going away)."""
        if self._info_labels is not None:
            INSTANCE_INFO.remove(*self._info_labels)
            self._info_labels = None
