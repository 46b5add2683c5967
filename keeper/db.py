"""The keeper's two databases behind one small interface: SQLite (default) and PostgreSQL.

The SQL is written once, in the dialect both understand (SQLite >= 3.24 and PostgreSQL):
`INSERT ... ON CONFLICT (...) DO NOTHING` / `DO UPDATE SET col = excluded.col`, BIGINT for 64-bit
integers (SQLite gives it INTEGER affinity), DOUBLE PRECISION for times, `?` placeholders. What
still differs is hidden here:

  placeholders   `?` as written (SQLite) or `%s` (psycopg), translated once per statement text
  transactions   `BEGIN IMMEDIATE` (SQLite: take the write lock up front) or `BEGIN`
  changes        `executemany()` returns the number of rows it changed, on both
  rows by name   `query()` rows answer r[0] and r["column"] on both
  schema         `create_schema()`: one script; on PostgreSQL under a lock, so keepers starting
                 together do not race on CREATE TABLE IF NOT EXISTS
  errors         catch `ERRORS`; PostgreSQL errors arrive as DatabaseError with one clean line
  passwords      `redact()` / `Target.redacted` for every message and log line

The SQLite connection hands out `sqlite3.Connection.execute` itself (the indexer's hot path pays
nothing for the adapter). psycopg is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlsplit

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT = 5
"""Seconds a PostgreSQL connection attempt may take."""
_SCHEMA_LOCK = 0x7061_7967_656E_7431  # "paygent1": serialises schema creation between keepers


class DatabaseError(RuntimeError):
    """A PostgreSQL operation failed; the message is one line and carries no password."""


ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, DatabaseError)
"""What a database call may raise (catch this tuple, whatever the backend)."""


# ------------------------------------------------------------------------------------------------
# Where the data lives


@dataclass(frozen=True)
class Target:
    """A database location: a SQLite file (or ":memory:") or a PostgreSQL URL (which may hold a password)."""

    kind: str
    """"sqlite" or "postgresql"."""
    location: str
    """The file path, or the full URL (secret: print `redacted`)."""

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"

    @property
    def path(self) -> Path:
        if self.is_postgres:
            raise ValueError("a PostgreSQL target has no file path")
        return Path(self.location)

    @property
    def redacted(self) -> str:
        return redact(self.location) if self.is_postgres else self.location

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"Target({self.kind}, {self.redacted})"


def redact(url: str) -> str:
    """The URL with its password (user:PASSWORD@ or ?password=) replaced by ***."""
    # Up to the LAST "@": a password with an unencoded "@" is hidden whole, not shown in part.
    url = re.sub(r"^([a-z]+://[^/?#@:]*:).*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def _password(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.password:
        return parts.password
    return dict(parse_qsl(parts.query)).get("password") or None


def scrub(message: str, url: str) -> str:
    """First line of a driver message, with the URL and its password removed."""
    line = " ".join(message.strip().splitlines()[0].split()) if message.strip() else "unknown error"
    line = line.replace(url, redact(url))
    secret = _password(url)
    return line.replace(secret, "***") if secret else line


def parse(value: "str | Path | Target") -> Target:
    """A Target from a path, ":memory:", sqlite:///path or postgresql://user:pw@host:port/db.

    Raises ValueError (message without the password) for a URL that cannot work."""
    if isinstance(value, Target):
        return value
    if isinstance(value, Path):
        return Target("sqlite", str(value))
    if value.startswith(SCHEMES):
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{redact(value)} is not a valid PostgreSQL URL ({exc})") from None
        if port == 0:
            raise ValueError(f"{redact(value)}: port 0 is not a port")
        if parts.path.count("/") > 1:
            raise ValueError(f"{redact(value)}: the database name cannot contain '/'")
        return Target("postgresql", value)
    if value.startswith("sqlite:///"):
        return Target("sqlite", value.removeprefix("sqlite:///") or ":memory:")
    if "://" in value:
        raise ValueError(f"{value.split('://')[0]}:// is not a database this keeper speaks "
                         "(sqlite:///path/keeper.sqlite or postgresql://user:password@host:port/database)")
    return Target("sqlite", value)


# ------------------------------------------------------------------------------------------------
# SQLite


class SqliteDatabase:
    """One SQLite connection in autocommit mode; `tx()` opens a write transaction."""

    dialect = "sqlite"

    def __init__(self, path: str, *, readonly: bool = False, timeout: float = 30.0):
        self.location = path
        if readonly:
            self._conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=timeout,
                                         check_same_thread=False, isolation_level=None)
        else:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self.execute = self._conn.execute

    @property
    def max_parameters(self) -> int:
        """Bound parameters one statement may have (this SQLite build's limit: 999 before 3.32)."""
        return self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._conn.executemany(sql, rows).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self._conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, tuple(params)).fetchall()

    def create_schema(self, script: str) -> None:
        if self.location != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(script)

    @contextmanager
    def tx(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class SqliteReaders:
    """Read connections, one per thread (WAL lets them read while the writer writes)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        db = getattr(self._local, "db", None)
        if db is None:  # read-only: a missing or moved store file is an error, never recreated empty
            db = self._local.db = SqliteDatabase(self.path, readonly=True)
            db.execute("PRAGMA query_only=1")
        return db.query(sql, params)


# ------------------------------------------------------------------------------------------------
# PostgreSQL


class Row(tuple):
    """A result row that also answers row["column"] (as sqlite3.Row does)."""

    __slots__ = ()
    _names: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _named_rows(cursor: Any) -> Any:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return type("Row", (Row,), {"__slots__": (), "_names": names})


_PG_SQL: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (and a literal % doubled). Our SQL has no ? in literals."""
    out = _PG_SQL.get(sql)
    if out is None:
        out = _PG_SQL[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


INSERT_CHUNK = 400
"""Rows per multi-row INSERT at most; fewer when the database takes fewer parameters per statement
(`max_parameters`: SQLite's compiled limit, 999 before 3.32; PostgreSQL's 65,535)."""

_VALUES: dict[tuple[int, int], str] = {}


def insert_rows(db: Any, head: str, tail: str, rows: Sequence[Sequence[Any]], width: int) -> int:
    """`head VALUES (?,..),(?,..),... tail` in chunks of INSERT_CHUNK rows; returns the rows changed.

    One statement per chunk instead of one per row (executemany): besides the per-statement work,
    Python's sqlite3 releases the GIL around every statement it steps, and with the indexer's
    fetcher thread parsing JSON meanwhile each release can cost a whole thread switch interval;
    per row that made a batch up to ~100x slower under contention (measured, bench/keeper.py)."""
    changed = 0
    chunk = max(1, min(INSERT_CHUNK, db.max_parameters // width))
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        key = (len(part), width)
        values = _VALUES.get(key)
        if values is None:
            values = _VALUES[key] = ",".join(["(" + ",".join("?" * width) + ")"] * len(part))
        cur = db.execute(f"{head} VALUES {values} {tail}", [v for row in part for v in row])
        changed += cur.rowcount
    return changed


def pg_connect(url: str, *, readonly: bool = False, application_name: str = "paygent-keeper",
               connect_timeout: int = CONNECT_TIMEOUT) -> Any:
    """A psycopg connection in autocommit mode, with TCP keepalives (a dead peer is noticed in
    ~15 s on both sides). Raises DatabaseError with a one-line, password-free reason."""
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout,
                               application_name=application_name, keepalives=1, keepalives_idle=5,
                               keepalives_interval=2, keepalives_count=3)
        conn.execute("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3")
        if readonly:
            conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raise DatabaseError(scrub(str(exc), url)) from None
    return conn


class PostgresDatabase:
    """One psycopg connection in autocommit mode; reconnects on the next call after it broke
    (never inside a transaction: that transaction fails)."""

    dialect = "postgresql"
    max_parameters = 65_535
    """Bound parameters one statement may have (the wire protocol's 16-bit count)."""

    def __init__(self, url: str, *, readonly: bool = False):
        import psycopg

        self._psycopg = psycopg
        self.location = url
        self._readonly = readonly
        self._in_tx = False
        self._conn = pg_connect(url, readonly=readonly)

    def _live(self) -> Any:
        if self._conn.closed:
            if self._in_tx:
                raise DatabaseError("the PostgreSQL connection was lost inside a transaction")
            self._conn = pg_connect(self.location, readonly=self._readonly)
        return self._conn

    def _failed(self, exc: Exception) -> DatabaseError:
        if self._conn.broken:
            self._conn.close()
        return DatabaseError(scrub(str(exc), self.location))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._live().execute(pg_sql(sql) if params else sql, tuple(params) if params else None)
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        try:
            cur = self._live().cursor()
            cur.executemany(pg_sql(sql), rows)
            return cur.rowcount
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            cur = self._live().cursor(row_factory=_named_rows)
            return cur.execute(pg_sql(sql) if params else sql, tuple(params) if params else None).fetchall()
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def create_schema(self, script: str) -> None:
        with self.tx():
            self.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            self.execute(script)

    def _begin(self) -> Any:
        """BEGIN on a live connection. A connection that died while idle (server restart, a
        terminated session) is replaced once: nothing was sent on it yet."""
        for attempt in (1, 2):
            conn = self._live()
            try:
                conn.execute("BEGIN")
                return conn
            except self._psycopg.Error as exc:
                if attempt == 2 or not conn.broken:
                    raise self._failed(exc) from exc
                conn.close()
        raise AssertionError("unreachable")

    @contextmanager
    def tx(self) -> Iterator[None]:
        conn = self._begin()
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._in_tx = False
            try:
                conn.execute("ROLLBACK")
            except self._psycopg.Error:  # the connection is gone: so is the transaction
                conn.close()
            raise
        self._in_tx = False
        try:
            conn.execute("COMMIT")
        except self._psycopg.Error as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        self._conn.close()


class PostgresReaders:
    """A small pool of read-only connections shared by the reading threads."""

    def __init__(self, url: str, keep: int = 4):
        self.url = url
        self.keep = keep
        self._idle: list[PostgresDatabase] = []
        self._lock = threading.Lock()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read. An idle pooled connection that turns out dead is replaced once (a read
        can be repeated safely)."""
        with self._lock:
            db = self._idle.pop() if self._idle else None
        pooled = db is not None
        if db is None:
            db = PostgresDatabase(self.url, readonly=True)
        try:
            rows = db.query(sql, params)
        except DatabaseError:
            db.close()
            if not pooled:
                raise
            db = PostgresDatabase(self.url, readonly=True)
            try:
                rows = db.query(sql, params)
            except BaseException:
                db.close()
                raise
        except BaseException:
            db.close()
            raise
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(db)
                db = None
        if db is not None:
            db.close()
        return rows

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


# ------------------------------------------------------------------------------------------------


def connect(target: "Target | str | Path", *, readonly: bool = False) -> "SqliteDatabase | PostgresDatabase":
    """One connection to `target` (a writer unless `readonly`)."""
    target = parse(target)
    if target.is_postgres:
        return PostgresDatabase(target.location, readonly=readonly)
    return SqliteDatabase(target.location, readonly=readonly)


def readers(target: Target) -> "SqliteReaders | PostgresReaders":
    return PostgresReaders(target.location) if target.is_postgres else SqliteReaders(target.location)
