"""`tocsin state backup`: a consistent, checked, self-contained copy, service running."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from router.cli import main
from router.cli.state import backup_command
from router.config import load_config
from router.store import SqliteStore
from tests.store.factories import make_record


def _config(db: Path):  # type: ignore[no-untyped-def]
    return load_config(None, {"TOCSIN_STATE_URL": f"sqlite:///{db}"})


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM intake").fetchone()[0])


async def test_backup_while_the_store_is_open_has_every_committed_row(tmp_path: Path) -> None:
    """With the store open (rows still in its WAL, not checkpointed) the copy holds every
    acknowledged row, passes integrity_check and needs no -wal file."""
    db = tmp_path / "state" / "tocsin.db"
    store = SqliteStore(str(db))
    await store.start()
    try:
        await store.append_intake([make_record(instance=f"h{i}") for i in range(25)])
        dest = tmp_path / "backup.db"
        out, err = io.StringIO(), io.StringIO()
        assert backup_command(_config(db), dest, force=False, out=out, err=err) == 0, err.getvalue()
        await store.append_intake([make_record(instance="after")])
    finally:
        await store.close()
    assert "backed up" in out.getvalue() and "schema version" in out.getvalue()
    _assert_self_contained_copy(dest, rows=25)


def _assert_self_contained_copy(dest: Path, *, rows: int) -> None:
    assert not Path(f"{dest}-wal").exists()
    with sqlite3.connect(dest) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert _rows(dest) == rows
    assert not list(dest.parent.glob(f".{dest.name}.*.tmp"))


async def test_existing_destination_needs_force(tmp_path: Path) -> None:
    """An existing DEST is kept (exit 1) unless --force is given."""
    db = tmp_path / "tocsin.db"
    store = SqliteStore(str(db))
    await store.start()
    await store.append_intake([make_record()])
    await store.close()
    dest = tmp_path / "copy.db"
    dest.write_text("precious")
    err = io.StringIO()
    assert backup_command(_config(db), dest, force=False, out=io.StringIO(), err=err) == 1
    assert "exists" in err.getvalue() and dest.read_text() == "precious"
    assert backup_command(_config(db), dest, force=True, out=io.StringIO(),
                          err=io.StringIO()) == 0
    assert _rows(dest) == 1


@pytest.mark.parametrize("url, message", [
    ("sqlite:///{tmp}/missing.db", "no state database at"),
    ("postgresql://db/tocsin", "use its own tools, such as pg_dump"),
])
def test_unusable_state_url_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch, url: str,
                                             message: str) -> None:
    """A missing database or a non-SQLite URL: exit 1 with one line saying why."""
    monkeypatch.setenv("TOCSIN_STATE_URL", url.format(tmp=tmp_path))
    assert main(["state", "backup", str(tmp_path / "out.db")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.db").exists()


def test_backup_onto_the_live_database_is_refused(tmp_path: Path) -> None:
    """DEST equal to the live database is refused, even with --force."""
    db = tmp_path / "tocsin.db"
    sqlite3.connect(db).close()
    err = io.StringIO()
    assert backup_command(_config(db), db, force=True, out=io.StringIO(), err=err) == 1
    assert "live database" in err.getvalue()


def test_a_file_that_is_not_a_database_is_one_clear_line(tmp_path: Path) -> None:
    """A damaged source reaches the command as the store's StoreError (no sqlite3 error
    outside the store): exit 1, the driver's reason on one line, no copy left behind."""
    db = tmp_path / "tocsin.db"
    db.write_bytes(b"not a database at all" * 100)
    dest = tmp_path / "copy.db"
    err = io.StringIO()
    assert backup_command(_config(db), dest, force=False, out=io.StringIO(), err=err) == 1
    assert err.getvalue().startswith("tocsin state backup: ") and "database" in err.getvalue()
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tocsin.db"]
