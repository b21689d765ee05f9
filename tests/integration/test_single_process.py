"""Two ``tocsin serve`` on one SQLite file: the second refuses to start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration


def test_second_process_on_the_same_sqlite_file_exits_1_naming_it(
    tmp_path: Path, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """The second exits 1 naming the file while the first keeps serving; once the first
    is SIGKILLed (the kernel frees its lock) the second starts."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    db = first_dir / "tocsin.db"
    first = tocsin_factory(smtp_port=smtp_server.port, workdir=first_dir).start()
    second = tocsin_factory(smtp_port=smtp_server.port, workdir=second_dir,
                            extra={"state_url": f"sqlite:///{db}"})
    assert second.run_to_exit() == 1
    log = second.log()
    assert f"the state database {db} is in use by another Tocsin process" in log
    assert f"pid {first.pid}" in log
    assert first._ready()  # the first one is untouched

    first.kill()
    second.start()
