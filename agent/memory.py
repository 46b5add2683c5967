"""Memory across sessions (SQLite): which services were used, what they cost, whether they worked.

`rank_key` orders candidate services: services that mostly failed (smoothed success rate below 1/2)
go last; among the rest the cheapest first, then the more reliable, then the faster — so the agent
calls the cheap service that worked last time, and skips a cheaper one that failed twice.
Reliability is Laplace-smoothed ((successes + 2) / (calls + 3)): a new service starts at 2/3.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS service_calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    chain_id INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    price INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS service_calls_by_service ON service_calls (chain_id, service_id);
"""


@dataclass(frozen=True)
class ServiceRecord:
    service_id: int
    name: str
    calls: int
    successes: int
    last_price: int
    avg_latency_ms: float

    @property
    def reliability(self) -> float:
        return (self.successes + 2) / (self.calls + 3)


class Memory:
    def __init__(self, path: Path | None, chain_id: int):
        self.chain_id = chain_id
        target = ":memory:"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL" if path is not None else "PRAGMA journal_mode=MEMORY")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def record(self, service_id: int, name: str, price: int, ok: bool, latency_ms: float,
               error: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO service_calls (ts, chain_id, service_id, name, price, ok, latency_ms, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), self.chain_id, service_id, name, price, int(ok), latency_ms, error))

    def get(self, service_id: int) -> ServiceRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT service_id, MAX(name), COUNT(*), SUM(ok), "
                "(SELECT price FROM service_calls c2 WHERE c2.chain_id = c.chain_id AND c2.service_id = c.service_id "
                " ORDER BY id DESC LIMIT 1), AVG(latency_ms) FROM service_calls c "
                "WHERE chain_id = ? AND service_id = ? GROUP BY service_id", (self.chain_id, service_id)).fetchone()
        return ServiceRecord(*row) if row else None

    def all(self) -> list[ServiceRecord]:
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT DISTINCT service_id FROM service_calls WHERE chain_id = ? ORDER BY service_id",
                (self.chain_id,))]
        return [rec for rec in (self.get(i) for i in ids) if rec is not None]

    def rank_key(self, service_id: int, price: int) -> tuple[bool, int, float, float]:
        """Sort key: not unreliable, then cheapest, then most reliable, then fastest."""
        rec = self.get(service_id)
        reliability = rec.reliability if rec else 2 / 3
        latency = rec.avg_latency_ms if rec else 0.0
        return (reliability < 0.5, price, -round(reliability, 3), latency)

    def close(self) -> None:
        with self._lock:
            self._db.close()
