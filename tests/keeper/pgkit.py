"""A throwaway PostgreSQL server for the keeper's tests (the real server, no stand-in).

`Cluster.start()` runs initdb in a fresh temporary directory (superuser `paygent` with a password:
TCP connections authenticate with scram-sha-256, so the keeper's URLs carry a password the tests
can look for in logs), starts postgres on a free loopback port with its socket in that directory, and
`stop()` stops it and removes the directory. postgres refuses to run as root: as root, the
directory is given to the `postgres` system user and initdb / pg_ctl run through `runuser`.

Missing server binaries are an error, not a reason to skip: CI machines have them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from paygent.localchain import free_port

SUPERUSER = "paygent"
PASSWORD = "pg-Secret-4-tests"
"""The superuser's password: it must never appear in any keeper message or log line."""


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl) are not installed."""


def server_bin() -> Path:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's /usr/lib/postgresql/<v>/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]),
                            reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresMissing("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                          "/usr/lib/postgresql/*/bin: install the server (Debian: apt-get install postgresql)")


class Cluster:
    def __init__(self) -> None:
        self.bin = server_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="paygent-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")

    def start(self) -> "Cluster":
        pwfile = self.dir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, self.dir.stat().st_uid, self.dir.stat().st_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-U", SUPERUSER, f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
