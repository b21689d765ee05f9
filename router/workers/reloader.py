"""Hot reload of the rule set: validate completely, then swap atomically, or keep the old.

Triggers: SIGHUP, ``POST /-/reload``, and a change of the rule files on disk (their list,
sizes, modification times and inodes are polled every ``poll_interval_s``; no extra
dependency, works on every file system, including Kubernetes ConfigMap symlink swaps),
or of the contact files (``contacts_from``) of the rules in force: editing a customer
list reloads the rule set, and a broken list keeps the old one in force. Unchanged
contact files are not read again (router/contacts/sources.py caches them).

A reload loads the rule set in a worker thread (file I/O and compilation stay off the
event loop), then replaces the reference the service reads its rules from. Readers take
the reference once per batch, so alerts already being routed finish with the rules they
started with. An invalid rule set is rejected: every positioned problem is logged, the
``tocsin_rules_reload_success`` gauge turns 0, and the running rules stay in force.
Reloads are serialised: concurrent triggers wait for the one in progress.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from router.errors import Problem, RuleError
from router.logging import get_logger
from router.metrics import RULES_LAST_RELOAD, RULES_RELOAD_SUCCESS
from router.rules.loader import load_rules, rule_files
from router.rules.ruleset import RuleSet
from router.workers.loop import Loop

__all__ = ["LOGGED_WARNINGS", "ReloadResult", "RuleReloader", "RulesHolder", "snapshot"]

_log = get_logger("router.workers.reloader")

#: Warnings logged one by one per load (a customer list may have thousands of bad rows).
LOGGED_WARNINGS = 50
#: What identifies a version of the rule files: (path, inode, size, mtime_ns) per file.
Snapshot = tuple[tuple[str, int, int, int], ...]


class RulesHolder(Protocol):
    """Anything holding the current rule set in a ``current`` attribute (``RulesRef``)."""

    current: RuleSet | None


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The outcome of one reload attempt."""

    ok: bool
    reason: str
    problems: list[Problem] = field(default_factory=list)
    rules: RuleSet | None = None
    changed: bool = True  # False when the files were identical and nothing was reloaded

    def summary(self) -> dict[str, object]:
        """JSON-ready description (the ``/-/reload`` response body)."""
        doc: dict[str, object] = {"status": "success" if self.ok else "error",
                                  "reason": self.reason}
        if self.rules is not None:
            doc.update(files=[str(p) for p in self.rules.source_files],
                       routes=len(self.rules.routes), audiences=len(self.rules.audiences),
                       templates=len(self.rules.templates),
                       warnings=[str(w) for w in self.rules.warnings])
        if self.problems:
            doc["problems"] = [str(p) for p in self.problems]
        return doc


def _identities(files: Sequence[str | Path]) -> list[tuple[str, int, int, int]]:
    out: list[tuple[str, int, int, int]] = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            out.append((str(f), 0, -1, 0))
            continue
        out.append((str(f), st.st_ino, st.st_size, st.st_mtime_ns))
    return out


def snapshot(paths: Sequence[str | Path], contact_files: Sequence[str | Path] = ()) -> Snapshot:
    """The identity of the rule files (and of ``contact_files``) right now (blocking:
    call from a thread)."""
    files, _ = rule_files(paths)
    out = _identities(files)
    for raw in paths:  # a folder that appears or disappears is a change too
        out.append((str(raw), int(Path(raw).is_dir()), -2, 0))
    out.extend(_identities(contact_files))
    return tuple(out)


class RuleReloader(Loop):
    """Reloads the rules of a running service into ``holder``.

    ``loader`` and ``wall_clock`` are seams for tests. ``poll_interval_s`` of 0 disables
    watching the files (SIGHUP and ``/-/reload`` still work).
    """

    def __init__(
        self,
        paths: Sequence[str],
        holder: RulesHolder,
        *,
        poll_interval_s: float = 2.0,
        loader: Callable[[Sequence[str]], RuleSet] = load_rules,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = list(paths)
        self.holder = holder
        self.poll_interval_s = poll_interval_s
        super().__init__(poll_interval_s=poll_interval_s if poll_interval_s > 0 else None)
        self._loader = loader
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._tasks: set[asyncio.Task[ReloadResult]] = set()

    def _contact_paths(self) -> list[str]:
        rules = self.holder.current
        return [f[0] for f in rules.contact_files] if rules is not None else []

    async def prime(self) -> None:
        """Record the files as they are now (the rules in force were loaded from them)."""
        rules = self.holder.current
        rule_part = await asyncio.to_thread(snapshot, self.paths)
        self._snapshot = rule_part + (rules.contact_files if rules is not None else ())

    async def reload(self, reason: str) -> ReloadResult:
        """Load, validate and swap; on failure keep the running rules. Never raises."""
        async with self._lock:
            before = await asyncio.to_thread(snapshot, self.paths)
            contacts_before = await asyncio.to_thread(_identities, self._contact_paths())
            try:
                rules = await asyncio.to_thread(self._loader, self.paths)
            except RuleError as exc:
                # Do not retry the same broken files every poll.
                self._snapshot = before + tuple(contacts_before)
                RULES_RELOAD_SUCCESS.set(0)
                errors = [p for p in exc.problems if p.severity == "error"]
                for problem in exc.problems:
                    _log.error("rule problem", problem=str(problem), reason=reason)
                _log.error("rule reload rejected; the running rules stay in force",
                           reason=reason, errors=len(errors),
                           problems=[str(p) for p in exc.problems])
                return ReloadResult(ok=False, reason=reason, problems=exc.problems)
            self.holder.current = rules  # the atomic swap: one reference assignment
            self._snapshot = before + rules.contact_files
            RULES_RELOAD_SUCCESS.set(1)
            RULES_LAST_RELOAD.set(self._wall_clock())
            for warning in rules.warnings[:LOGGED_WARNINGS]:
                _log.warning("rule warning", problem=str(warning), reason=reason)
            if len(rules.warnings) > LOGGED_WARNINGS:
                _log.warning("more rule warnings not logged (tocsin rules check lists them)",
                             count=len(rules.warnings) - LOGGED_WARNINGS, reason=reason)
            _log.info("rules reloaded", reason=reason, routes=len(rules.routes),
                      files=[str(p) for p in rules.source_files])
            return ReloadResult(ok=True, reason=reason, problems=list(rules.warnings),
                                rules=rules)

    def request_reload(self, reason: str) -> None:
        """Schedule a reload from synchronous code (a signal handler)."""
        task = asyncio.get_running_loop().create_task(self.reload(reason),
                                                      name="tocsin-rules-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check_files(self) -> ReloadResult | None:
        """Reload when the rule files or the contact files of the rules in force changed
        since the last load; else None."""
        now = await asyncio.to_thread(snapshot, self.paths, self._contact_paths())
        if now == self._snapshot:
            return None
        return await self.reload("file change")

    name = "rules-watch"
    failure_event = "rules.watch_failed"

    async def on_start(self) -> None:
        """Record the files as they are, unless :meth:`prime` did already."""
        if self._snapshot is None and self.poll_interval_s > 0:
            await self.prime()

    async def one_pass(self) -> float | None:
        """Reload when the rule files changed (nothing when watching is disabled)."""
        if self.poll_interval_s <= 0:
            return None  # SIGHUP and /-/reload only: wait until stopped
        try:
            await self.check_files()
        except OSError as exc:  # e.g. a folder briefly missing during a deploy
            _log.warning("cannot check rule files", error=str(exc))
        return None

    async def watch(self) -> None:
        """Poll the rule files until stopped or cancelled (the loop, :meth:`run`)."""
        await self.run()
