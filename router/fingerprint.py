"""Alert fingerprints, computed exactly like Prometheus' ``model.LabelSet.Fingerprint``.

FNV-1a 64-bit over the label names in sorted order, each name and value followed by the
separator byte 0xff; rendered as 16 lowercase hex digits. Incoming fingerprints are never
trusted: senders hand-edit them.

The hash runs on every accepted alert, so the C implementation of ``fnv-c`` is used when
it is installed (about 10x faster); the pure-Python loop below is the reference and the
fallback, and the tests check that both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["fingerprint", "fnv1a_64", "fnv1a_64_py"]

_OFFSET64 = 14695981039346656037
_PRIME64 = 1099511628211
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a_64_py(data: bytes) -> int:
    """FNV-1a 64-bit of ``data``, in pure Python (the reference implementation)."""
    h = _OFFSET64
    for byte in data:
        h = ((h ^ byte) * _PRIME64) & _MASK64
    return h


def _load_fast() -> Callable[[bytes], int]:
    try:
        from fnv_c import fnv1a_64 as fast
    except ImportError:  # optional accelerator: the pure-Python loop is correct, just slower
        return fnv1a_64_py
    return fast  # type: ignore[no-any-return]


#: FNV-1a 64-bit: the C implementation when available, else :func:`fnv1a_64_py`.
fnv1a_64: Callable[[bytes], int] = _load_fast()


def label_bytes(labels: Mapping[str, str]) -> bytes:
    """The bytes Prometheus hashes: sorted ``name 0xff value 0xff`` pairs."""
    return b"".join(
        name.encode() + b"\xff" + labels[name].encode() + b"\xff" for name in sorted(labels)
    )


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the Prometheus fingerprint of a label set as 16 hex digits."""
    return f"{fnv1a_64(label_bytes(labels)):016x}"
