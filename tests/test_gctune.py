"""The service's GC settings: startup objects frozen, young collections spaced out."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from router.gctune import GEN0_THRESHOLD, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_startup_objects_and_raises_gen0(restore_gc: None) -> None:
    """After tune_gc, what was alive is frozen (not walked again) and gen 0 waits for
    GEN0_THRESHOLD allocations; the older generations keep their thresholds."""
    _, gen1, gen2 = gc.get_threshold()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
