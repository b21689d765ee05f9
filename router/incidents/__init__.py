"""Incidents: alerts grouped per route and group labels, with a life until resolved.

Pure parts (no I/O, no clock of their own): :mod:`~router.incidents.grouping` (group
keys, incident ids), :mod:`~router.incidents.dedup` (the notification decision),
:mod:`~router.incidents.engine` (what an alert does to an incident),
:mod:`~router.incidents.flush` (the notices of one incident at one instant); what
templates see of an incident is :mod:`router.rules.view`. The store
(:mod:`router.store.sqlite.incidents`) persists them and :mod:`router.workers.scheduler` drives the
timers.
"""
