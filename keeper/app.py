"""The keeper daemon: wires settings, store, indexer, jobs, the operator API and the facilitator.

One process, four kinds of threads: the main thread supervises (leader election, SIGTERM/SIGINT);
the indexer (fetcher + writer); uvicorn serving the operator API with the x402 facilitator mounted
at the root; the apscheduler jobs. Shutdown order on SIGTERM: stop the indexer (its current batch
commits or rolls back — it is one transaction), let a running job finish (bounded), stop the HTTP
server, give the leader lock up. The whole sequence is bounded well under 10 s.

Roles (keeper/leader.py): on SQLite the keeper is always the leader. On PostgreSQL the main thread
tries the leader lock every `leader_interval` seconds; the leader runs the indexer, the jobs and
settlement, a follower serves the read API, /verify and /supported and refuses /settle with 503
not_leader. A leader that loses its lock or its database (or whose indexer stops on a database
error) steps down, reports degraded, and competes for the lock again.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from keeper.settings import ConfigError, KeeperSettings

log = logging.getLogger("paygent.keeper")

_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra=` fields (what the message is about: reasons, blocks, errors)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage(), **_extras(record)}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Plain lines (PAYGENT_LOG_JSON=false) that still carry the `extra=` fields, as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        return line + "".join(f" {k}={json.dumps(v, default=str)}" for k, v in extras.items()) if extras else line


def setup_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access", "web3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class StartupError(RuntimeError):
    """The keeper cannot start; the message says what to fix."""


@dataclass
class Keeper:
    settings: KeeperSettings
    manifest: Any
    store: Any
    role: Any
    """keeper.leader.SoleKeeper (SQLite) or AdvisoryLock (PostgreSQL)."""
    make_indexer: Callable[[], Any]
    """A fresh Indexer for each leadership term (an Indexer runs once)."""
    health: Any
    telemetry: Any
    app: Any
    job_context: Any | None
    facilitator: Any | None
    identity: Any = None
    """keeper.indexer.ChainIdentity of the deployment: the RPC must answer as this chain before the
    leader's duties (indexing, jobs, settlement) start."""
    verified: threading.Event = field(default_factory=threading.Event)
    """Set once the RPC answered as the deployment's chain (at start, or since); settlement waits for it."""


def build(settings: KeeperSettings) -> Keeper:
    """Everything the daemon needs, checked before anything runs. Raises StartupError."""
    from paygent import keys
    from paygent import manifest as manifests
    from paygent.artifacts import ArtifactsMissingError
    from keeper import db as dbapi
    from keeper.api import Telemetry, create_app
    from keeper.indexer import (ChainIdentity, Health, Indexer, IndexerConfig, Rpc, Source, WrongChain,
                                contracts_from_manifest, default_decoder)
    from keeper.leader import AdvisoryLock, SoleKeeper, lock_key
    from keeper.store import Store, StoreError

    try:
        target = settings.database
        net = settings.net
    except (ConfigError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    where = "PAYGENT_DATABASE_URL: " if target.is_postgres else ""
    try:
        manifest = manifests.require(net.name, settings.deployments_dir)
    except manifests.ManifestError as exc:
        raise StartupError(str(exc)) from None
    if manifest.chain_id != net.chain_id:
        raise StartupError(f"manifest for {net.name} says chain id {manifest.chain_id}, the network is {net.chain_id}")
    try:
        decoder = default_decoder()
    except ArtifactsMissingError as exc:
        raise StartupError(str(exc)) from None
    contracts = contracts_from_manifest(manifest, settings.wallets)
    if not contracts:
        raise StartupError(f"the {net.name} manifest names none of ServiceRegistry, PaymentRouter, AgentWallet")

    try:
        store = Store(target, manifest.chain_id)
    except StoreError as exc:
        raise StartupError(f"{where}{exc}") from None
    identity = {"chain_id": str(manifest.chain_id), "genesis_hash": manifest.genesis_hash.lower(),
                "contracts": ",".join(sorted(contracts))}
    try:
        bound = store.bind(identity)
        if not bound and net.is_local:
            log.warning("store belongs to an earlier local chain; starting it afresh", extra={"store": str(target)})
            store.reset()
            bound = store.bind(identity)
    except dbapi.ERRORS as exc:
        raise StartupError(f"{where}cannot use the keeper database {target}: {exc}") from None
    if not bound:
        raise StartupError(f"{target} holds data of another deployment (chain, genesis or contracts differ); "
                           + ("use another database for this deployment" if target.is_postgres else
                              "point PAYGENT_DATA_DIR elsewhere or move the old store away"))
    role: Any = SoleKeeper()
    if target.is_postgres:
        role = AdvisoryLock(target, lock_key(identity))
        store.fence = role.fence

    rpc_url = settings.rpc
    identity = ChainIdentity(manifest.chain_id, manifest.genesis_hash, net.name,
                             "; redeploy (`make demo` or `ape run deploy`)" if net.is_local else "")
    probe = Rpc(rpc_url, timeout=min(3.0, settings.rpc_timeout))
    verified = threading.Event()
    try:
        identity.check(probe)
        verified.set()
    except WrongChain as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - unreachable is fine: checked again before anything acts on it
        log.warning("rpc not reachable at start; nothing is indexed, settled or sent until it answers as the "
                    "deployment's chain", extra={"rpc": rpc_url, "error": str(exc)[:200]})
    finally:
        probe.close()

    def load_key(alias: str | None, secret: Any, what: str) -> Any:
        if not alias and secret is None:
            return None
        try:
            if alias:
                return keys.from_ape_keystore(alias)
            variable = f"PAYGENT_{what.upper()}_KEY"
            return keys.from_env(variable, {variable: secret.get_secret_value()})
        except keys.KeyLoadError as exc:
            raise StartupError(f"{what} key: {exc}") from None

    relayer = load_key(settings.relayer_account, settings.relayer_key, "relayer")
    agent = load_key(settings.agent_account, settings.agent_key, "agent")

    intents = None
    if settings.facilitator and relayer is not None:
        from keeper.intents import IntentStore

        try:
            intents = IntentStore(settings.intents_database)
        except dbapi.ERRORS as exc:
            raise StartupError(f"{where}cannot open the settlement intents in {settings.intents_database}: {exc}") from None

    health = Health()
    telemetry = Telemetry(health, intents, role)
    start = settings.start_block if settings.start_block is not None else manifest.deployment_block
    config = IndexerConfig(start_block=start, depth=settings.depth, min_range=settings.min_block_range,
                           max_range=settings.max_block_range, max_logs=settings.max_logs_per_batch,
                           poll_interval=settings.poll_interval, max_backoff=settings.max_backoff,
                           reorg_window=settings.reorg_window)

    def make_indexer() -> Any:
        return Indexer(lambda: Source(Rpc(rpc_url, settings.rpc_timeout), contracts, decoder), store, config,
                       health, telemetry, identity)

    from starlette.routing import Mount

    mounts = []
    facilitator = None
    w3 = None
    if relayer is not None or agent is not None or settings.facilitator:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": settings.rpc_timeout}))
    if settings.facilitator:
        if relayer is None:
            log.warning("x402 facilitator not mounted: no relayer key (PAYGENT_RELAYER_KEY or PAYGENT_RELAYER_ACCOUNT)")
        else:
            from keeper.facilitator import Facilitator, Web3Backend, create_app as facilitator_app

            backend = Web3Backend(w3, relayer, router=manifest.contracts.get("PaymentRouter") and
                                  manifest.address("PaymentRouter"),
                                  registry=manifest.contracts.get("ServiceRegistry") and
                                  manifest.address("ServiceRegistry"), chain_id=manifest.chain_id)
            facilitator = Facilitator(backend, intents, net, frozenset({manifest.address("USDC")}),
                                      leader=lambda: role.is_leader and verified.is_set())
            mounts.append(Mount("", app=facilitator_app(facilitator)))
    app = create_app(store, health, telemetry, mounts, role)

    job_context = None
    if settings.jobs and w3 is not None:
        from keeper.jobs import JobContext

        job_context = JobContext(settings=settings, store=store, w3=w3, manifest=manifest, relayer=relayer,
                                 agent=agent, intents=intents, telemetry=telemetry, facilitator=facilitator,
                                 role=role)
    return Keeper(settings, manifest, store, role, make_indexer, health, telemetry, app, job_context, facilitator,
                  identity, verified)


class Duties:
    """What only the leader does: the indexer thread and the jobs (settlement is gated by the role)."""

    def __init__(self, keeper: Keeper, scheduler: Any | None):
        self.keeper = keeper
        self.scheduler = scheduler
        self.indexer: Any | None = None
        self.thread: threading.Thread | None = None
        self.active = False

    @property
    def winding_down(self) -> bool:
        """A previous term's indexer thread has not finished yet (a new one must not start beside it)."""
        return not self.active and self.thread is not None and self.thread.is_alive()

    @property
    def indexer_died(self) -> bool:
        return self.active and self.thread is not None and not self.thread.is_alive()

    def start(self) -> None:
        self.indexer = self.keeper.make_indexer()
        self.thread = threading.Thread(target=self._index, args=(self.indexer,), name="keeper-indexer", daemon=True)
        self.thread.start()
        if self.scheduler is not None:
            self.scheduler.resume()
        if self.keeper.facilitator is not None:  # settlements an earlier leader left pending
            threading.Thread(target=self._reconcile, name="keeper-reconcile", daemon=True).start()
        self.active = True

    @staticmethod
    def _index(indexer: Any) -> None:
        from keeper import db as dbapi
        from keeper.leader import NotLeader

        try:
            indexer.run()
        except (NotLeader, *dbapi.ERRORS) as exc:  # one line; the supervisor decides what follows
            log.error("indexer stopped: database error", extra={"error": str(exc)[:300]})

    def _reconcile(self) -> None:
        try:
            closed = self.keeper.facilitator.reconcile_pending()
            if closed:
                log.info("reconciled pending settlements", extra={"closed": closed})
        except Exception as exc:  # noqa: BLE001 - the reconcile job tries again
            log.warning("reconcile at leadership start failed", extra={"error": str(exc)[:300]})

    def stop(self, timeout: float = 5.0) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        if self.indexer is not None:
            self.indexer.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout)
        self.active = False


def _follow(keeper: Keeper, probe: Any) -> None:
    """A follower's health: the stored cursor (the leader's progress) against the chain head."""
    from keeper import db as dbapi

    health = keeper.health
    try:
        cursor = keeper.store.cursor()
        health.indexed = cursor.block_number if cursor else None
    except dbapi.ERRORS:
        pass
    try:
        health.head = int(probe.call("eth_blockNumber"), 16)
        health.rpc_succeeded()
    except Exception as exc:  # noqa: BLE001 - reported, retried next check
        health.rpc_failed(str(exc)[:200])


def supervise(keeper: Keeper, duties: Duties, stop: threading.Event, http: threading.Thread) -> int:
    """The main loop: elect, start or stop the leader's duties, watch the threads. Returns on stop:
    0, or 2 when the RPC turned out to serve another chain (a configuration error)."""
    from keeper.indexer import Rpc, WrongChain

    role, settings = keeper.role, keeper.settings
    probe = Rpc(settings.rpc, timeout=min(3.0, settings.rpc_timeout))
    next_check = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_check:
                next_check = now + settings.leader_interval
                if not keeper.verified.is_set() and keeper.identity is not None:
                    try:
                        keeper.identity.check(probe)
                        keeper.verified.set()
                        log.info("rpc answers as the deployment's chain", extra={"rpc": settings.rpc})
                    except WrongChain as exc:
                        log.error("keeper stops: the RPC serves another chain", extra={"reason": str(exc)})
                        return 2
                    except Exception as exc:  # noqa: BLE001 - still unreachable: reported, checked again
                        keeper.health.rpc_failed(str(exc)[:200])
                leader = role.check()
                if leader and not keeper.verified.is_set():
                    pass  # nothing acts on an RPC that has not shown it is the deployment's chain
                elif leader and not duties.active and not duties.winding_down:
                    if role.exclusive:
                        log.warning("this keeper is the leader: indexing, jobs and settlement start",
                                    extra={"role": "leader"})
                    duties.start()
                elif not leader and duties.active:
                    log.warning("stepping down: this keeper is a follower now", extra={"role": "follower",
                                                                                        "error": role.error})
                    duties.stop()
                if not leader:
                    _follow(keeper, probe)
            if duties.indexer_died:
                if duties.indexer is not None and duties.indexer.fatal:
                    log.error("keeper stops: the RPC serves another chain", extra={"reason": duties.indexer.fatal})
                    return 2
                if not role.exclusive:
                    log.error("indexer thread died; stopping")
                    return 0
                log.error("stepping down after the indexer stopped; competing for the lock again",
                          extra={"role": "follower"})
                duties.stop()
                role.release()
                next_check = time.monotonic() + settings.leader_interval
            if not http.is_alive():
                log.error("http server stopped (port busy?); stopping")
                return 0
            stop.wait(0.2)
        return 0
    finally:
        probe.close()


def run(settings: KeeperSettings) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    import uvicorn
    from apscheduler.schedulers.background import BackgroundScheduler

    from keeper.jobs import jobs

    try:
        keeper = build(settings)
    except StartupError as exc:
        log.error("keeper cannot start", extra={"reason": str(exc)})
        print(f"paygent keeper: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    config = uvicorn.Config(keeper.app, host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    http = threading.Thread(target=server.run, name="keeper-http", daemon=True)
    scheduler = None
    http.start()
    if keeper.job_context is not None:
        scheduler = BackgroundScheduler(daemon=True)
        jobs.schedule(keeper.job_context, scheduler)
        scheduler.start(paused=True)  # resumed while this keeper is the leader
    log.info("keeper running", extra={"network": settings.network, "rpc": settings.rpc, "http": f"{settings.host}:{settings.port}",
                                      "store": str(settings.database), "confirmations": settings.depth,
                                      "leader_election": "postgresql advisory lock" if keeper.role.exclusive
                                      else "none (sqlite: sole keeper)",
                                      "facilitator": keeper.facilitator is not None,
                                      "jobs": sorted(jobs.specs) if scheduler else []})
    duties = Duties(keeper, scheduler)
    code = supervise(keeper, duties, stop, http)

    began = time.monotonic()
    duties.stop()
    if scheduler is not None:
        waiter = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(timeout=max(0.5, 7 - (time.monotonic() - began)))
    server.should_exit = True
    http.join(timeout=max(0.5, 9 - (time.monotonic() - began)))
    keeper.role.release()
    keeper.store.close()
    log.info("keeper stopped", extra={"seconds": round(time.monotonic() - began, 2),
                                      "indexed": keeper.health.indexed})
    return code
