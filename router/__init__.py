"""Tocsin: an event-driven alert router.

The ``router`` package is the engine (models, rules, store, outbox, dispatch, HTTP, CLI);
``adapters`` holds the edges (inbound sources and outbound channels).
"""

__version__ = "0.1.0"
