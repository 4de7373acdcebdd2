"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, a free loopback port.

    with PostgresCluster() as url:   # postgresql+psycopg://lookalike@127.0.0.1:PORT/postgres
        ...

Needs the server binaries (Debian: ``apt-get install postgresql``, or ``make system-deps``).
initdb refuses to run as root, so as root the cluster runs as the ``postgres`` system user
(its directory is handed to that user); otherwise as the current user. Durability is off
(fsync, synchronous_commit, full_page_writes): it is thrown away afterwards.
``PostgresCluster(durable_commits=True)`` keeps ``synchronous_commit`` on, as a production
server has it: a commit it acknowledged survives the server being killed (``pause("immediate")``).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from support.server import free_port

SUPERUSER = "lookalike"
SERVER_USER_WHEN_ROOT = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or a user to run them as) are missing."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` ($LOOKALIKE_PG_BINDIR, pg_config, glob)."""
    candidates: list[str] = []
    if os.environ.get("LOOKALIKE_PG_BINDIR"):
        candidates.append(os.environ["LOOKALIKE_PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with"
        " `make system-deps` (as root) or `apt-get install postgresql`, or point"
        " LOOKALIKE_PG_BINDIR at their directory"
    )


class PostgresCluster:
    """Start a private cluster on enter (yielding its SQLAlchemy URL); stop and delete on exit."""

    def __init__(
        self, bindir: Path | None = None, user: str = SUPERUSER, *, durable_commits: bool = False
    ) -> None:
        self.bindir = bindir or find_bindir()
        self.durable_commits = durable_commits
        self.user = user
        self.port = 0
        self.tmpdir: Path | None = None
        self.startup_seconds = 0.0
        self._options = ""
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam(SERVER_USER_WHEN_ROOT)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root but there is no 'postgres' user to run the server as"
                    " (initdb refuses root); run the tests as a normal user"
                ) from None
            self._run_as = SERVER_USER_WHEN_ROOT

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    @property
    def datadir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self._run_as is not None:
            kwargs.update(user=self._run_as, group=self._run_as, extra_groups=[])
            env["HOME"] = str(self.tmpdir)
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.tmpdir,
            env=env,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def start(self) -> str:
        t0 = time.perf_counter()
        # Short path: the socket path must fit in sun_path (about 107 bytes); as root, a
        # directory the postgres user can reach.
        base = tempfile.gettempdir()
        if len(base) > 40 or self._run_as is not None:
            base = "/tmp"
        self.tmpdir = Path(tempfile.mkdtemp(prefix="lookalike-pg-", dir=base))
        try:
            if self._run_as is not None:
                shutil.chown(self.tmpdir, self._run_as, self._run_as)
            init = self._run(
                "initdb",
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                self.user,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
            last_error = ""
            for _attempt in range(3):  # a free port may be taken before the server binds it
                self.port = free_port()
                options = (
                    f"-p {self.port} -k {self.tmpdir} -c listen_addresses=127.0.0.1"
                    " -c fsync=off -c full_page_writes=off"
                    f" -c synchronous_commit={'on' if self.durable_commits else 'off'}"
                    " -c max_connections=200 -c wal_level=minimal -c max_wal_senders=0"
                )
                started = self._run(
                    "pg_ctl",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.tmpdir / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                if started.returncode == 0:
                    self.startup_seconds = time.perf_counter() - t0
                    self._options = options
                    return self.url
                log = self.tmpdir / "server.log"
                last_error = f"{started.stdout}\n{started.stderr}\n" + (
                    log.read_text(errors="replace")[-4000:] if log.exists() else ""
                )
            raise RuntimeError(f"pg_ctl start failed:\n{last_error}")
        except BaseException:
            self.stop()
            raise

    def pause(self, mode: str = "fast") -> None:
        """Shut the server down (``fast``: sessions are cut; ``immediate``: as if it crashed,
        recovering on start), keeping its data (see ``resume``)."""
        log = str(self.datadir.parent / "server.log")
        done = self._run("pg_ctl", "-D", str(self.datadir), "-l", log, "-m", mode, "-w", "stop")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr}")

    def resume(self) -> None:
        """Start the server again on the same port and data."""
        log = str(self.datadir.parent / "server.log")
        args = ("-D", str(self.datadir), "-l", log, "-o", self._options, "-w", "start")
        done = self._run("pg_ctl", *args)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}")

    def stop(self) -> None:
        if self.tmpdir is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def new_database(server_url: str, prefix: str = "test") -> Iterator[str]:
    """A new, empty database named ``<prefix>_<random>`` on the server of ``server_url`` (a
    superuser URL); yields its URL and drops it (cutting its sessions) afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
