"""A real PostgreSQL 15 server for the tests: initdb + pg_ctl in a temp folder, listening on
127.0.0.1 (a free port) and on a Unix socket in that folder, password authentication (scram).

initdb and postgres refuse to run as root: as root they run as the ``postgres`` user (else
``nobody``), through runuser or setpriv.  Skipped (with the reason) only when the binaries are
not installed (.ci/run installs postgresql-15).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"]
PASSWORD = "s3cret-Pg-pass-4417"  # the tests check it never shows in target/ or in messages
USER = "seekrun"


def find_bin() -> Path | None:
    for folder in BIN_DIRS:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists() \
                and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *cmd]


@dataclass
class Server:
    bindir: Path
    folder: Path
    port: int
    user: str | None  # the OS user the server runs as (None: this one)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def conninfo(self, dbname: str = "postgres") -> dict:
        return {"host": self.host, "port": self.port, "user": USER, "password": PASSWORD, "dbname": dbname}

    def sql(self, text: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(**self.conninfo(dbname), autocommit=True) as conn:
            conn.execute(text)

    def stop(self) -> None:
        subprocess.run(_as_user([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                                 "-w", "stop"], self.user), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """Start a fresh server; raises RuntimeError (with its log) if it does not start."""
    bindir = find_bin()
    assert bindir is not None
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "nobody"
    folder = Path(tempfile.mkdtemp(prefix="seekrun-pg-"))  # short: a socket path has ~100 bytes at most
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    init = subprocess.run(_as_user([str(bindir / "initdb"), "-D", str(folder / "data"), "-U", USER,
                                    "--pwfile", str(pwfile), "-A", "scram-sha-256", "-E", "UTF8",
                                    "--locale=C"], user), capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
    last = ""
    for _ in range(3):  # the free port may be taken between the check and the start
        port = _free_port()
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=40"
        run = subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-o", opts,
                                       "-l", str(folder / "log"), "-w", "-t", "60", "start"], user),
                             capture_output=True, text=True, timeout=90)
        if run.returncode == 0:
            return Server(bindir, folder, port, user)
        last = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else run.stderr
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last[-2000:]}")


def fixture():
    """A module-scoped pytest fixture: ``pg = pgserver.fixture()`` in a test module."""
    import pytest

    @pytest.fixture(scope="module")
    def pg():
        if find_bin() is None:
            pytest.skip("PostgreSQL 15 is not installed (initdb, pg_ctl, postgres): apt-get install postgresql-15")
        server = start()
        try:
            yield server
        finally:
            server.stop()

    return pg


def profile_yaml(database: str) -> str:
    """A Seeknal profiles.yml with connection `local_pg` to this server's `database`, its port and
    password read from ${TEST_PG_PORT} / ${TEST_PG_PASSWORD} (see fresh_database)."""
    return f"""\
connections:
  local_pg:
    type: postgresql
    host: 127.0.0.1
    port: ${{TEST_PG_PORT}}
    database: {database}
    user: seekrun
    password: ${{TEST_PG_PASSWORD}}
"""


def fresh_database(pg: Server, name: str, seed_sql: str, monkeypatch, home: Path, prefix: str = "TEST_PG") -> None:
    """Database `name` made anew and seeded; the environment a profile reaches it through
    (${<prefix>_PORT}, ${<prefix>_PASSWORD}); no SEEKRUN_ENV / SEEKRUN_PROFILE; Seeknal's home
    folder (where it also looks for profiles) at `home`, so the user's own is never read."""
    pg.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg.sql(f"CREATE DATABASE {name}")
    pg.sql(seed_sql, name)
    monkeypatch.setenv(f"{prefix}_PORT", str(pg.port))
    monkeypatch.setenv(f"{prefix}_PASSWORD", PASSWORD)
    for var in ("SEEKRUN_ENV", "SEEKRUN_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEEKNAL_BASE_CONFIG_PATH", str(home))
