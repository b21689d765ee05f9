"""Alert fingerprints, computed exactly like Prometheus' ``model.LabelSet.Fingerprint``.

FNV-1a 64-bit over the label names in sorted order, each name and value followed by the
separator byte 0xff; rendered as 16 lowercase hex digits. Incoming fingerprints are never
trusted: senders hand-edit them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["fingerprint"]

_OFFSET64 = 14695981039346656037
_PRIME64 = 1099511628211
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEP = 0xFF


def _hash_add(h: int, data: bytes) -> int:
    for byte in data:
        h ^= byte
        h = (h * _PRIME64) & _MASK64
    return h


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the Prometheus fingerprint of a label set as 16 hex digits."""
    if not labels:
        return f"{_OFFSET64:016x}"
    h = _OFFSET64
    for name in sorted(labels):
        h = _hash_add(h, name.encode())
        h ^= _SEP
        h = (h * _PRIME64) & _MASK64
        h = _hash_add(h, labels[name].encode())
        h ^= _SEP
        h = (h * _PRIME64) & _MASK64
    return f"{h:016x}"
