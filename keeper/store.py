"""The keeper's store: indexed events, the state they imply, and the indexer's cursor.

SQLite by default, PostgreSQL when given a postgresql:// URL: one schema and one set of statements
for both (keeper/db.py hides placeholders, transactions and row access).

Every indexed log becomes one history row keyed by (chain id, tx hash, log index) — inserting it
twice is a no-op — and updates a "current state" projection (services, subscriptions, agents,
rules, spend windows, approval requests, per-service stats). A batch of logs, the block hashes it
covers and the new cursor are written in ONE transaction: a crash leaves the store at the previous
batch or the next one, never between.

A reorg is undone by `rewind(ancestor)`: history rows above the fork point are deleted and the
projections of every entity they touched are rebuilt by replaying that entity's remaining history.

Numbers wider than 64-bit integers (token amounts, prices) are stored as decimal TEXT;
prices also as a zero-padded key so `max_price` filters compare correctly. Addresses are
lower-case hex.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from keeper import db as dbapi

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursor (
    chain_id BIGINT PRIMARY KEY, block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    chain_id BIGINT NOT NULL, number BIGINT NOT NULL, hash TEXT NOT NULL, timestamp BIGINT NOT NULL,
    PRIMARY KEY (chain_id, number));

-- ServiceRegistry: one row per event (history) and the current state per service.
CREATE TABLE IF NOT EXISTS service_events (
    chain_id BIGINT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL, timestamp BIGINT NOT NULL, event TEXT NOT NULL,
    service_id BIGINT NOT NULL, provider TEXT NOT NULL, name TEXT NOT NULL, endpoint TEXT NOT NULL,
    model BIGINT NOT NULL, token TEXT NOT NULL, price TEXT NOT NULL, period BIGINT NOT NULL,
    pay_to TEXT NOT NULL, metadata_uri TEXT NOT NULL, active BIGINT NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index));
CREATE INDEX IF NOT EXISTS service_events_service ON service_events (chain_id, service_id, block_number, log_index);
CREATE INDEX IF NOT EXISTS service_events_block ON service_events (chain_id, block_number);
CREATE TABLE IF NOT EXISTS services (
    chain_id BIGINT NOT NULL, service_id BIGINT NOT NULL, provider TEXT NOT NULL, name TEXT NOT NULL,
    endpoint TEXT NOT NULL, model BIGINT NOT NULL, token TEXT NOT NULL, price TEXT NOT NULL,
    price_key TEXT NOT NULL, period BIGINT NOT NULL, pay_to TEXT NOT NULL, metadata_uri TEXT NOT NULL,
    active BIGINT NOT NULL, registered_block BIGINT NOT NULL, updated_block BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, PRIMARY KEY (chain_id, service_id));

-- PaymentRouter.
CREATE TABLE IF NOT EXISTS payments (
    chain_id BIGINT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL, timestamp BIGINT NOT NULL, payment_id BIGINT NOT NULL,
    service_id BIGINT NOT NULL, payer TEXT NOT NULL, token TEXT NOT NULL, pay_to TEXT NOT NULL,
    amount TEXT NOT NULL, fee TEXT NOT NULL, units TEXT NOT NULL, ref TEXT NOT NULL, kind BIGINT NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index));
CREATE INDEX IF NOT EXISTS payments_id ON payments (chain_id, payment_id);
CREATE INDEX IF NOT EXISTS payments_payer ON payments (chain_id, payer, payment_id);
CREATE INDEX IF NOT EXISTS payments_service ON payments (chain_id, service_id, payment_id);
CREATE INDEX IF NOT EXISTS payments_block ON payments (chain_id, block_number);
CREATE TABLE IF NOT EXISTS service_stats (
    chain_id BIGINT NOT NULL, service_id BIGINT NOT NULL, volume TEXT NOT NULL, fees TEXT NOT NULL,
    payments BIGINT NOT NULL, last_paid_at BIGINT NOT NULL, PRIMARY KEY (chain_id, service_id));
CREATE TABLE IF NOT EXISTS subscription_events (
    chain_id BIGINT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL, service_id BIGINT NOT NULL, subscriber TEXT NOT NULL,
    expires_at BIGINT NOT NULL, payment_id BIGINT NOT NULL, PRIMARY KEY (chain_id, tx_hash, log_index));
CREATE INDEX IF NOT EXISTS subscription_events_key ON subscription_events (chain_id, service_id, subscriber);
CREATE INDEX IF NOT EXISTS subscription_events_block ON subscription_events (chain_id, block_number);
CREATE TABLE IF NOT EXISTS subscriptions (
    chain_id BIGINT NOT NULL, service_id BIGINT NOT NULL, subscriber TEXT NOT NULL, expires_at BIGINT NOT NULL,
    payment_id BIGINT NOT NULL, updated_block BIGINT NOT NULL, PRIMARY KEY (chain_id, service_id, subscriber));

-- AgentWallet (and the router's admin events): history as JSON, projections per wallet.
CREATE TABLE IF NOT EXISTS contract_events (
    chain_id BIGINT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL, timestamp BIGINT NOT NULL, address TEXT NOT NULL, event TEXT NOT NULL,
    args TEXT NOT NULL, PRIMARY KEY (chain_id, tx_hash, log_index));
CREATE INDEX IF NOT EXISTS contract_events_address ON contract_events (chain_id, address, block_number, log_index);
CREATE INDEX IF NOT EXISTS contract_events_block ON contract_events (chain_id, block_number);
CREATE TABLE IF NOT EXISTS wallets (
    chain_id BIGINT NOT NULL, wallet TEXT NOT NULL, owner TEXT, paused BIGINT NOT NULL DEFAULT 0,
    request_ttl BIGINT, PRIMARY KEY (chain_id, wallet));
CREATE TABLE IF NOT EXISTS agents (
    chain_id BIGINT NOT NULL, wallet TEXT NOT NULL, agent TEXT NOT NULL, active BIGINT NOT NULL,
    paused BIGINT NOT NULL, updated_block BIGINT NOT NULL, PRIMARY KEY (chain_id, wallet, agent));
CREATE TABLE IF NOT EXISTS rules (
    chain_id BIGINT NOT NULL, wallet TEXT NOT NULL, agent TEXT NOT NULL, token TEXT NOT NULL,
    "limit" TEXT NOT NULL, cap TEXT NOT NULL, period BIGINT NOT NULL, float_cap TEXT NOT NULL,
    updated_block BIGINT NOT NULL, PRIMARY KEY (chain_id, wallet, agent, token));
CREATE TABLE IF NOT EXISTS spend (
    chain_id BIGINT NOT NULL, wallet TEXT NOT NULL, agent TEXT NOT NULL, token TEXT NOT NULL,
    window_index BIGINT NOT NULL, spent TEXT NOT NULL, updated_block BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, wallet, agent, token));
CREATE TABLE IF NOT EXISTS approvals (
    chain_id BIGINT NOT NULL, wallet TEXT NOT NULL, request_id BIGINT NOT NULL, agent TEXT NOT NULL,
    token TEXT NOT NULL, to_address TEXT NOT NULL, amount TEXT NOT NULL, approved_amount TEXT,
    ref TEXT NOT NULL, expires_at BIGINT NOT NULL, status TEXT NOT NULL, proposed_block BIGINT NOT NULL,
    proposed_tx TEXT NOT NULL, updated_block BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, wallet, request_id));
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (chain_id, status, expires_at);

-- Subscription renewals the subscriber pre-authorized (EIP-3009 ReceiveWithAuthorization to the router).
CREATE TABLE IF NOT EXISTS renewals (
    chain_id BIGINT NOT NULL, service_id BIGINT NOT NULL, subscriber TEXT NOT NULL, token TEXT NOT NULL,
    nonce TEXT NOT NULL, value TEXT NOT NULL, valid_after BIGINT NOT NULL, valid_before BIGINT NOT NULL,
    signature TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'waiting', tx_hash TEXT, error TEXT,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (chain_id, subscriber, nonce));
"""

# Tables whose rows come from logs; rewind deletes their rows above the fork point.
HISTORY_TABLES = ("service_events", "payments", "subscription_events", "contract_events")
STATUS_BY_EVENT = {
    "RequestProposed": "pending", "RequestExecuted": "executed", "RequestRejected": "rejected",
    "RequestCancelled": "cancelled", "RequestExpired": "expired",
}
APPROVAL_STATUSES = ("pending", "executed", "rejected", "cancelled", "expired")


def upsert(table: str, columns: str, key: str, values: str | None = None) -> str:
    """INSERT ... ON CONFLICT (key) DO UPDATE of every other column (what INSERT OR REPLACE meant,
    in the syntax SQLite and PostgreSQL share)."""
    cols, keys = columns.split(), key.split()
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
    return (f"INSERT INTO {table} VALUES ({values or ', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}")


UPSERT_CURSOR = upsert("cursor", "chain_id block_number block_hash updated_at", "chain_id")
UPSERT_BLOCK = upsert("blocks", "chain_id number hash timestamp", "chain_id number")
UPSERT_STATS = upsert("service_stats", "chain_id service_id volume fees payments last_paid_at", "chain_id service_id")
UPSERT_SUBSCRIPTION = upsert("subscriptions", "chain_id service_id subscriber expires_at payment_id updated_block",
                             "chain_id service_id subscriber")
UPSERT_AGENT = upsert("agents", "chain_id wallet agent active paused updated_block", "chain_id wallet agent")
UPSERT_RULE = upsert("rules", 'chain_id wallet agent token "limit" cap period float_cap updated_block',
                     "chain_id wallet agent token")
UPSERT_SPEND = upsert("spend", "chain_id wallet agent token window_index spent updated_block updated_at",
                      "chain_id wallet agent token")
UPSERT_APPROVAL = upsert("approvals", "chain_id wallet request_id agent token to_address amount approved_amount ref "
                         "expires_at status proposed_block proposed_tx updated_block updated_at",
                         "chain_id wallet request_id", values="?,?,?,?,?,?,?,NULL,?,?,'pending',?,?,?,?")


class StoreError(RuntimeError):
    """The database cannot be opened or does not belong to this deployment."""


@dataclass(frozen=True, slots=True)
class Log:
    """One decoded log, ready to store."""

    block_number: int
    log_index: int
    tx_hash: str
    address: str
    kind: str
    """Which contract emitted it: registry, router or wallet."""
    event: str
    args: dict[str, Any]


PAYMENT_FIELDS = ("paymentId", "serviceId", "payer", "token", "payTo", "amount", "fee", "units", "ref", "kind")
"""PaymentMade's arguments in the order of the payments table (and of a PaymentRecord after its
first three fields)."""

PaymentRecord = tuple
"""A decoded PaymentMade, for the high-volume path that skips Log objects: (block_number,
log_index, tx_hash, *PAYMENT_FIELDS values), amounts as ints. The indexer's decoder emits these;
`commit_batch` also accepts PaymentMade as a Log."""


def payment_record(lg: Log) -> PaymentRecord:
    a = lg.args
    return (lg.block_number, lg.log_index, lg.tx_hash, *(a[f] for f in PAYMENT_FIELDS))


@dataclass(frozen=True)
class Cursor:
    block_number: int
    block_hash: str


@dataclass
class BatchResult:
    inserted: int = 0
    duplicates: int = 0
    touched_services: set[int] = field(default_factory=set)


def price_key(price: int) -> str:
    return f"{price:032d}"


class Store:
    """The keeper's store. One writer connection (the indexer's thread, guarded by a lock); reads
    from any thread go through their own connections (SQLite: one per thread, WAL lets them read
    while the writer writes; PostgreSQL: a small pool).

    `where` is a SQLite path (or ":memory:"), a postgresql:// URL, or a keeper.db.Target.
    `fence`, if set, is called inside every write transaction and raises to refuse it (the leader
    check on PostgreSQL: a keeper that lost its lock writes nothing)."""

    def __init__(self, where: "str | Path | dbapi.Target", chain_id: int):
        self.target = dbapi.parse(where)
        self.path = self.target.location
        self.chain_id = chain_id
        self.fence: Callable[[Any], None] | None = None
        self._memory = self.path == ":memory:"
        if not self.target.is_postgres and not self._memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the data directory for {self.path}: {exc}") from None
        try:
            self._db = dbapi.connect(self.target)
            self._db.create_schema(SCHEMA)
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                             (SCHEMA_VERSION,))
        except dbapi.ERRORS as exc:
            raise StoreError(f"cannot open the keeper database {self.target}: {exc}") from None
        self._lock = threading.RLock()
        self._readers = None if self._memory else dbapi.readers(self.target)

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if isinstance(self._readers, dbapi.PostgresReaders):
                self._readers.close()

    # --- reading (any thread) ------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows (by index and by column name) of a read; sees committed batches only."""
        if self._readers is None:
            with self._lock:
                return self._db.query(sql, tuple(params))
        return self._readers.query(sql, tuple(params))

    def ping(self) -> bool:
        """The store answers a read of its own data (SELECT 1 alone never touches the file)."""
        try:
            self.query("SELECT COUNT(*) FROM cursor")
            return True
        except dbapi.ERRORS:
            return False

    # --- identity -------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def bind(self, identity: dict[str, str]) -> bool:
        """Tie the store to one deployment (chain id, genesis hash, addresses).

        Returns True if the store was empty or already bound to the same identity, False if it holds
        another deployment's data (the caller decides: refuse, or `reset()` on a local chain).
        """
        wanted = {f"id:{k}": v for k, v in identity.items()}
        with self._lock:
            with self._db.tx():  # keepers starting together: one binds, the others then compare
                current = dict(self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'id:%'").fetchall())
                if not current:
                    self._db.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                                         sorted(wanted.items()))
                    return True
            return current == wanted

    def reset(self) -> None:
        """Forget everything indexed (a new local chain); renewals and schema stay."""
        with self._lock, self._tx():
            for table in ("cursor", "blocks", *HISTORY_TABLES, "services", "service_stats", "subscriptions",
                          "wallets", "agents", "rules", "spend", "approvals"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self._db.execute("DELETE FROM meta WHERE key LIKE 'id:%'")

    # --- cursor ---------------------------------------------------------------------------------

    def cursor(self) -> Cursor | None:
        rows = self.query("SELECT block_number, block_hash FROM cursor WHERE chain_id = ?", (self.chain_id,))
        return Cursor(rows[0][0], rows[0][1]) if rows else None

    def recent_blocks(self, below_or_at: int, limit: int) -> list[tuple[int, str]]:
        """Stored block hashes at or below a height, newest first (to find a reorg's fork point)."""
        rows = self.query("SELECT number, hash FROM blocks WHERE chain_id = ? AND number <= ? ORDER BY number DESC "
                          "LIMIT ?", (self.chain_id, below_or_at, limit))
        return [(r[0], r[1]) for r in rows]

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._db.tx():
            if self.fence is not None:
                self.fence(self._db)
            yield

    def _put_cursor(self, number: int, block_hash: str) -> None:
        self._db.execute(UPSERT_CURSOR, (self.chain_id, number, block_hash, time.time()))

    # --- writing a batch ------------------------------------------------------------------------

    def commit_batch(self, logs: list[Log], blocks: dict[int, tuple[str, int]], cursor: Cursor,
                     reorg_window: int = 512, payments: Iterable[PaymentRecord] = ()) -> BatchResult:
        """Store `logs` (in chain order) and the PaymentMade `payments` records, the hashes of
        `blocks` {number: (hash, timestamp)} and the new cursor, all in one transaction. Payments
        do not depend on other events, so they are written first."""
        result = BatchResult()
        cid = self.chain_id
        records = list(payments)
        others = []
        for lg in logs:
            if lg.event == "PaymentMade" and lg.kind == "router":
                records.append(payment_record(lg))
            else:
                others.append(lg)
        with self._lock, self._tx():
            db = self._db
            rows = []
            stats: dict[int, list[int]] = {}
            for bn, li, tx, pid, sid, payer, token, pay_to, amount, fee, units, ref, kind in records:
                ts = blocks[bn][1]
                rows.append((cid, tx, li, bn, ts, pid, sid, payer, token, pay_to, str(amount), str(fee), str(units),
                             ref, kind))
                s = stats.get(sid)
                if s is None:
                    stats[sid] = [amount, fee, 1, ts]
                else:
                    s[0] += amount
                    s[1] += fee
                    s[2] += 1
                    if ts > s[3]:
                        s[3] = ts
            if rows:
                fresh = dbapi.insert_rows(db, "INSERT INTO payments", "ON CONFLICT DO NOTHING", rows, 15)
                if fresh == len(rows):
                    self._add_stats(stats)
                else:  # some were stored before (a replayed range): recount those services exactly
                    self._rebuild_stats(set(stats))
                result.inserted += fresh
                result.duplicates += len(rows) - fresh
            registry = [lg for lg in others if lg.kind == "registry"]
            if len(registry) > 1 and self._registry_bulk(registry, blocks, result):
                others = [lg for lg in others if lg.kind != "registry"]
            for lg in others:
                ts = blocks[lg.block_number][1]
                if self._insert_history(lg, ts):
                    result.inserted += 1
                    self._apply(lg, ts)
                else:
                    result.duplicates += 1
            db.executemany(UPSERT_BLOCK,
                           [(cid, n, h, ts) for n, (h, ts) in blocks.items()])
            db.execute("DELETE FROM blocks WHERE chain_id = ? AND number < ?", (cid, cursor.block_number - reorg_window))
            self._put_cursor(cursor.block_number, cursor.block_hash)
        return result

    def set_cursor(self, cursor: Cursor) -> None:
        with self._lock, self._tx():
            self._put_cursor(cursor.block_number, cursor.block_hash)

    def _add_stats(self, agg: dict[int, list[int]]) -> None:
        cid = self.chain_id
        for service_id, (volume, fees, count, last) in agg.items():
            row = self._db.execute("SELECT volume, fees, payments, last_paid_at FROM service_stats "
                                   "WHERE chain_id = ? AND service_id = ?", (cid, service_id)).fetchone()
            if row:
                volume += int(row[0])
                fees += int(row[1])
                count += row[2]
                last = max(last, row[3])
            self._db.execute(UPSERT_STATS,
                             (cid, service_id, str(volume), str(fees), count, last))

    def _rebuild_stats(self, service_ids: Iterable[int]) -> None:
        cid = self.chain_id
        for service_id in service_ids:
            volume = fees = count = last = 0
            for amount, fee, ts in self._db.execute(
                    "SELECT amount, fee, timestamp FROM payments WHERE chain_id = ? AND service_id = ?",
                    (cid, service_id)):
                volume += int(amount)
                fees += int(fee)
                count += 1
                last = max(last, ts)
            if count:
                self._db.execute(UPSERT_STATS,
                                 (cid, service_id, str(volume), str(fees), count, last))
            else:
                self._db.execute("DELETE FROM service_stats WHERE chain_id = ? AND service_id = ?", (cid, service_id))

    def _service_event_row(self, lg: Log, ts: int) -> tuple:
        a = lg.args
        return (self.chain_id, lg.tx_hash, lg.log_index, lg.block_number, ts, lg.event, a["serviceId"], a["provider"],
                a["name"], a["endpoint"], a["model"], a["token"], str(a["price"]), a["period"], a["payTo"],
                a["metadataURI"], int(a["active"]))

    def _registry_bulk(self, logs: list[Log], blocks: dict[int, tuple[str, int]], result: BatchResult) -> bool:
        """All of a batch's registry events at once: one multi-row history insert, then only the
        first and the last event of each service projected (every event carries every field, so
        that is the state all of them lead to; the first one keeps a registration's block).
        False, with nothing written, if some were stored before: the caller then goes row by row."""
        rows = [self._service_event_row(lg, blocks[lg.block_number][1]) for lg in logs]
        self._db.execute("SAVEPOINT registry_bulk")
        fresh = dbapi.insert_rows(self._db, "INSERT INTO service_events", "ON CONFLICT DO NOTHING", rows, 17)
        if fresh != len(rows):  # a (partly) replayed range: undo, the per-row path decides each event
            self._db.execute("ROLLBACK TO SAVEPOINT registry_bulk")
            self._db.execute("RELEASE SAVEPOINT registry_bulk")
            return False
        self._db.execute("RELEASE SAVEPOINT registry_bulk")
        first: dict[int, Log] = {}
        last: dict[int, Log] = {}
        for lg in logs:
            first.setdefault(lg.args["serviceId"], lg)
            last[lg.args["serviceId"]] = lg
        for sid, lg in first.items():
            self._apply(lg, blocks[lg.block_number][1])
            if last[sid] is not lg:
                self._apply(last[sid], blocks[last[sid].block_number][1])
        result.inserted += fresh
        return True

    def _insert_history(self, lg: Log, ts: int) -> bool:
        cid, a = self.chain_id, lg.args
        if lg.kind == "registry":
            cur = self._db.execute(
                "INSERT INTO service_events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                self._service_event_row(lg, ts))
        elif lg.kind == "router" and lg.event == "SubscriptionExtended":
            cur = self._db.execute(
                "INSERT INTO subscription_events VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (cid, lg.tx_hash, lg.log_index, lg.block_number, a["serviceId"], a["subscriber"], a["expiresAt"],
                 a["paymentId"]))
        else:
            cur = self._db.execute(
                "INSERT INTO contract_events VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (cid, lg.tx_hash, lg.log_index, lg.block_number, ts, lg.address, lg.event,
                 json.dumps(a, default=str)))
        return cur.rowcount == 1

    # --- projections ------------------------------------------------------------------------------

    def _apply(self, lg: Log, ts: int) -> None:
        """Update the current-state tables for one new event (called in chain order)."""
        cid, a, db = self.chain_id, lg.args, self._db
        if lg.kind == "registry":
            db.execute(
                "INSERT INTO services VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (chain_id, service_id) DO UPDATE SET provider = excluded.provider, name = excluded.name, "
                "endpoint = excluded.endpoint, model = excluded.model, token = excluded.token, price = excluded.price, "
                "price_key = excluded.price_key, period = excluded.period, pay_to = excluded.pay_to, "
                "metadata_uri = excluded.metadata_uri, active = excluded.active, "
                "updated_block = excluded.updated_block, updated_at = excluded.updated_at",
                (cid, a["serviceId"], a["provider"], a["name"], a["endpoint"], a["model"], a["token"], str(a["price"]),
                 price_key(a["price"]), a["period"], a["payTo"], a["metadataURI"], int(a["active"]), lg.block_number,
                 lg.block_number, ts))
            return
        if lg.kind == "router":
            if lg.event == "SubscriptionExtended":
                db.execute(UPSERT_SUBSCRIPTION,
                           (cid, a["serviceId"], a["subscriber"], a["expiresAt"], a["paymentId"], lg.block_number))
            return
        if lg.kind != "wallet":
            return
        w, ev = lg.address, lg.event
        if ev in ("AgentAdded", "AgentRevoked", "AgentPauseSet"):
            row = db.execute("SELECT active, paused FROM agents WHERE chain_id = ? AND wallet = ? AND agent = ?",
                             (cid, w, a["agent"])).fetchone()
            active, paused = (row[0], row[1]) if row else (0, 0)
            if ev == "AgentAdded":
                active, paused = 1, 0
            elif ev == "AgentRevoked":
                active = 0
            else:
                paused = int(a["paused"])
            db.execute(UPSERT_AGENT,
                       (cid, w, a["agent"], active, paused, lg.block_number))
        elif ev == "RuleSet":
            db.execute(UPSERT_RULE,
                       (cid, w, a["agent"], a["token"], str(a["limit"]), str(a["cap"]), a["period"],
                        str(a["floatCap"]), lg.block_number))
        elif ev in ("Paid", "FloatToppedUp", "Swapped"):
            token = a["tokenIn"] if ev == "Swapped" else a["token"]
            # The event says what remains of the window; its spend is the rule's limit less that (the
            # RuleSet that made the rule came earlier: a spend needs one).
            rule = db.execute('SELECT "limit" FROM rules WHERE chain_id = ? AND wallet = ? AND agent = ? AND token = ?',
                              (cid, w, a["agent"], token)).fetchone()
            spent = max(0, int(rule[0]) - a["remainingInWindow"]) if rule else 0
            db.execute(UPSERT_SPEND,
                       (cid, w, a["agent"], token, a["windowIndex"], str(spent), lg.block_number, ts))
        elif ev == "RequestProposed":
            db.execute(UPSERT_APPROVAL,
                       (cid, w, a["requestId"], a["agent"], a["token"], a["to"], str(a["amount"]), a["ref"],
                        a["expiresAt"], lg.block_number, lg.tx_hash, lg.block_number, ts))
        elif ev in STATUS_BY_EVENT:
            approved = str(a["approvedAmount"]) if ev == "RequestExecuted" else None
            db.execute("UPDATE approvals SET status = ?, approved_amount = COALESCE(?, approved_amount), "
                       "updated_block = ?, updated_at = ? WHERE chain_id = ? AND wallet = ? AND request_id = ?",
                       (STATUS_BY_EVENT[ev], approved, lg.block_number, ts, cid, w, a["requestId"]))
        elif ev in ("WalletPauseSet", "OwnershipTransferred", "RequestTtlSet"):
            db.execute("INSERT INTO wallets (chain_id, wallet) VALUES (?, ?) ON CONFLICT DO NOTHING", (cid, w))
            column, value = {"WalletPauseSet": ("paused", int(a.get("paused", 0))),
                             "OwnershipTransferred": ("owner", a.get("newOwner")),
                             "RequestTtlSet": ("request_ttl", a.get("ttl"))}[ev]
            db.execute(f"UPDATE wallets SET {column} = ? WHERE chain_id = ? AND wallet = ?",  # noqa: S608
                       (value, cid, w))

    # --- reorgs -----------------------------------------------------------------------------------

    def rewind(self, ancestor: Cursor) -> int:
        """Undo everything above block `ancestor.block_number` and make it the cursor (one
        transaction). Returns the number of history rows removed."""
        cid, n = self.chain_id, ancestor.block_number
        with self._lock, self._tx():
            db = self._db
            services = {r[0] for r in db.execute(
                "SELECT service_id FROM service_events WHERE chain_id = ? AND block_number > ?", (cid, n))}
            paid = {r[0] for r in db.execute(
                "SELECT DISTINCT service_id FROM payments WHERE chain_id = ? AND block_number > ?", (cid, n))}
            subs = set(db.execute("SELECT service_id, subscriber FROM subscription_events "
                                  "WHERE chain_id = ? AND block_number > ?", (cid, n)).fetchall())
            wallets = {r[0] for r in db.execute(
                "SELECT DISTINCT address FROM contract_events WHERE chain_id = ? AND block_number > ?", (cid, n))}
            removed = 0
            for table in HISTORY_TABLES:
                removed += db.execute(f"DELETE FROM {table} WHERE chain_id = ? AND block_number > ?",  # noqa: S608
                                      (cid, n)).rowcount
            db.execute("DELETE FROM blocks WHERE chain_id = ? AND number > ?", (cid, n))
            self._replay_services(services)
            self._rebuild_stats(paid)
            for service_id, subscriber in subs:
                db.execute("DELETE FROM subscriptions WHERE chain_id = ? AND service_id = ? AND subscriber = ?",
                           (cid, service_id, subscriber))
                row = db.execute("SELECT expires_at, payment_id, block_number FROM subscription_events WHERE "
                                 "chain_id = ? AND service_id = ? AND subscriber = ? ORDER BY block_number DESC, "
                                 "log_index DESC LIMIT 1", (cid, service_id, subscriber)).fetchone()
                if row:
                    db.execute("INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?)",
                               (cid, service_id, subscriber, row[0], row[1], row[2]))
            self._replay_wallets(wallets)
            self._put_cursor(n, ancestor.block_hash)
        return removed

    def _replay_services(self, service_ids: set[int]) -> None:
        cid = self.chain_id
        for service_id in service_ids:
            self._db.execute("DELETE FROM services WHERE chain_id = ? AND service_id = ?", (cid, service_id))
            rows = self._db.execute(
                "SELECT tx_hash, log_index, block_number, timestamp, event, service_id, provider, name, endpoint, "
                "model, token, price, period, pay_to, metadata_uri, active FROM service_events "
                "WHERE chain_id = ? AND service_id = ? ORDER BY block_number, log_index", (cid, service_id)).fetchall()
            for i, r in enumerate(rows):
                args = dict(serviceId=r[5], provider=r[6], name=r[7], endpoint=r[8], model=r[9], token=r[10],
                            price=int(r[11]), period=r[12], payTo=r[13], metadataURI=r[14], active=bool(r[15]))
                self._apply(Log(r[2], r[1], r[0], "", "registry", r[4], args), r[3])
                if i == 0:
                    self._db.execute("UPDATE services SET registered_block = ? WHERE chain_id = ? AND service_id = ?",
                                     (r[2], cid, service_id))

    def _replay_wallets(self, wallets: set[str]) -> None:
        cid = self.chain_id
        for w in wallets:
            for table in ("wallets", "agents", "rules", "spend", "approvals"):
                self._db.execute(f"DELETE FROM {table} WHERE chain_id = ? AND wallet = ?", (cid, w))  # noqa: S608
            rows = self._db.execute(
                "SELECT tx_hash, log_index, block_number, timestamp, event, args FROM contract_events "
                "WHERE chain_id = ? AND address = ? ORDER BY block_number, log_index", (cid, w)).fetchall()
            for r in rows:
                args = json.loads(r[5])
                self._apply(Log(r[2], r[1], r[0], w, "wallet", r[4], args), r[3])

    # --- renewals (subscriber pre-authorizations) ---------------------------------------------

    def add_renewal(self, service_id: int, subscriber: str, token: str, nonce: str, value: int, valid_after: int,
                    valid_before: int, signature: str) -> bool:
        now = time.time()
        with self._lock, self._tx():
            cur = self._db.execute(
                "INSERT INTO renewals (chain_id, service_id, subscriber, token, nonce, value, valid_after, "
                "valid_before, signature, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (self.chain_id, service_id, subscriber.lower(), token.lower(), nonce.lower(), str(value), valid_after,
                 valid_before, signature, now, now))
            return cur.rowcount == 1

    def set_renewal(self, subscriber: str, nonce: str, status: str, tx_hash: str | None = None,
                    error: str | None = None) -> None:
        with self._lock, self._tx():
            self._db.execute("UPDATE renewals SET status = ?, tx_hash = COALESCE(?, tx_hash), error = ?, updated_at = ? "
                             "WHERE chain_id = ? AND subscriber = ? AND nonce = ?",
                             (status, tx_hash, error, time.time(), self.chain_id, subscriber.lower(), nonce.lower()))
