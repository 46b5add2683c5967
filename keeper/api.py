"""Operator API (read-only JSON over HTTP), /healthz and Prometheus /metrics.

Routes (responses documented in keeper/README.md):
  GET /services?model=&max_price=&token=&active=&provider=&limit=&offset=
  GET /services/{id}
  GET /payments?payer=&service=&since=&until=&limit=&cursor=
  GET /stats/services/{id}
  GET /approvals?status=&wallet=&agent=&limit=
  GET /agents/{wallet}/{agent}/spend?token=
  GET /healthz        200 {"status": "ok", "role": ...} or 503 {"status": "degraded", "reasons": [...]}
  GET /metrics        Prometheus text format

Bad parameters answer 400 {"error": "bad_request", "parameter": ..., "reason": ...}. Amounts are
decimal strings in atomic units (they do not fit JSON numbers); addresses are checksummed.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any, Callable

from eth_utils import to_checksum_address
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from keeper import db as dbapi
from keeper.indexer import Batch, Health, Metrics
from keeper.leader import SoleKeeper
from keeper.store import APPROVAL_STATUSES, Store, price_key

MODELS = ("per-call", "metered", "subscription")
MAX_PAGE = 500
HEALTHY_LAG = 50
"""Blocks of lag above which /healthz says degraded."""


class BadRequest(ValueError):
    def __init__(self, parameter: str, reason: str):
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


# ------------------------------------------------------------------------------------------------
# Parameters


def _address(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if len(v) != 42 or not v.startswith("0x") or any(c not in "0123456789abcdef" for c in v[2:]):
        raise BadRequest(name, "must be a 0x-prefixed 20-byte hex address")
    return v


INT64_MAX = 2**63 - 1
"""What the store's integer columns hold (ids, blocks, times); a bigger number matches nothing."""


def _int(name: str, value: str | None, *, minimum: int = 0, maximum: int = INT64_MAX,
         default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise BadRequest(name, f"must be an integer, got {value[:40]!r}") from None
    if n < minimum:
        raise BadRequest(name, f"must be >= {minimum}")
    if n > maximum:
        raise BadRequest(name, f"must be <= {maximum}")
    return n


def _bool(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise BadRequest(name, "must be true or false")


def _time(name: str, value: str | None) -> int | None:
    """Unix seconds, or an ISO 8601 date-time (UTC if no zone is given)."""
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return _int(name, value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(name, "must be unix seconds or an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        from datetime import timezone

        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def _model(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    v = value.strip().lower().replace("_", "-")
    if v in MODELS:
        return MODELS.index(v)
    if v in ("0", "1", "2"):
        return int(v)
    if v in ("percall", "perCall".lower()):
        return 0
    raise BadRequest("model", f"must be one of {', '.join(MODELS)} (or 0, 1, 2)")


def _cs(address: str | None) -> str | None:
    return to_checksum_address(address) if address else address


# ------------------------------------------------------------------------------------------------
# Row shapes


def service_json(r: Any) -> dict[str, Any]:
    return {
        "id": r["service_id"], "provider": _cs(r["provider"]), "name": r["name"], "endpoint": r["endpoint"],
        "model": MODELS[r["model"]] if r["model"] < len(MODELS) else str(r["model"]), "modelId": r["model"],
        "token": _cs(r["token"]), "price": r["price"], "period": r["period"], "payTo": _cs(r["pay_to"]),
        "metadataURI": r["metadata_uri"], "active": bool(r["active"]), "registeredBlock": r["registered_block"],
        "updatedBlock": r["updated_block"], "updatedAt": r["updated_at"],
    }


def payment_json(r: Any) -> dict[str, Any]:
    return {
        "paymentId": r["payment_id"], "serviceId": r["service_id"], "payer": _cs(r["payer"]),
        "token": _cs(r["token"]), "payTo": _cs(r["pay_to"]), "amount": r["amount"], "fee": r["fee"],
        "units": r["units"], "ref": r["ref"], "kind": ("direct", "authorization", "subscription")[r["kind"]]
        if r["kind"] < 3 else str(r["kind"]), "txHash": r["tx_hash"], "logIndex": r["log_index"],
        "blockNumber": r["block_number"], "timestamp": r["timestamp"],
    }


def approval_json(r: Any, now: int) -> dict[str, Any]:
    return {
        "wallet": _cs(r["wallet"]), "requestId": r["request_id"], "agent": _cs(r["agent"]), "token": _cs(r["token"]),
        "to": _cs(r["to_address"]), "amount": r["amount"], "approvedAmount": r["approved_amount"], "ref": r["ref"],
        "expiresAt": r["expires_at"], "status": r["status"],
        "expiredOnChain": r["status"] == "pending" and now >= r["expires_at"],
        "proposedBlock": r["proposed_block"], "proposedTx": r["proposed_tx"], "updatedBlock": r["updated_block"],
    }


def chain_now(store: Store) -> int:
    """The newest indexed block's timestamp (time moves with the chain); wall clock if none yet."""
    rows = store.query("SELECT timestamp FROM blocks WHERE chain_id = ? ORDER BY number DESC LIMIT 1",
                       (store.chain_id,))
    return int(rows[0][0]) if rows else int(time.time())


def spend_json(r: Any, now: int) -> dict[str, Any]:
    limit, cap, period = int(r["limit"]), int(r["cap"]), r["period"] or 1
    window = now // period
    spent = int(r["spent"]) if r["window_index"] is not None and r["window_index"] == window else 0
    return {
        "token": _cs(r["token"]), "limit": str(limit), "cap": str(cap), "period": r["period"],
        "floatCap": r["float_cap"], "windowIndex": window, "windowEndsAt": (window + 1) * period,
        "spent": str(spent), "available": str(max(0, min(limit - spent, cap))),
        "usedRatio": round(spent / limit, 6) if limit else None,
    }


# ------------------------------------------------------------------------------------------------
# Queries


SERVICE_FILTERS = frozenset({"model", "max_price", "token", "provider", "active", "limit", "offset"})
PAYMENT_FILTERS = frozenset({"payer", "service", "since", "until", "cursor", "limit"})
APPROVAL_FILTERS = frozenset({"status", "wallet", "agent", "limit"})


def list_services(store: Store, q: dict[str, str]) -> dict[str, Any]:
    where, params = ["chain_id = ?"], [store.chain_id]
    model = _model(q.get("model"))
    if model is not None:
        where.append("model = ?")
        params.append(model)
    max_price = _int("max_price", q.get("max_price"), maximum=2**96 - 1)
    if max_price is not None:
        where.append("price_key <= ?")
        params.append(price_key(max_price))
    token = _address("token", q.get("token"))
    if token:
        where.append("token = ?")
        params.append(token)
    provider = _address("provider", q.get("provider"))
    if provider:
        where.append("provider = ?")
        params.append(provider)
    active = _bool("active", q.get("active"))
    if active is not None:
        where.append("active = ?")
        params.append(int(active))
    limit = _int("limit", q.get("limit"), minimum=1, maximum=MAX_PAGE, default=100)
    offset = _int("offset", q.get("offset"), default=0)
    rows = store.query(f"SELECT * FROM services WHERE {' AND '.join(where)} ORDER BY price_key, service_id "  # noqa: S608
                       "LIMIT ? OFFSET ?", (*params, limit, offset))
    return {"services": [service_json(r) for r in rows], "count": len(rows)}


def get_service(store: Store, service_id: int) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM services WHERE chain_id = ? AND service_id = ?", (store.chain_id, service_id))
    if not rows:
        return None
    out = service_json(rows[0])
    history = store.query("SELECT * FROM service_events WHERE chain_id = ? AND service_id = ? "
                          "ORDER BY block_number, log_index", (store.chain_id, service_id))
    out["history"] = [{
        "event": h["event"], "blockNumber": h["block_number"], "txHash": h["tx_hash"], "logIndex": h["log_index"],
        "timestamp": h["timestamp"], "name": h["name"], "endpoint": h["endpoint"],
        "model": MODELS[h["model"]] if h["model"] < 3 else str(h["model"]), "token": _cs(h["token"]),
        "price": h["price"], "period": h["period"], "payTo": _cs(h["pay_to"]), "metadataURI": h["metadata_uri"],
        "active": bool(h["active"])} for h in history]
    return out


def list_payments(store: Store, q: dict[str, str]) -> dict[str, Any]:
    where, params = ["chain_id = ?"], [store.chain_id]
    payer = _address("payer", q.get("payer"))
    if payer:
        where.append("payer = ?")
        params.append(payer)
    service = _int("service", q.get("service"), minimum=1)
    if service is not None:
        where.append("service_id = ?")
        params.append(service)
    since, until = _time("since", q.get("since")), _time("until", q.get("until"))
    if since is not None:
        where.append("timestamp >= ?")
        params.append(since)
    if until is not None:
        where.append("timestamp < ?")
        params.append(until)
    if since is not None and until is not None and until <= since:
        raise BadRequest("until", "must be after since")
    cursor = q.get("cursor")
    if cursor:
        after = _int("cursor", cursor, minimum=0)
        where.append("payment_id < ?")
        params.append(after)
    limit = _int("limit", q.get("limit"), minimum=1, maximum=MAX_PAGE, default=100)
    assert limit is not None
    rows = store.query(f"SELECT * FROM payments WHERE {' AND '.join(where)} "  # noqa: S608
                       "ORDER BY payment_id DESC LIMIT ?", (*params, limit + 1))
    page = rows[:limit]
    return {"payments": [payment_json(r) for r in page],
            "nextCursor": str(page[-1]["payment_id"]) if len(rows) > limit else None}


def service_stats(store: Store, service_id: int) -> dict[str, Any] | None:
    svc = store.query("SELECT token FROM services WHERE chain_id = ? AND service_id = ?", (store.chain_id, service_id))
    if not svc:
        return None
    row = store.query("SELECT volume, fees, payments, last_paid_at FROM service_stats WHERE chain_id = ? AND "
                      "service_id = ?", (store.chain_id, service_id))
    payers = store.query("SELECT COUNT(DISTINCT payer) FROM payments WHERE chain_id = ? AND service_id = ?",
                         (store.chain_id, service_id))[0][0]
    volume, fees, count, last = (row[0][0], row[0][1], row[0][2], row[0][3]) if row else ("0", "0", 0, 0)
    return {"serviceId": service_id, "token": _cs(svc[0]["token"]), "volume": volume, "fees": fees,
            "payments": count, "lastPaidAt": last, "payers": payers}


def list_approvals(store: Store, q: dict[str, str]) -> dict[str, Any]:
    where, params = ["chain_id = ?"], [store.chain_id]
    status = q.get("status")
    if status:
        status = status.strip().lower()
        if status not in APPROVAL_STATUSES:
            raise BadRequest("status", f"must be one of {', '.join(APPROVAL_STATUSES)}")
        where.append("status = ?")
        params.append(status)
    for name in ("wallet", "agent"):
        value = _address(name, q.get(name))
        if value:
            where.append(f"{name} = ?")
            params.append(value)
    limit = _int("limit", q.get("limit"), minimum=1, maximum=MAX_PAGE, default=100)
    now = chain_now(store)
    rows = store.query(f"SELECT * FROM approvals WHERE {' AND '.join(where)} "  # noqa: S608
                       "ORDER BY expires_at, request_id LIMIT ?", (*params, limit))
    return {"approvals": [approval_json(r, now) for r in rows], "asOf": now}


def agent_spend(store: Store, wallet: str, agent: str, q: dict[str, str]) -> dict[str, Any] | None:
    w, a = _address("wallet", wallet), _address("agent", agent)
    token = _address("token", q.get("token"))
    cid = store.chain_id
    agent_rows = store.query("SELECT active, paused FROM agents WHERE chain_id = ? AND wallet = ? AND agent = ?",
                             (cid, w, a))
    sql = ("SELECT r.token, r.\"limit\", r.cap, r.period, r.float_cap, s.window_index, s.spent FROM rules r "
           "LEFT JOIN spend s ON s.chain_id = r.chain_id AND s.wallet = r.wallet AND s.agent = r.agent "
           "AND s.token = r.token WHERE r.chain_id = ? AND r.wallet = ? AND r.agent = ?")
    params: list[Any] = [cid, w, a]
    if token:
        sql += " AND r.token = ?"
        params.append(token)
    rules = store.query(sql, params)
    if not agent_rows and not rules:
        return None
    now = chain_now(store)
    return {"wallet": _cs(w), "agent": _cs(a), "active": bool(agent_rows[0][0]) if agent_rows else False,
            "paused": bool(agent_rows[0][1]) if agent_rows else False, "asOf": now,
            "spend": [spend_json(r, now) for r in rules]}


# ------------------------------------------------------------------------------------------------
# Telemetry


class Telemetry(Metrics):
    """Prometheus metrics on a private registry (no global state). `intents` is the facilitator's
    keeper.intents.IntentStore (settlement counts), `role` the keeper's leader state."""

    def __init__(self, health: Health, intents: Any | None = None, role: Any | None = None,
                 store: Store | None = None):
        self.registry = CollectorRegistry()
        self.health = health
        self.intents = intents
        self.role = role or SoleKeeper()
        self.store = store
        r = self.registry

        def known(value: int | None) -> float:  # not known yet: NaN, never a healthy-looking 0
            return math.nan if value is None else float(value)

        Gauge("keeper_indexed_block", "Last block whose logs are stored (NaN: none yet)", registry=r).set_function(
            lambda: known(health.indexed))
        Gauge("keeper_head_block", "Chain head seen by the indexer (NaN: not seen yet)", registry=r).set_function(
            lambda: known(health.head))
        Gauge("keeper_lag_blocks", "Head minus indexed block (NaN: unknown)", registry=r).set_function(
            lambda: known(health.lag))
        Gauge("keeper_database_up", "1 while the store answers a read", registry=r).set_function(
            lambda: 1 if self.store is None or self.store.ping() else 0)
        Gauge("keeper_rpc_up", "1 while the RPC answers", registry=r).set_function(lambda: 1 if health.rpc_ok else 0)
        self.events = Counter("keeper_events_indexed", "Events stored", registry=r)
        self.rate = Gauge("keeper_events_per_second", "Events stored per second over the last batches", registry=r)
        self.batches = Histogram("keeper_batch_write_seconds", "Time to store one batch", registry=r)
        self.reorgs = Counter("keeper_reorgs", "Reorgs rewound", registry=r)
        self.reorg_depth = Gauge("keeper_last_reorg_depth", "Depth of the last reorg (blocks)", registry=r)
        self.rpc_errors = Counter("keeper_rpc_errors", "RPC failures", ["kind"], registry=r)
        self.job_runs = Counter("keeper_job_runs", "Job runs", ["job", "outcome"], registry=r)
        self.alerts = Counter("keeper_alerts", "Alerts raised", ["kind"], registry=r)
        self.settlements = Gauge("keeper_settlements", "Settlement intents by status", ["status"], registry=r)
        for status in ("settled", "failed", "pending"):
            self.settlements.labels(status).set(0)
        role = Gauge("keeper_role", "1 for this keeper's current role (leader indexes, runs jobs, settles)", ["role"],
                     registry=r)
        role.labels("leader").set_function(lambda: 1 if self.role.is_leader else 0)
        role.labels("follower").set_function(lambda: 0 if self.role.is_leader else 1)
        self._window: list[tuple[float, int]] = []

    def batch(self, batch: Batch, inserted: int, seconds: float) -> None:
        self.events.inc(inserted)
        self.batches.observe(seconds)
        now = time.monotonic()
        self._window.append((now, inserted))
        self._window = [(t, n) for t, n in self._window if now - t <= 10.0]
        span = max(1.0, now - self._window[0][0]) if self._window else 1.0
        self.rate.set(sum(n for _t, n in self._window) / span)

    def reorg(self, depth: int) -> None:
        self.reorgs.inc()
        self.reorg_depth.set(depth)

    def rpc_error(self, kind: str) -> None:
        self.rpc_errors.labels(kind).inc()

    def refresh_settlements(self) -> None:
        if self.intents is None:
            return
        try:
            counts = self.intents.counts()
        except dbapi.ERRORS:  # unknown now: NaN rather than the last values
            counts = {status: math.nan for status in ("settled", "failed", "pending")}
        for status in ("settled", "failed", "pending"):
            self.settlements.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        self.refresh_settlements()
        return generate_latest(self.registry)


def health_report(store: Store, health: Health, role: Any | None = None) -> tuple[bool, dict[str, Any]]:
    role = role or SoleKeeper()
    reasons = []
    db_ok = store.ping()
    if not db_ok:
        reasons.append("database unreachable")
    if role.error:
        reasons.append(f"leader election failing: {role.error}")
    if not health.rpc_ok:
        since = health.rpc_down_since
        reasons.append(f"rpc down{f' for {time.time() - since:.0f}s' if since else ''}: {health.rpc_error or 'no answer yet'}")
    lag = health.lag
    if lag is not None and lag > HEALTHY_LAG:
        reasons.append(f"indexer {lag} blocks behind the head")
    body = {"status": "ok" if not reasons else "degraded", "role": role.name, "reasons": reasons, "head": health.head,
            "indexed": health.indexed, "lag": lag, "database": "ok" if db_ok else "error",
            "rpc": "ok" if health.rpc_ok else "down", "reorgs": health.reorgs,
            "uptime": round(time.time() - health.started_at, 1)}
    return not reasons, body


# ------------------------------------------------------------------------------------------------
# The app


def create_app(store: Store, health: Health, telemetry: Telemetry,
               mounts: list[BaseRoute] | None = None, role: Any | None = None) -> Starlette:
    role = role or telemetry.role
    if telemetry.store is None:
        telemetry.store = store  # keeper_database_up reads the store the API serves

    def guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        def endpoint(request: Request) -> JSONResponse:  # sync: Starlette runs it in its thread pool
            try:
                return fn(request)
            except BadRequest as exc:
                return JSONResponse({"error": "bad_request", "parameter": exc.parameter, "reason": exc.reason},
                                    status_code=400)
            except dbapi.ERRORS as exc:
                return JSONResponse({"error": "database_unavailable", "reason": str(exc)}, status_code=503)
        return endpoint

    def q(request: Request, allowed: frozenset[str] = frozenset()) -> dict[str, str]:
        """The query parameters, each known to the endpoint and given once (a misspelt filter must
        not silently return everything)."""
        for name in request.query_params:
            if name not in allowed:
                raise BadRequest(name, f"unknown parameter; this endpoint takes {', '.join(sorted(allowed)) or 'none'}")
            if len(request.query_params.getlist(name)) > 1:
                raise BadRequest(name, "given more than once")
        return dict(request.query_params)

    def path_id(request: Request, name: str = "service_id") -> int:
        value = _int(name, request.path_params[name], minimum=1)
        assert value is not None
        return value

    def not_found(what: str) -> JSONResponse:
        return JSONResponse({"error": "not_found", "reason": what}, status_code=404)

    def services(request: Request) -> JSONResponse:
        return JSONResponse(list_services(store, q(request, SERVICE_FILTERS)))

    def service(request: Request) -> JSONResponse:
        q(request)
        sid = path_id(request)
        found = get_service(store, sid)
        return JSONResponse(found) if found else not_found(f"no service {sid}")

    def payments(request: Request) -> JSONResponse:
        return JSONResponse(list_payments(store, q(request, PAYMENT_FILTERS)))

    def stats(request: Request) -> JSONResponse:
        q(request)
        sid = path_id(request)
        found = service_stats(store, sid)
        return JSONResponse(found) if found else not_found(f"no service {sid}")

    def approvals(request: Request) -> JSONResponse:
        return JSONResponse(list_approvals(store, q(request, APPROVAL_FILTERS)))

    def spend(request: Request) -> JSONResponse:
        found = agent_spend(store, request.path_params["wallet"], request.path_params["agent"],
                            q(request, frozenset({"token"})))
        return JSONResponse(found) if found else not_found("no such agent or rule in that wallet")

    def healthz(_request: Request) -> JSONResponse:
        ok, body = health_report(store, health, role)
        return JSONResponse(body, status_code=200 if ok else 503)

    def metrics(_request: Request) -> Response:
        return Response(telemetry.render(), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/services", guarded(services)),
        Route("/services/{service_id}", guarded(service)),
        Route("/payments", guarded(payments)),
        Route("/stats/services/{service_id}", guarded(stats)),
        Route("/approvals", guarded(approvals)),
        Route("/agents/{wallet}/{agent}/spend", guarded(spend)),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    routes += mounts or []
    return Starlette(routes=routes)


__all__ = ["create_app", "Telemetry", "health_report", "Mount"]
