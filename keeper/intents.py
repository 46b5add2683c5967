"""Settlement intents: one row per EIP-3009 authorization, written before anything is broadcast.

Key: (token, payer, nonce) — what the token itself uses to make an authorization single-use. The
row binds the authorization to the hash of the request it pays for, and records the signed raw
transaction *before* it is sent, so after a crash or an RPC timeout the same transaction (same
hash) is re-sent or looked up, never a second one. Status moves only forward:
pending → settled | failed, and only on evidence from the chain (a receipt, or the token saying
the authorization was never used and we never broadcast it).

SQLite by default (WAL, autocommit, one statement per state change), or PostgreSQL (the keeper's
database URL: every keeper of a deployment shares the intents, so a new leader reconciles what an
old one recorded). Autocommit, one statement per state change; the store is safe to share between
threads, and between processes through the database's own locking (the primary key decides who
claims an authorization).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from keeper import db as dbapi

SCHEMA = """
CREATE TABLE IF NOT EXISTS settlement_intents (
    token        TEXT NOT NULL,
    payer        TEXT NOT NULL,
    nonce        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payee        TEXT NOT NULL,
    value        TEXT NOT NULL,
    network      TEXT NOT NULL,
    service_id   BIGINT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
    tx_hash      TEXT,
    raw_tx       TEXT,
    error        TEXT,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (token, payer, nonce)
);
CREATE INDEX IF NOT EXISTS settlement_intents_nonce ON settlement_intents (nonce);
CREATE INDEX IF NOT EXISTS settlement_intents_pending ON settlement_intents (status) WHERE status = 'pending';
"""


class Status(str, Enum):
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass(frozen=True)
class IntentKey:
    token: str
    payer: str
    nonce: str

    @classmethod
    def of(cls, token: str, payer: str, nonce: str) -> "IntentKey":
        return cls(token.lower(), payer.lower(), nonce.lower())


@dataclass(frozen=True)
class Intent:
    key: IntentKey
    request_hash: str
    kind: str
    payee: str
    value: int
    network: str
    service_id: int | None
    status: Status
    tx_hash: str | None = None
    raw_tx: str | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


_COLUMNS = ("token, payer, nonce, request_hash, kind, payee, value, network, service_id, status, "
            "tx_hash, raw_tx, error, created_at, updated_at")


def _row(row: tuple) -> Intent:
    (token, payer, nonce, request_hash, kind, payee, value, network, service_id, status,
     tx_hash, raw_tx, error, created_at, updated_at) = row
    return Intent(IntentKey(token, payer, nonce), request_hash, kind, payee, int(value), network, service_id,
                  Status(status), tx_hash, raw_tx, error, created_at, updated_at)


ANY_TX = object()
"""IntentStore.finish(holding=ANY_TX): close the intent whatever transaction it holds."""


class IntentStore:
    """Intent store on a SQLite file, ``":memory:"`` (a private in-process store), or a
    postgresql:// URL / keeper.db.Target. Raises keeper.db.ERRORS if the database cannot be opened."""

    def __init__(self, where: "str | Path | dbapi.Target" = ":memory:"):
        self.target = dbapi.parse(where)
        self.path = self.target.location
        if not self.target.is_postgres and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = dbapi.connect(self.target)
        self._lock = threading.Lock()
        with self._lock:
            self._db.create_schema(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def claim(self, intent: Intent) -> tuple[Intent, bool]:
        """Insert `intent` (status pending) unless a row for its key exists.

        Returns (the stored row, True if this call created it). Exactly one caller wins per key,
        across threads and processes.
        """
        now = time.time()
        k = intent.key
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO settlement_intents ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, NULL, ?, ?) ON CONFLICT DO NOTHING",
                (k.token, k.payer, k.nonce, intent.request_hash, intent.kind, intent.payee.lower(),
                 str(intent.value), intent.network, intent.service_id, now, now),
            )
            created = cur.rowcount == 1
        stored = self.get(k)
        assert stored is not None
        return stored, created

    def get(self, key: IntentKey) -> Intent | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM settlement_intents WHERE token = ? AND payer = ? AND nonce = ?",
                (key.token, key.payer, key.nonce),
            ).fetchone()
        return _row(row) if row else None

    def by_nonce(self, nonce: str) -> list[Intent]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM settlement_intents WHERE nonce = ? ORDER BY created_at",
                (nonce.lower(),),
            ).fetchall()
        return [_row(r) for r in rows]

    def pending(self) -> list[Intent]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM settlement_intents WHERE status = 'pending' ORDER BY created_at"
            ).fetchall()
        return [_row(r) for r in rows]

    def record_tx(self, key: IntentKey, tx_hash: str, raw_tx: str) -> bool:
        """Remember the signed transaction before it is broadcast. False if the row is no longer
        pending (then the transaction must not be sent)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE settlement_intents SET tx_hash = ?, raw_tx = ?, updated_at = ? "
                "WHERE token = ? AND payer = ? AND nonce = ? AND status = 'pending'",
                (tx_hash, raw_tx, time.time(), key.token, key.payer, key.nonce),
            )
            return cur.rowcount == 1

    def replace_tx(self, key: IntentKey, old_tx_hash: str, tx_hash: str, raw_tx: str) -> bool:
        """Swap a pending intent's transaction for a new one, before the new one is broadcast, only
        if it still holds `old_tx_hash` (so two reconcilers cannot both send). False: do not send."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE settlement_intents SET tx_hash = ?, raw_tx = ?, updated_at = ? "
                "WHERE token = ? AND payer = ? AND nonce = ? AND status = 'pending' AND tx_hash = ?",
                (tx_hash, raw_tx, time.time(), key.token, key.payer, key.nonce, old_tx_hash),
            )
            return cur.rowcount == 1

    def finish(self, key: IntentKey, status: Status, *, tx_hash: str | None = None,
               error: str | None = None, holding: str | None | object = ANY_TX) -> Intent:
        """Close a pending intent as settled or failed. A closed intent is never reopened or changed.
        `holding`: close it only if it still holds that transaction hash (None: only if it has no
        transaction yet), so a decision taken on an older read cannot overrule a newer write.
        Returns the stored intent (still pending if `holding` did not match)."""
        if status is Status.PENDING:
            raise ValueError("finish() closes an intent: settled or failed")
        condition, extra = "", ()
        if holding is None:
            condition = " AND raw_tx IS NULL"
        elif holding is not ANY_TX:
            condition, extra = " AND tx_hash = ?", (holding,)
        with self._lock:
            self._db.execute(
                "UPDATE settlement_intents SET status = ?, tx_hash = COALESCE(?, tx_hash), error = ?, "
                "updated_at = ? WHERE token = ? AND payer = ? AND nonce = ? AND status = 'pending'" + condition,
                (status.value, tx_hash, error, time.time(), key.token, key.payer, key.nonce, *extra),
            )
        stored = self.get(key)
        assert stored is not None
        return stored

    def forget_unbroadcast(self, key: IntentKey) -> None:
        """Drop a pending row that never got a transaction (verification failed before broadcast),
        so the same authorization may be tried again once its problem is fixed."""
        with self._lock:
            self._db.execute(
                "DELETE FROM settlement_intents WHERE token = ? AND payer = ? AND nonce = ? "
                "AND status = 'pending' AND raw_tx IS NULL",
                (key.token, key.payer, key.nonce),
            )

    def counts(self) -> dict[str, int]:
        """How many intents are in each status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM settlement_intents GROUP BY status").fetchall()
        return {status: int(n) for status, n in rows}

    def failed_since(self, since: float) -> list[tuple[str, str, str | None]]:
        """(payer, nonce, error) of the intents that failed at or after `since` (unix seconds)."""
        with self._lock:
            rows = self._db.execute("SELECT payer, nonce, error FROM settlement_intents WHERE status = 'failed' AND "
                                    "updated_at >= ? ORDER BY updated_at", (since,)).fetchall()
        return [(payer, nonce, error) for payer, nonce, error in rows]
