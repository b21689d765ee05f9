"""Tools for the people who write rules: explain a routing decision, diff two rule sets,
run rule test files, and import an Alertmanager configuration.

They read the pure rule core (:mod:`router.rules`) and never run inside the service.
"""
