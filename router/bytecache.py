"""One byte-bounded LRU mapping, for every in-memory cache keyed by alert content.

Caches keyed by label sets (fingerprints, routing verdicts, accepted intake records) are
bounded in bytes, not entries: ten thousand entries of 10-label alerts hold a few MB,
ten thousand entries of alerts with 1 MB labels hold 10 GB. Each cache states what an
entry costs with a cheap ``size(key, value)`` (the length of the strings it holds plus a
fixed overhead, see :func:`labels_bytes`), and :class:`ByteLRU` evicts the least recently
used entries until the total is under its ``max_bytes``. An entry larger than the whole
bound is not stored (a miss costs a recomputation, nothing else).

The sizes are estimates of what the entry keeps alive, not ``sys.getsizeof`` walks:
computing them must stay far cheaper than the work the cache saves.

The bounds come from one service setting, ``memory.cache_bytes`` (docs/service.md),
shared by the caches with :func:`cache_share`; ``tocsin_cache_bytes{cache}`` reports
what each share holds.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Generic, TypeVar

from router.metrics import CACHE_BYTES

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "ENTRY_OVERHEAD",
    "PAIR_OVERHEAD",
    "ByteLRU",
    "LockedByteLRU",
    "cache_bytes",
    "cache_share",
    "labels_bytes",
    "set_cache_bytes",
]

K = TypeVar("K")
V = TypeVar("V")

#: What an entry costs beyond its strings (dict slot, tuple or object headers): an
#: estimate, so that many tiny entries still count.
ENTRY_OVERHEAD: Final = 200
#: Per label pair: two str headers and a dict or tuple slot.
PAIR_OVERHEAD: Final = 120

#: The default of ``memory.cache_bytes``: all content-keyed caches together.
DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024

#: The share of the total each cache gets (they add up to 1).
_SHARES: Final[Mapping[str, float]] = {
    "fingerprints": 0.25,  # adapters/alertmanager.py: label set → fingerprint
    "routes": 0.5,  # router/workers/intake.py: label set → routing verdict
    "intake": 0.25,  # router/store/sqlite/store.py: accepted records awaiting routing
}

_total = DEFAULT_CACHE_BYTES
_caches: dict[str, weakref.WeakSet[ByteLRU[object, object]]] = {}  # share → its caches


def labels_bytes(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
    """The estimated bytes a label mapping (or sequence of pairs) keeps alive."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    total = 0
    for key, value in pairs:
        total += len(key) + len(value) + PAIR_OVERHEAD
    return total


def _held(share: str) -> int:
    """The bytes the caches of ``share`` hold now (``tocsin_cache_bytes``)."""
    return sum(cache.nbytes for cache in list(_caches.get(share, ())))


def cache_bytes() -> int:
    """The configured total for content-keyed caches (``memory.cache_bytes``)."""
    return _total


def cache_share(name: str) -> int:
    """The byte bound of cache ``name`` (one of the shares of :func:`cache_bytes`)."""
    return int(_total * _SHARES[name])


def set_cache_bytes(total: int) -> None:
    """Set ``memory.cache_bytes``; caches registered with a share shrink or grow now."""
    global _total
    if total < 0:
        raise ValueError("memory.cache_bytes must be >= 0")
    _total = total
    for name, caches in _caches.items():
        for cache in list(caches):
            cache.resize(cache_share(name))


class ByteLRU(Generic[K, V]):
    """A mapping bounded by the estimated bytes of its entries, evicting LRU first.

    ``size(key, value)`` estimates one entry; ``max_bytes`` bounds their sum. With a
    ``share`` (a name of :func:`cache_share`) the bound follows ``memory.cache_bytes``.
    Not thread-safe: each cache is used from one thread (the event loop), except a
    :class:`LockedByteLRU`.
    """

    __slots__ = ("__weakref__", "_data", "_max", "_size", "nbytes")

    def __init__(self, size: Callable[[K, V], int], *, max_bytes: int | None = None,
                 share: str | None = None) -> None:
        if (max_bytes is None) == (share is None):
            raise ValueError("give exactly one of max_bytes and share")
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = size
        self._max = max_bytes if max_bytes is not None else cache_share(share or "")
        self.nbytes = 0
        if share is not None:
            if share not in _caches:
                _caches[share] = weakref.WeakSet()
                CACHE_BYTES.labels(cache=share).set_function(functools.partial(_held, share))
            _caches[share].add(self)  # type: ignore[arg-type]

    @property
    def max_bytes(self) -> int:
        """The bound on :attr:`nbytes`."""
        return self._max

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        found = self._data.get(key)
        if found is None:
            return None
        self._data.move_to_end(key)
        return found[0]

    def peek(self, key: K) -> V | None:
        """The value for ``key`` without touching its recency, or None."""
        found = self._data.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V, *, evict: bool = True, cost: int | None = None) -> bool:
        """Store ``value``; False when it was not stored.

        With ``evict`` (the default) least recently used entries make room; without,
        an entry that does not fit in the room left is refused (buffers that must keep
        their oldest entries). An entry larger than ``max_bytes`` is always refused.
        ``cost``: the entry's size when the caller knows it already (else ``size``).
        """
        if cost is None:
            cost = self._size(key, value)
        self.pop(key)
        if cost > self._max:
            return False
        if self.nbytes + cost > self._max:
            if not evict:
                return False
            self._shrink_to(self._max - cost)
        self._data[key] = (value, cost)
        self.nbytes += cost
        return True

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None."""
        found = self._data.pop(key, None)
        if found is None:
            return None
        self.nbytes -= found[1]
        return found[0]

    def clear(self) -> None:
        """Remove every entry."""
        self._data.clear()
        self.nbytes = 0

    def resize(self, max_bytes: int) -> None:
        """Change the bound, evicting least recently used entries beyond it."""
        self._max = max_bytes
        self._shrink_to(max_bytes)

    def _shrink_to(self, limit: int) -> None:
        data = self._data
        while data and self.nbytes > limit:
            _, (_, cost) = data.popitem(last=False)
            self.nbytes -= cost


class LockedByteLRU(ByteLRU[K, V]):
    """A :class:`ByteLRU` that threads may share: every operation holds one lock.

    For a cache used both on the event loop and in worker threads (the fingerprint memo:
    large webhook bodies are parsed off the loop). Uncontended, the lock costs well
    under a microsecond per operation.
    """

    __slots__ = ("_lock",)

    def __init__(self, size: Callable[[K, V], int], *, max_bytes: int | None = None,
                 share: str | None = None) -> None:
        self._lock = threading.RLock()  # put() and resize() call pop() and _shrink_to()
        super().__init__(size, max_bytes=max_bytes, share=share)

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            return super().get(key)

    def peek(self, key: K) -> V | None:
        """The value for ``key`` without touching its recency, or None."""
        with self._lock:
            return super().peek(key)

    def put(self, key: K, value: V, *, evict: bool = True, cost: int | None = None) -> bool:
        """Store ``value`` (see :meth:`ByteLRU.put`); False when it was not stored."""
        if cost is None:
            cost = self._size(key, value)  # outside the lock: the caller's own key
        with self._lock:
            return super().put(key, value, evict=evict, cost=cost)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None."""
        with self._lock:
            return super().pop(key)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            super().clear()

    def resize(self, max_bytes: int) -> None:
        """Change the bound, evicting least recently used entries beyond it."""
        with self._lock:
            super().resize(max_bytes)
