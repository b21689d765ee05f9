"""The edges of Tocsin: inbound sources and outbound channels, one module each.

Outbound channels are wired in :mod:`adapters.registry`, the one explicit table the
engine uses to find them.
"""
