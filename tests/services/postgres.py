"""A throwaway PostgreSQL cluster for the test session, and a fresh database per test.

Debian's binaries (``/usr/lib/postgresql/<version>/bin``) are started once, on first use:
``initdb`` refuses to run as root, so as root both it and ``pg_ctl`` run as the
``postgres`` user (``runuser -u postgres --``) in a temporary folder owned by it. The
server listens on 127.0.0.1 only, on a free port, with its socket in that folder, trust
authentication for the ``tocsin`` superuser, and no fsync (a test cluster: durability
against power loss is not what the tests check). ``stop_postgres()`` (the session's end,
tests/conftest.py) stops it with ``pg_ctl -m fast stop``. Each store test gets a new
schema of its own (:func:`fresh_database_url`). Missing binaries skip the
test, or fail it when ``TOCSIN_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from .ports import free_port
from .requirements import services_required

__all__ = ["PostgresServer", "fresh_database_url", "postgres_server", "stop_postgres"]

_USER = "tocsin"
_START_TIMEOUT_S = 30


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    """One running cluster: where it lives and how to reach it."""

    bin_dir: Path
    root: Path  # owned by the postgres user when run as root
    port: int
    as_root: bool
    _names: itertools.count[int]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args))

    def _run(self, *args: str) -> None:
        subprocess.run(self._cmd(*args), check=True, capture_output=True,
                       timeout=_START_TIMEOUT_S)

    def url(self, dbname: str) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the ``postgres`` database (test setup only)."""
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5)

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, no user input
        return name

    def terminate(self, dbname: str) -> int:
        """``pg_terminate_backend`` every session of ``dbname``; how many were ended."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
        return sum(1 for (done,) in rows if done)

    def start(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                  str(self.root / "server.log"), "-w", "-t", str(_START_TIMEOUT_S), "-o",
                  f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1"
                  " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                  " -c max_connections=200", "start")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                  "-w", "stop")


_SERVER: PostgresServer | None = None
_FAILED: str | None = None
_SHARED_READY = False


def _unavailable(message: str) -> None:
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def postgres_server() -> PostgresServer:
    """The session's cluster, started on first use (skip / fail when impossible)."""
    global _SERVER, _FAILED
    if _SERVER is not None:
        return _SERVER
    if _FAILED is not None:
        _unavailable(_FAILED)
    bin_dir = _bin_dir()
    if bin_dir is None:
        _FAILED = ("PostgreSQL not found (/usr/lib/postgresql/*/bin/initdb): "
                   "apt-get install postgresql (deploy/system-deps.sh)")
        _unavailable(_FAILED)
    assert bin_dir is not None
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        _FAILED = "runuser not found: cannot run initdb as the postgres user"
        _unavailable(_FAILED)
    root = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
    (root / "sock").mkdir()
    if as_root:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "sock", "postgres", "postgres")
    server = PostgresServer(bin_dir, root, free_port(), as_root, itertools.count(1))
    try:
        server._run(str(bin_dir / "initdb"), "-D", str(server.data_dir), "-A", "trust",
                    "-U", _USER, "-E", "UTF8", "--no-sync")
        server.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        _FAILED = f"cannot start PostgreSQL: {exc} {detail.decode(errors='replace')[-500:]}"
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(_FAILED)
    _SERVER = server
    atexit.register(stop_postgres)  # a run ended without pytest_sessionfinish
    return server


_SHARED_DB = "tocsin_tests"


def fresh_database_url() -> str:
    """The URL of a new, empty state on the session's cluster, for one test.

    A new schema of one shared database, named by the URL's ``search_path``: as fresh as
    a new database for the store (its own tables, sequences and schema_version), and
    created in milliseconds where ``CREATE DATABASE`` copies a template (0.1-0.3 s here).
    Tests of what spans a database (sessions killed, migrations of instances starting
    together) use :meth:`PostgresServer.create_database`.
    """
    global _SHARED_READY
    server = postgres_server()
    name = f"s{os.getpid()}_{next(server._names)}"
    with server.admin() as conn:
        if not _SHARED_READY:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (_SHARED_DB,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{_SHARED_DB}"')
            _SHARED_READY = True
    with psycopg.connect(server.url(_SHARED_DB), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')  # a generated name, no user input
    return f"{server.url(_SHARED_DB)}?options=-csearch_path%3D{name}"


def stop_postgres() -> None:
    """Stop the session's cluster (if one was started) and remove its folder."""
    global _SERVER, _SHARED_READY
    server, _SERVER = _SERVER, None
    _SHARED_READY = False
    if server is None:
        return
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
