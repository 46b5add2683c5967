"""Who does the writing: one leader per deployment, the other keepers follow.

SQLite: one keeper per file, and it is always the leader (`SoleKeeper`).

PostgreSQL: every keeper calls `AdvisoryLock.check()` every `leader_interval` seconds. It holds a
dedicated session connection and asks `pg_try_advisory_lock(key)` (key derived from the chain id
and the deployment, so keepers of other deployments in the same database do not compete). The
session-level lock lives exactly as long as that session: when the leader dies (SIGKILL, crash,
host gone) PostgreSQL ends its session, the lock is free, and the next follower to check takes it.
While leader, `check()` confirms in pg_locks that its session still holds the lock; any error
(database down, connection cut) means "not leader" until a later check wins the lock again.

Only the leader indexes, runs jobs and settles; `fence()` runs inside each of the store's write
transactions and refuses the write unless this keeper's lock session holds the lock right then, so
a keeper that lost its lock mid-batch commits nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from keeper import db as dbapi

log = logging.getLogger("paygent.keeper.leader")

LEADER, FOLLOWER = "leader", "follower"


# pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
_HELD = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = ? "
         "AND objid::bigint = ? AND objsubid = 1 AND pid = ?)")


class NotLeader(RuntimeError):
    """This keeper does not hold the leader lock (right now)."""


def lock_key(identity: dict[str, str]) -> int:
    """A signed 64-bit advisory-lock key for one deployment (chain id, genesis, contracts)."""
    text = "paygent-keeper\0" + "\0".join(f"{k}={identity[k]}" for k in sorted(identity))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class SoleKeeper:
    """SQLite: the only keeper of its file, always the leader."""

    name = LEADER
    is_leader = True
    error: str | None = None
    exclusive = False
    """False: there is no lock to lose (a stopped indexer stops the keeper instead of stepping down)."""
    fence = None

    def check(self) -> bool:
        return True

    def release(self) -> None:
        pass


class AdvisoryLock:
    """Leader election by a PostgreSQL session-level advisory lock (see the module docstring)."""

    exclusive = True

    def __init__(self, target: dbapi.Target, key: int):
        self.target = target
        self.key = key
        self.is_leader = False
        self.error: str | None = None
        self._conn: Any = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._classid, self._objid = (key >> 32) & 0xFFFF_FFFF, key & 0xFFFF_FFFF

    @property
    def name(self) -> str:
        return LEADER if self.is_leader else FOLLOWER

    def check(self) -> bool:
        """Try to become (or confirm being) the leader. Never raises: an error means follower."""
        import psycopg

        with self._lock:
            was = self.is_leader
            try:
                if self._conn is None or self._conn.closed:
                    self.is_leader, self._pid = False, None
                    self._conn = dbapi.pg_connect(self.target.location, application_name="paygent-keeper-leader",
                                                  connect_timeout=3)  # the supervisor waits on it
                conn = self._conn
                if not self.is_leader:
                    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
                    self._pid = conn.info.backend_pid if got else None
                    self.is_leader = bool(got)
                else:
                    held = conn.execute(dbapi.pg_sql(_HELD), (self._classid, self._objid, self._pid)).fetchone()[0]
                    self.is_leader = bool(held)
                self.error = None
            except (psycopg.Error, dbapi.DatabaseError) as exc:
                self.is_leader, self._pid = False, None
                self.error = dbapi.scrub(str(exc), self.target.location)
                self._close()
            if was and not self.is_leader:
                log.error("lost the leader lock; stepping down", extra={"error": self.error})
            return self.is_leader

    def fence(self, db: Any) -> None:
        """Raise NotLeader unless our lock session holds the lock (run inside a write transaction)."""
        pid = self._pid
        if not self.is_leader or pid is None or not db.execute(_HELD, (self._classid, self._objid, pid)).fetchone()[0]:
            raise NotLeader("this keeper no longer holds the leader lock; write refused")

    def release(self) -> None:
        """Give the lock up (step down / shut down): unlocked at once, then the session closes."""
        with self._lock:
            if self.is_leader and self._conn is not None:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                except Exception:  # noqa: BLE001 - a broken session frees the lock as it ends
                    pass
            self.is_leader, self._pid = False, None
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._conn = None
