"""Scheduled jobs: declared with one decorator and a schedule, run by apscheduler.

    @jobs.every("job_interval")            # seconds, or the name of a KeeperSettings field
    def expire_requests(ctx: JobContext) -> int: ...

    @jobs.cron("0 * * * *")                # crontab syntax
    def hourly(ctx): ...

Every job is idempotent: it re-reads the chain before it acts, and the contracts refuse a second
identical action anyway (an expired request cannot expire twice, an EIP-3009 nonce settles once).
A job never runs concurrently with itself (max_instances=1, coalesced); runs and failures are
counted in `keeper_job_runs{job, outcome}`. On SIGTERM the scheduler lets a running job finish.
Only the leader runs jobs: with several keepers on PostgreSQL a follower's scheduler is paused,
and a run that starts while this keeper is not the leader does nothing (and is not counted).

What each job does:
- top_up_floats: the agent hot key configured in the keeper (PAYGENT_AGENT_KEY / _ACCOUNT) calls
  AgentWallet.topUpFloat(token, amount) itself (the contract requires msg.sender == agent), for every
  indexed wallet where that key is an active agent with a rule for the float token, when its balance
  is below `topup_threshold`; amount = floatCap - balance, limited by `available()` on chain.
- expire_requests: AgentWallet.expire(id) for indexed requests still pending on chain after expiresAt
  (anyone may call it; the relayer key pays the gas).
- renew_subscriptions: settles a stored ReceiveWithAuthorization (made out to the PaymentRouter) via
  router.settleAuthorization when the subscription is within `renew_before` seconds of expiry. The
  attempt is recorded as a facilitator settlement intent before broadcast, so a crash resolves to
  exactly one settlement.
- alerts: low wallet balance, spend near the window limit, failed settlements; logged and POSTed to
  `alert_webhook` if set; each condition alerts once until it clears.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("paygent.keeper.jobs")

REQUEST_PENDING = 1  # AgentWallet.RequestStatus.Pending


@dataclass
class JobSpec:
    name: str
    fn: Callable[["JobContext"], Any]
    seconds: float | str | None = None
    crontab: str | None = None

    def trigger(self, settings: Any) -> Any:
        if self.crontab:
            return CronTrigger.from_crontab(self.crontab)
        seconds = getattr(settings, self.seconds) if isinstance(self.seconds, str) else self.seconds
        return IntervalTrigger(seconds=float(seconds or 60))


class Jobs:
    """A declaration list of jobs (silverback's `@bot.cron` feel)."""

    def __init__(self) -> None:
        self.specs: dict[str, JobSpec] = {}

    def every(self, seconds: float | str, name: str | None = None) -> Callable:
        def register(fn: Callable) -> Callable:
            self.specs[name or fn.__name__] = JobSpec(name or fn.__name__, fn, seconds=seconds)
            return fn
        return register

    def cron(self, crontab: str, name: str | None = None) -> Callable:
        CronTrigger.from_crontab(crontab)  # fail at import time on a bad expression

        def register(fn: Callable) -> Callable:
            self.specs[name or fn.__name__] = JobSpec(name or fn.__name__, fn, crontab=crontab)
            return fn
        return register

    def run(self, name: str, ctx: "JobContext") -> Any:
        """Run one job now, counting the outcome (what the scheduler calls). Not the leader: nothing."""
        spec = self.specs[name]
        if ctx.role is not None and not ctx.role.is_leader:
            return None
        began = time.perf_counter()
        try:
            result = spec.fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a failing job must not stop the others
            ctx.count(name, "failed")
            log.exception("job failed", extra={"job": name, "error": str(exc)[:300]})
            return None
        ctx.count(name, "ok")
        log.info("job ran", extra={"job": name, "result": result, "seconds": round(time.perf_counter() - began, 3)})
        return result

    def schedule(self, ctx: "JobContext", scheduler: BackgroundScheduler) -> None:
        for name, spec in self.specs.items():
            scheduler.add_job(self.run, spec.trigger(ctx.settings), args=[name, ctx], id=name, name=name,
                              max_instances=1, coalesce=True, misfire_grace_time=30)


jobs = Jobs()


# ------------------------------------------------------------------------------------------------
# What jobs get


@dataclass
class JobContext:
    settings: Any
    store: Any
    w3: Any
    manifest: Any
    relayer: Any | None = None
    """eth_account LocalAccount paying gas for expiries and renewals (None: those jobs only report)."""
    agent: Any | None = None
    """The agent hot key for float top-ups (None: the job does nothing)."""
    intents: Any | None = None
    """keeper.intents.IntentStore shared with the facilitator."""
    telemetry: Any | None = None
    facilitator: Any | None = None
    """The mounted keeper.facilitator.Facilitator, whose pending intents a job reconciles."""
    backend: Any | None = None
    """keeper.facilitator.Web3Backend for renewals (built lazily)."""
    role: Any | None = None
    """keeper.leader state; jobs run only while `role.is_leader` (None: always)."""
    _alerted: dict[str, float] = field(default_factory=dict)

    def count(self, job: str, outcome: str) -> None:
        if self.telemetry is not None:
            self.telemetry.job_runs.labels(job, outcome).inc()

    def contract(self, name: str, address: str) -> Any:
        from eth_utils import to_checksum_address

        from paygent.artifacts import abi

        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi(name))

    def token(self, address: str) -> Any:
        return self.contract("FiatTokenLocal", address)

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def transact(self, account: Any, fn: Any) -> str:
        """Simulate, sign, send and wait; raises on revert. One sender nonce at a time (the lock is
        shared with the facilitator's backend for the same address)."""
        from keeper.facilitator import sender_lock

        with sender_lock(account.address):
            tx = fn.build_transaction({"from": account.address, "chainId": int(self.w3.eth.chain_id),
                                       "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                                       "gasPrice": int(self.w3.eth.gas_price)})
            signed = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return "0x" + bytes(tx_hash).hex().removeprefix("0x")

    def alert(self, key: str, kind: str, message: str, **fields: Any) -> bool:
        """Raise an alert once per key until `clear(key)`: log it, count it and POST it to the
        webhook. A webhook that fails (unreachable, non-2xx) gets it again on the next run."""
        if key in self._alerted:
            return False
        hook = getattr(self.settings, "alert_webhook", None)
        if hook:
            try:
                reply = httpx.post(str(hook), json={"kind": kind, "message": message, **fields}, timeout=5)
                delivered, why = reply.is_success, f"HTTP {reply.status_code}"
            except httpx.HTTPError as exc:
                delivered, why = False, f"{type(exc).__name__}: {str(exc)[:160]}"
            if not delivered:
                log.warning("alert webhook failed; retrying next run", extra={"alert": kind, "error": why})
                return False
        self._alerted[key] = time.time()
        if self.telemetry is not None:
            self.telemetry.alerts.labels(kind).inc()
        log.warning("alert", extra={"alert": kind, "detail": message, **fields})
        return True

    def clear(self, key: str) -> None:
        self._alerted.pop(key, None)


def _named(contract: Any, fn: str, value: Any) -> dict[str, Any]:
    """A struct returned by web3 as a tuple, as a dict keyed by the ABI's component names."""
    item = next(i for i in contract.abi if i.get("type") == "function" and i["name"] == fn)
    components = item["outputs"][0].get("components") or item["outputs"]
    return {c["name"]: v for c, v in zip(components, value)}


def _rows(ctx: JobContext, sql: str, params: tuple = ()) -> list[Any]:
    return ctx.store.query(sql, params)


# ------------------------------------------------------------------------------------------------
# The jobs


@jobs.every("job_interval")
def expire_requests(ctx: JobContext) -> int:
    """Expire approval requests that are past expiresAt and still pending on chain."""
    if ctx.relayer is None:
        return 0
    now = ctx.chain_time()
    done, failed = 0, 0
    for r in _rows(ctx, "SELECT wallet, request_id, expires_at FROM approvals WHERE chain_id = ? AND "
                        "status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT 50",
                   (ctx.store.chain_id, now)):
        wallet = ctx.contract("AgentWallet", r["wallet"])
        request = _named(wallet, "request", wallet.functions.request(r["request_id"]).call())
        status, expires_at = int(request["status"]), int(request["expiresAt"])
        if status != REQUEST_PENDING or now < expires_at:
            continue  # already closed on chain (the indexer will catch up), or not yet expired
        try:
            ctx.transact(ctx.relayer, wallet.functions.expire(r["request_id"]))
            done += 1
        except Exception as exc:  # noqa: BLE001 - one stuck request never blocks the others
            failed += 1
            log.warning("expire failed", extra={"wallet": r["wallet"], "request": r["request_id"],
                                                "error": str(exc)[:300]})
    if failed:  # the run counts as failed (metrics), after the others were tried
        raise RuntimeError(f"{failed} expiry transaction(s) failed, {done} sent")
    return done


@jobs.every("job_interval")
def top_up_floats(ctx: JobContext) -> int:
    """Refill the configured agent hot key's float from every wallet that allows one."""
    if ctx.agent is None:
        return 0
    token = (ctx.settings.topup_token or ctx.manifest.address("USDC")).lower()
    agent = ctx.agent.address.lower()
    done, failed = 0, 0
    for r in _rows(ctx, "SELECT r.wallet, r.float_cap FROM rules r JOIN agents a ON a.chain_id = r.chain_id AND "
                        "a.wallet = r.wallet AND a.agent = r.agent LEFT JOIN wallets w ON w.chain_id = r.chain_id "
                        "AND w.wallet = r.wallet WHERE r.chain_id = ? AND r.agent = ? AND r.token = ? AND "
                        "a.active = 1 AND a.paused = 0 AND COALESCE(w.paused, 0) = 0",
                   (ctx.store.chain_id, agent, token)):
        float_cap = int(r["float_cap"])
        if float_cap == 0:
            continue
        starved = f"float-starved:{r['wallet']}:{agent}"
        try:  # one wallet that cannot top up (paused meanwhile, empty) never stops the others
            balance = int(ctx.token(token).functions.balanceOf(ctx.agent.address).call())
            if balance >= ctx.settings.topup_threshold:
                ctx.clear(starved)
                continue
            wallet = ctx.contract("AgentWallet", r["wallet"])
            available = int(wallet.functions.available(ctx.agent.address, ctx.w3.to_checksum_address(token)).call())
            amount = min(float_cap - balance, available)
            if amount <= 0:
                ctx.alert(starved, "float_starved", "agent float is low and the wallet's window has nothing left",
                          wallet=r["wallet"], agent=agent, balance=str(balance))
                continue
            ctx.transact(ctx.agent, wallet.functions.topUpFloat(ctx.w3.to_checksum_address(token), amount))
            ctx.clear(starved)
            done += 1
        except Exception as exc:  # noqa: BLE001 - counted below; the next wallet is tried
            failed += 1
            log.warning("float top-up failed", extra={"wallet": r["wallet"], "error": str(exc)[:300]})
    if failed:
        raise RuntimeError(f"{failed} float top-up(s) failed, {done} sent")
    return done


@jobs.every("job_interval")
def renew_subscriptions(ctx: JobContext) -> int:
    """Settle pre-authorized renewals of subscriptions that are about to expire."""
    if ctx.relayer is None or ctx.intents is None:
        return 0
    from keeper.facilitator import SettlementCall, SimulationReverted, Web3Backend, close_by_receipt, reconcile_intent
    from keeper.intents import Intent, IntentKey, Status
    from paygent.eip3009 import AuthorizationKind, AuthorizationMessage

    now = ctx.chain_time()
    cid = ctx.store.chain_id
    router = ctx.manifest.address("PaymentRouter")
    if ctx.backend is None:
        ctx.backend = Web3Backend(ctx.w3, ctx.relayer, router=router,
                                  registry=ctx.manifest.address("ServiceRegistry"), chain_id=ctx.manifest.chain_id)
    done = 0
    trouble: Exception | None = None
    for r in _rows(ctx, "SELECT n.*, s.expires_at FROM renewals n LEFT JOIN subscriptions s ON s.chain_id = n.chain_id "
                        "AND s.service_id = n.service_id AND s.subscriber = n.subscriber WHERE n.chain_id = ? AND "
                        "n.status = 'waiting' ORDER BY n.valid_before", (cid,)):
        expires = r["expires_at"] or 0
        if expires - now > ctx.settings.renew_before:
            continue
        key = IntentKey.of(r["token"], r["subscriber"], r["nonce"])
        sent = ctx.intents.get(key)
        if sent is None or sent.raw_tx is None:  # nothing broadcast yet: the validity window decides
            if now >= r["valid_before"]:
                if sent is not None:
                    ctx.intents.finish(key, Status.FAILED, error="authorization expired unused", holding=None)
                ctx.store.set_renewal(r["subscriber"], r["nonce"], "failed", error="authorization expired unused")
                ctx.alert(f"renewal:{r['nonce']}", "settlement_failed", "renewal authorization expired before use",
                          subscriber=r["subscriber"], service=r["service_id"])
                continue
            if now <= r["valid_after"]:
                continue
        intent, created = ctx.intents.claim(Intent(key, request_hash="renewal", kind=AuthorizationKind.RECEIVE.value,
                                                   payee=router, value=int(r["value"]), network=ctx.settings.network,
                                                   service_id=r["service_id"], status=Status.PENDING))
        if not created and intent.status is not Status.PENDING:
            ctx.store.set_renewal(r["subscriber"], r["nonce"], intent.status.value, tx_hash=intent.tx_hash)
            continue
        if not created and intent.tx_hash:
            intent = reconcile_intent(ctx.backend, ctx.intents, intent)  # resent if the node forgot it
            if intent.status is not Status.PENDING:
                ctx.store.set_renewal(r["subscriber"], r["nonce"], intent.status.value, tx_hash=intent.tx_hash,
                                      error=intent.error)
            continue  # still in flight: the next run looks again
        sig = bytes.fromhex(r["signature"].removeprefix("0x"))
        message = AuthorizationMessage(ctx.w3.to_checksum_address(r["subscriber"]), router, int(r["value"]),
                                       r["valid_after"], r["valid_before"], bytes.fromhex(r["nonce"][2:]))
        call = SettlementCall(AuthorizationKind.RECEIVE, ctx.w3.to_checksum_address(r["token"]), message, sig,
                              service_id=r["service_id"])
        try:
            tx_hash = ctx.backend.send(call, lambda h, raw: ctx.intents.record_tx(key, h, raw))
        except SimulationReverted as exc:  # the authorization cannot settle (expired, used, underfunded, ...)
            ctx.intents.finish(key, Status.FAILED, error=str(exc)[:300])
            ctx.store.set_renewal(r["subscriber"], r["nonce"], "failed", error=str(exc)[:300])
            ctx.alert(f"renewal:{r['nonce']}", "settlement_failed", "subscription renewal failed",
                      subscriber=r["subscriber"], service=r["service_id"], error=str(exc)[:200])
            continue
        except Exception as exc:  # noqa: BLE001 - the node, not the authorization: nothing is decided
            stored = ctx.intents.get(key)
            if stored is not None and stored.raw_tx is None:
                ctx.intents.forget_unbroadcast(key)  # never sent: the next run signs it again
            log.warning("renewal not sent this run; retrying next run",
                        extra={"subscriber": r["subscriber"], "nonce": r["nonce"], "error": str(exc)[:200]})
            trouble = exc
            continue
        closed = close_by_receipt(ctx.backend, ctx.intents, key, tx_hash, ctx.backend.wait(tx_hash, 30))
        if closed.status is Status.PENDING:
            continue
        ctx.store.set_renewal(r["subscriber"], r["nonce"], closed.status.value, tx_hash=closed.tx_hash,
                              error=closed.error)
        done += closed.status is Status.SETTLED
    if trouble is not None:  # counted as a failed run; the renewals left waiting are tried next run
        raise RuntimeError(f"renewals not sent this run ({done} settled): {trouble}") from trouble
    return done


@jobs.every("job_interval")
def reconcile_settlements(ctx: JobContext) -> int:
    """Close facilitator intents left pending (RPC timeout, crash mid-settle) from chain evidence."""
    if ctx.facilitator is None:
        return 0
    return int(ctx.facilitator.reconcile_pending())


@jobs.every("job_interval")
def alerts(ctx: JobContext) -> int:
    """Low balances, spend near the limit, failed settlements."""
    raised = 0
    cid = ctx.store.chain_id
    now = ctx.chain_time()
    for r in _rows(ctx, "SELECT DISTINCT wallet, token FROM rules WHERE chain_id = ?", (cid,)):
        if r["token"] == "0x" + "0" * 40:
            balance = int(ctx.w3.eth.get_balance(ctx.w3.to_checksum_address(r["wallet"])))
        else:
            balance = int(ctx.token(r["token"]).functions.balanceOf(ctx.w3.to_checksum_address(r["wallet"])).call())
        key = f"low:{r['wallet']}:{r['token']}"
        if balance < ctx.settings.low_balance:
            raised += ctx.alert(key, "low_balance", "wallet balance below the alert threshold", wallet=r["wallet"],
                                token=r["token"], balance=str(balance), threshold=str(ctx.settings.low_balance))
        else:
            ctx.clear(key)
    for r in _rows(ctx, 'SELECT r.wallet, r.agent, r.token, r."limit" AS lim, r.period, s.window_index, s.spent '
                        "FROM rules r JOIN spend s ON s.chain_id = r.chain_id AND s.wallet = r.wallet AND "
                        "s.agent = r.agent AND s.token = r.token WHERE r.chain_id = ?", (cid,)):
        limit, period = int(r["lim"]), r["period"] or 1
        spent = int(r["spent"]) if r["window_index"] == now // period else 0
        key = f"near:{r['wallet']}:{r['agent']}:{r['token']}:{now // period}"
        if limit and spent >= ctx.settings.near_limit_ratio * limit:
            raised += ctx.alert(key, "near_limit", "agent spend near its window limit", wallet=r["wallet"],
                                agent=r["agent"], token=r["token"], spent=str(spent), limit=str(limit))
    if ctx.intents is not None:
        for intent in _failed_intents(ctx):
            raised += ctx.alert(f"failed:{intent[0]}:{intent[1]}", "settlement_failed", "settlement failed",
                                payer=intent[0], nonce=intent[1], error=intent[2])
    return raised


def _failed_intents(ctx: JobContext) -> list[tuple[str, str, str | None]]:
    return ctx.intents.failed_since(time.time() - 86_400)
