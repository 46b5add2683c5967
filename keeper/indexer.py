"""Reorg-safe indexer for ServiceRegistry, PaymentRouter and AgentWallet events.

Pipeline (two threads, bounded):
  fetcher:  header(to) -> eth_getLogs(from..to) sent from a worker thread, and the NEXT range's
            request sent right after it (one range ahead, so the node works while this process
            parses, decodes and writes) -> headers(from, log blocks, to) in one batch -> checks
            every log's blockHash and that `to` did not change meanwhile -> queue (at most
            `QUEUE_DEPTH` batches ahead)
  writer:   decodes (PaymentMade straight into store records) -> checks the batch continues the
            cursor (from == cursor + 1, parentHash(from) == cursor hash) -> writes rows + block
            hashes + cursor in one transaction.
A batch that does not continue the cursor means the chain reorganised under us: the writer finds
the fork point among the stored block hashes, rewinds the store to it and restarts the fetcher.

The getLogs range halves on "too many results" errors and timeouts and doubles while answers are
small. Transport errors (RPC down) are retried with exponential backoff; the health state says
"degraded" meanwhile.

ABIs come from the compiled artifacts (paygent.artifacts); topics are precomputed, static
event data is decoded by slicing 32-byte words (eth_abi only for events with strings).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from eth_abi import decode as abi_decode
from eth_utils import keccak

from keeper.store import PAYMENT_FIELDS, Cursor, Log, PaymentRecord, Store

log = logging.getLogger("paygent.keeper.indexer")

QUEUE_DEPTH = 2
CONTRACT_KINDS = {"ServiceRegistry": "registry", "PaymentRouter": "router", "AgentWallet": "wallet"}


# ------------------------------------------------------------------------------------------------
# JSON-RPC


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.code = error.get("code")
        self.message = str(error.get("message", error))
        super().__init__(f"{method}: {self.message}")


class RpcUnavailable(RuntimeError):
    """The node could not be reached (connection refused, reset, HTTP 5xx)."""


class RpcTimeout(RpcUnavailable):
    """The node did not answer in time."""


class Rpc:
    """A small JSON-RPC client over keep-alive HTTP connections (httpx's pool: safe to share
    between the fetcher and its getLogs worker threads; request ids come from one counter)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url
        self._client = httpx.Client(timeout=timeout, headers={"content-type": "application/json"})
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._client.close()

    def _post(self, body: Any) -> Any:
        try:
            reply = self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise RpcTimeout(f"{self.url}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if reply.status_code >= 500 or reply.status_code in (408, 429):
            raise RpcUnavailable(f"{self.url}: HTTP {reply.status_code}")
        try:
            return reply.json()
        except ValueError:
            raise RpcUnavailable(f"{self.url}: answer is not JSON (HTTP {reply.status_code})") from None

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        body = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []})
        if "error" in body:
            raise RpcError(method, body["error"])
        return body["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = self._post([{"jsonrpc": "2.0", "id": ids[i], "method": m, "params": p}
                           for i, (m, p) in enumerate(calls)])
        if isinstance(body, dict):  # the whole batch was refused
            raise RpcError("batch", body.get("error", {"message": str(body)}))
        by_id = {item.get("id"): item for item in body}
        out = []
        for i, (m, _p) in enumerate(calls):
            item = by_id.get(ids[i])
            if item is None:
                raise RpcUnavailable(f"batch answer misses the reply to {m}")
            if "error" in item:
                raise RpcError(m, item["error"])
            out.append(item["result"])
        return out


# ------------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class EventSpec:
    kind: str
    name: str
    topic: str
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    fast: Callable[[list[str], str], dict[str, Any]] | None = None
    """Generated decoder for (topics, data) when every type has a word-slicing form."""


def _signed(value: int) -> int:
    return value - (1 << 256) if value >> 255 else value


def _dyn_string(d: str, head: str) -> str:
    start = 2 + 2 * int(head, 16)
    length = int(d[start:start + 64], 16)
    return bytes.fromhex(d[start + 64:start + 64 + 2 * length]).decode("utf-8", "replace")


def _dyn_bytes(d: str, head: str) -> str:
    start = 2 + 2 * int(head, 16)
    length = int(d[start:start + 64], 16)
    return "0x" + d[start + 64:start + 64 + 2 * length].lower()


def _word_expr(typ: str, src: str) -> str | None:
    """Python source decoding one 64-hex-char ABI word held in the expression `src`."""
    if typ == "address":
        return f'"0x" + {src}[-40:].lower()'
    if typ.startswith("uint") and "[" not in typ:
        return f"int({src}, 16)"
    if typ.startswith("int") and "[" not in typ:
        return f"_signed(int({src}, 16))"
    if typ == "bool":
        return f"int({src}, 16) != 0"
    if typ.startswith("bytes") and typ != "bytes" and "[" not in typ:
        return f'"0x" + {src}[-64:][:{2 * int(typ[5:])}].lower()'
    return None


def _compile(indexed: tuple[tuple[str, str], ...], data: tuple[tuple[str, str], ...]) -> Callable | None:
    """Generate `lambda t, d: {...}` for an event: one dict literal, no per-field calls."""
    parts = []
    for i, (name, typ) in enumerate(indexed):
        expr = _word_expr(typ, f"t[{i + 1}]")
        if expr is None:
            return None  # indexed dynamic values are hashes: leave those to eth_abi's caller
        parts.append(f"{name!r}: {expr}")
    for i, (name, typ) in enumerate(data):
        src = f"d[{2 + 64 * i}:{66 + 64 * i}]"
        expr = _word_expr(typ, src)
        if expr is None:
            if typ == "string":
                expr = f"_dyn_string(d, {src})"
            elif typ == "bytes":
                expr = f"_dyn_bytes(d, {src})"
            else:
                return None
        parts.append(f"{name!r}: {expr}")
    code = "lambda t, d: {" + ", ".join(parts) + "}"
    return eval(code, {"_signed": _signed, "_dyn_string": _dyn_string, "_dyn_bytes": _dyn_bytes})  # noqa: S307


def _compile_record(indexed: tuple[tuple[str, str], ...], data: tuple[tuple[str, str], ...],
                    order: tuple[str, ...]) -> Callable:
    """Generate `lambda r, t, d: (block, log index, tx hash, *fields in order)` for a static event:
    the store's row, without an args dict or a Log object (the high-volume PaymentMade path)."""
    sources: dict[str, str | None] = {}
    for i, (name, typ) in enumerate(indexed):
        sources[name] = _word_expr(typ, f"t[{i + 1}]")
    for i, (name, typ) in enumerate(data):
        sources[name] = _word_expr(typ, f"d[{2 + 64 * i}:{66 + 64 * i}]")
    if sorted(sources) != sorted(order) or any(sources[n] is None for n in order):
        raise ValueError(f"event fields {sorted(sources)} do not match the record {order}")
    code = ('lambda r, t, d: (int(r["blockNumber"], 16), int(r["logIndex"], 16), r["transactionHash"].lower(), '
            + ", ".join(str(sources[n]) for n in order) + ")")
    return eval(code, {"_signed": _signed})  # noqa: S307


def _word(typ: str, word: str) -> Any:
    expr = _word_expr(typ, "w")
    if expr is None:
        raise ValueError(f"no word decoding for {typ}")
    return eval(expr, {"_signed": _signed}, {"w": word})  # noqa: S307


def _normal(typ: str, value: Any) -> Any:
    if typ == "address":
        return value.lower()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


class Decoder:
    """topic0 -> event spec per contract kind, from the compiled ABIs. The router's PaymentMade,
    the event there is most of, also gets a record decoder (`payment_topic`, `payment`)."""

    def __init__(self, abis: dict[str, list[dict[str, Any]]]):
        self.specs: dict[tuple[str, str], EventSpec] = {}
        self.payment_topic: str | None = None
        self.payment: Callable[[dict[str, Any], list[str], str], PaymentRecord] | None = None
        for kind, abi in abis.items():
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                types = ",".join(i["type"] for i in item["inputs"])
                topic = "0x" + keccak(text=f"{item['name']}({types})").hex()
                indexed = tuple((i["name"], i["type"]) for i in item["inputs"] if i.get("indexed"))
                data = tuple((i["name"], i["type"]) for i in item["inputs"] if not i.get("indexed"))
                self.specs[(kind, topic)] = EventSpec(kind, item["name"], topic, indexed, data,
                                                      _compile(indexed, data))
                if kind == "router" and item["name"] == "PaymentMade":
                    self.payment_topic = topic
                    self.payment = _compile_record(indexed, data, PAYMENT_FIELDS)

    def decode(self, kind: str, raw: dict[str, Any]) -> Log | None:
        topics = raw["topics"]
        if not topics:
            return None
        spec = self.specs.get((kind, topics[0]))
        if spec is None:
            spec = self.specs.get((kind, topics[0].lower()))
            if spec is None:
                return None
        if spec.fast is not None:
            args = spec.fast(topics, raw["data"])
        else:
            args = {}
            for (name, typ), topic in zip(spec.indexed, topics[1:]):
                args[name] = _word(typ, topic[2:])
            values = abi_decode([t for _n, t in spec.data], bytes.fromhex(raw["data"][2:]))
            for (name, typ), value in zip(spec.data, values):
                args[name] = _normal(typ, value)
        return Log(int(raw["blockNumber"], 16), int(raw["logIndex"], 16), raw["transactionHash"],
                   raw["address"], kind, spec.name, args)


# ------------------------------------------------------------------------------------------------
# Fetching one range


class WrongChain(RuntimeError):
    """The RPC serves another chain than the deployment's (chain id or genesis block differ)."""


@dataclass(frozen=True)
class ChainIdentity:
    """The chain a deployment lives on: checked before the keeper acts on what an RPC says."""

    chain_id: int
    genesis_hash: str
    name: str = "the deployment"
    hint: str = ""

    def check(self, rpc: "Rpc") -> None:
        """Raises WrongChain on a mismatch; RpcUnavailable / RpcError when the node cannot tell."""
        chain_id = int(rpc.call("eth_chainId"), 16)
        if chain_id != self.chain_id:
            raise WrongChain(f"{rpc.url} is chain id {chain_id}, the {self.name} manifest is for {self.chain_id}")
        genesis = rpc.call("eth_getBlockByNumber", ["0x0", False])
        if not isinstance(genesis, dict) or not genesis.get("hash"):  # a pruned / syncing node: unknown, not wrong
            raise RpcUnavailable(f"{rpc.url} did not return the genesis block")
        got = str(genesis["hash"]).lower().removeprefix("0x")
        if got != self.genesis_hash.lower().removeprefix("0x"):
            raise WrongChain(f"{rpc.url} is not the chain the {self.name} manifest was deployed on (genesis differs)"
                             + self.hint)


class RangeTooLarge(RuntimeError):
    """The node refused the range (too many results / too wide / response too big)."""


class ChainMoved(RuntimeError):
    """The chain changed while a range was being fetched; fetch it again."""


@dataclass
class Batch:
    start: int
    end: int
    parent_hash: str
    end_hash: str
    raws: list[dict[str, Any]]
    """Verified, undecoded logs (the writer decodes them)."""
    blocks: dict[int, tuple[str, int]]
    raw_count: int = 0


_TOO_MANY = ("more than", "too many", "too large", "range", "limit", "exceed", "size", "response")


@dataclass
class Pending:
    """A range whose eth_getLogs is in flight: `begin` read the header of `end` first, `finish`
    checks it again once the logs are in."""

    start: int
    end: int
    top: dict[str, Any]
    logs: Future


class Source:
    """Fetches and verifies block ranges for a set of contracts.

    `begin(start, end)` sends the range's eth_getLogs from a worker thread and returns at once, so
    the fetcher can put the NEXT range's request in flight before it reads and verifies this one:
    the node then works while this process parses JSON, decodes and writes (one range ahead; two
    request on its own daemon thread, so it is never queued behind the parsing of the previous
    answer and never holds up the process at exit)."""

    def __init__(self, rpc: Rpc, contracts: dict[str, str], decoder: Decoder):
        self.rpc = rpc
        self.kinds = {a.lower(): k for a, k in contracts.items()}
        self.addresses = sorted(self.kinds)
        self.decoder = decoder
        self._by_spelling: dict[str, str] = {}
        """A node's spelling of a contract address (checksummed or not) -> kind ("" for others)."""

    def close(self) -> None:
        self.rpc.close()

    def _in_background(self, start: int, end: int) -> Future:
        future: Future = Future()

        def run() -> None:
            try:
                future.set_result(self.get_logs(start, end))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever calls finish()
                future.set_exception(exc)

        threading.Thread(target=run, name="keeper-getlogs", daemon=True).start()
        return future

    def head(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def header(self, number: int) -> dict[str, Any] | None:
        return self.rpc.call("eth_getBlockByNumber", [hex(number), False])

    def get_logs(self, start: int, end: int) -> list[dict[str, Any]]:
        try:
            return self.rpc.call("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end),
                                                  "address": self.addresses}])
        except RpcError as exc:
            if end > start or any(word in exc.message.lower() for word in _TOO_MANY):
                raise RangeTooLarge(exc.message) from None
            raise
        except RpcTimeout as exc:
            raise RangeTooLarge(str(exc)) from None

    def begin(self, start: int, end: int) -> Pending:
        top = self.header(end)
        if top is None:
            raise ChainMoved(f"block {end} is gone")
        return Pending(start, end, top, self._in_background(start, end))

    def fetch(self, start: int, end: int) -> Batch:
        return self.finish(self.begin(start, end))

    def finish(self, pending: Pending) -> Batch:
        """The range's logs, checked: every log's blockHash is the canonical hash of its block, and
        the header of `end` did not change while the logs were fetched. Raises what getLogs raised."""
        start, end, top = pending.start, pending.end, pending.top
        raws = pending.logs.result()
        numbers = sorted({int(r["blockNumber"], 16) for r in raws} | {start})
        heads = self.rpc.batch([("eth_getBlockByNumber", [hex(end), False])]
                               + [("eth_getBlockByNumber", [hex(n), False]) for n in numbers if n != end])
        if heads[0] is None or heads[0]["hash"] != top["hash"]:
            raise ChainMoved(f"block {end} changed while its logs were fetched")
        blocks = {end: (heads[0]["hash"], int(heads[0]["timestamp"], 16))}
        first = heads[0] if start == end else None
        for n, h in zip([n for n in numbers if n != end], heads[1:]):
            if h is None:
                raise ChainMoved(f"block {n} is gone")
            blocks[n] = (h["hash"], int(h["timestamp"], 16))
            if n == start:
                first = h
        assert first is not None
        expected: dict[str, str] = {}
        for r in raws:
            if r.get("removed"):
                continue
            number = r["blockNumber"]
            want = expected.get(number)
            if want is None:
                want = expected[number] = blocks[int(number, 16)][0]
            if r["blockHash"] != want:
                raise ChainMoved(f"log in block {int(number, 16)} is from another branch")
        return Batch(start, end, first["parentHash"], heads[0]["hash"], raws, blocks, len(raws))

    def decode(self, raws: list[dict[str, Any]]) -> tuple[list[Log], list[PaymentRecord]]:
        """Decode verified raw logs (done by the writer thread, so fetching the next range overlaps
        it): PaymentMade straight into payment records, every other event into a Log. Addresses,
        hashes and topics are compared lower-case; the loop is the indexer's hottest code, so a
        node's spelling of an address is looked up once and PaymentMade is tested first."""
        logs: list[Log] = []
        payments: list[PaymentRecord] = []
        add_payment = payments.append
        decode, by_spelling = self.decoder.decode, self._by_spelling
        payment_topic, payment = self.decoder.payment_topic, self.decoder.payment
        for r in raws:
            if r.get("removed"):
                continue
            spelled = r["address"]
            kind = by_spelling.get(spelled)
            if kind is None:
                kind = by_spelling[spelled] = self.kinds.get(spelled.lower(), "")
            if not kind:
                continue
            topics = r["topics"]
            if kind == "router" and topics and payment is not None and (
                    topics[0] == payment_topic or topics[0].lower() == payment_topic):
                add_payment(payment(r, topics, r["data"]))
                continue
            r["address"] = spelled.lower()
            r["transactionHash"] = r["transactionHash"].lower()
            decoded = decode(kind, r)
            if decoded is not None:
                logs.append(decoded)
        logs.sort(key=lambda lg: (lg.block_number, lg.log_index))
        return logs, payments


# ------------------------------------------------------------------------------------------------
# Health


@dataclass
class Health:
    """What /healthz reports; written by the indexer threads, read by the API."""

    head: int | None = None
    indexed: int | None = None
    rpc_ok: bool = False
    rpc_error: str | None = None
    rpc_down_since: float | None = None
    last_batch_at: float | None = None
    reorgs: int = 0
    events: int = 0
    started_at: float = field(default_factory=time.time)

    @property
    def lag(self) -> int | None:
        if self.head is None or self.indexed is None:
            return None
        return max(0, self.head - self.indexed)

    def rpc_failed(self, error: str) -> None:
        if self.rpc_ok or self.rpc_down_since is None:
            self.rpc_down_since = time.time()
        self.rpc_ok = False
        self.rpc_error = error

    def rpc_succeeded(self) -> None:
        self.rpc_ok = True
        self.rpc_error = None
        self.rpc_down_since = None


class Metrics:
    """Hooks the indexer calls; the app wires them to Prometheus."""

    def batch(self, batch: Batch, inserted: int, seconds: float) -> None: ...

    def reorg(self, depth: int) -> None: ...

    def rpc_error(self, kind: str) -> None: ...


# ------------------------------------------------------------------------------------------------
# The indexer


@dataclass
class IndexerConfig:
    start_block: int
    depth: int = 0
    min_range: int = 1
    max_range: int = 5_000
    max_logs: int = 10_000
    poll_interval: float = 1.0
    max_backoff: float = 30.0
    reorg_window: int = 512


class Indexer:
    """Runs the fetcher and the writer until `stop` is set."""

    def __init__(self, make_source: Callable[[], Source], store: Store, config: IndexerConfig,
                 health: Health | None = None, metrics: Metrics | None = None,
                 identity: ChainIdentity | None = None):
        self.make_source = make_source
        self.store = store
        self.config = config
        self.identity = identity
        """Checked before the first write and before a rewind past every stored block hash."""
        self.fatal: str | None = None
        """Why the indexer stopped for good (another chain behind the RPC), else None."""
        self.health = health or Health()
        self.metrics = metrics or Metrics()
        self.stop = threading.Event()
        self._queue: queue.Queue[tuple[int, Batch]] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._lock = threading.Lock()
        self._gen = 0
        self._next: int | None = None
        self._range = min(config.max_range, max(config.min_range, 100))
        self._ceiling = config.max_range
        self._good = 0
        self._fetcher: threading.Thread | None = None

    # --- the fetcher ----------------------------------------------------------------------------

    def _restart_fetch(self, next_from: int) -> None:
        with self._lock:
            self._gen += 1
            self._next = next_from
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _backoff(self, attempt: int) -> float:
        return min(self.config.max_backoff, 0.25 * (2 ** min(attempt, 10)))

    def _fetch_loop(self) -> None:
        source = self.make_source()
        cfg = self.config
        target = -1
        failures = 0
        ahead: tuple[int, Pending] | None = None  # (generation, the next range, already requested)
        try:
            while not self.stop.is_set():
                with self._lock:
                    gen, start = self._gen, self._next
                if start is None:
                    self.stop.wait(0.05)
                    continue
                end = start
                try:
                    if start > target:
                        head = source.head()
                        self.health.head = head
                        self.health.rpc_succeeded()
                        target = head - cfg.depth
                        if start > target:
                            self.stop.wait(cfg.poll_interval)
                            continue
                    if ahead is not None and ahead[0] == gen and ahead[1].start == start:
                        pending, ahead = ahead[1], None
                    else:  # nothing requested yet, or the plan changed (restart, reorg): drop it
                        ahead = None
                        pending = source.begin(start, min(target, start + self._range - 1))
                    end = pending.end
                    if end < target:  # the next range goes out before this one is read
                        ahead = (gen, source.begin(end + 1, min(target, end + self._range)))
                    batch = source.finish(pending)
                except RangeTooLarge as exc:
                    ahead = None
                    self.metrics.rpc_error("range")
                    span = end - start + 1
                    if span > cfg.min_range:
                        self._range = max(cfg.min_range, span // 2)
                        self._ceiling, self._good = self._range, 0  # do not grow straight back into it
                        log.info("getLogs range shrinks", extra={"range": self._range, "reason": str(exc)[:200]})
                        continue
                    failures += 1
                    self.health.rpc_failed(str(exc))
                    self.stop.wait(self._backoff(failures))
                    continue
                except ChainMoved as exc:
                    ahead = None
                    log.info("chain moved during fetch; retrying", extra={"reason": str(exc)})
                    target = -1
                    continue
                except (RpcUnavailable, RpcError) as exc:
                    ahead = None
                    failures += 1
                    self.metrics.rpc_error("unavailable" if isinstance(exc, RpcUnavailable) else "error")
                    self.health.rpc_failed(str(exc))
                    wait = self._backoff(failures)
                    log.warning("rpc failed; retrying", extra={"error": str(exc)[:300], "retry_in": wait})
                    self.stop.wait(wait)
                    target = -1
                    continue
                failures = 0
                self.health.rpc_succeeded()
                n = batch.raw_count
                if n > cfg.max_logs and self._range > cfg.min_range:
                    self._range = max(cfg.min_range, self._range // 2)
                    if ahead is not None and ahead[1].end - ahead[1].start + 1 > self._range:
                        ahead = None  # requested at the old size: ask again at the new one
                elif n < cfg.max_logs // 4:
                    self._good += 1
                    if self._good >= 50:  # the node may have been busy: probe a wider range again
                        self._ceiling, self._good = min(cfg.max_range, self._ceiling * 2), 0
                    self._range = min(self._ceiling, self._range * 2)
                with self._lock:
                    if gen != self._gen:
                        continue
                    self._next = batch.end + 1
                while not self.stop.is_set():
                    try:
                        self._queue.put((gen, batch), timeout=0.1)
                        break
                    except queue.Full:
                        if gen != self._gen:
                            break
        except Exception:
            # A bug or an answer nothing above expects (e.g. a null result): without its fetcher the
            # indexer cannot go on, so it stops, and the daemon sees its indexer thread end.
            log.exception("fetcher failed; stopping the indexer")
        finally:
            self.stop.set()
            source.close()

    # --- the writer -------------------------------------------------------------------------------

    def _initial_cursor(self, source: Source) -> Cursor:
        if self.identity is not None:
            self.identity.check(source.rpc)
        cursor = self.store.cursor()
        if cursor is not None:
            return cursor
        start = max(1, self.config.start_block)
        header = source.header(start - 1)
        if header is None:
            raise RpcError("eth_getBlockByNumber", {"message": f"block {start - 1} not found"})
        cursor = Cursor(start - 1, header["hash"])
        self.store.set_cursor(cursor)
        return cursor

    def find_fork_point(self, source: Source, cursor: Cursor) -> Cursor:
        """The newest stored block that is still on the canonical chain."""
        below = cursor.block_number
        while True:
            stored = self.store.recent_blocks(below, 64)
            if not stored:
                break
            heads = source.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n, _h in stored])
            for (n, h), head in zip(stored, heads):
                if head is not None and head["hash"] == h:
                    return Cursor(n, h)
            below = stored[-1][0] - 1
        if self.identity is not None:  # no stored block is canonical: first make sure it is the same chain
            self.identity.check(source.rpc)
        start = max(1, self.config.start_block)
        header = source.header(start - 1)
        log.error("reorg deeper than the stored block hashes: re-indexing from the deployment block",
                  extra={"from_block": start})
        if header is None:
            raise ChainMoved("deployment block parent missing")
        return Cursor(start - 1, header["hash"])

    def _handle_reorg(self, source: Source, cursor: Cursor) -> Cursor:
        for attempt in range(1_000_000):
            try:
                ancestor = self.find_fork_point(source, cursor)
                break
            except (RpcUnavailable, RpcError, ChainMoved) as exc:
                self.health.rpc_failed(str(exc))
                self.stop.wait(self._backoff(attempt))
                if self.stop.is_set():
                    return cursor
        if ancestor.block_number == cursor.block_number:
            return cursor  # the batch came from a branch that is gone; our cursor is fine
        removed = self.store.rewind(ancestor)
        depth = cursor.block_number - ancestor.block_number
        self.health.reorgs += 1
        self.health.indexed = ancestor.block_number
        self.metrics.reorg(depth)
        log.warning("reorg: rewound", extra={"from_block": cursor.block_number, "to_block": ancestor.block_number,
                                             "depth": depth, "rows_removed": removed})
        return ancestor

    def run(self) -> None:
        """Index until `stop` is set. The current batch is committed or not at all. Another chain
        behind the RPC stops it for good, with nothing written (`fatal` says why)."""
        try:
            self._run()
        except WrongChain as exc:
            self.fatal = str(exc)
            self.stop.set()
            log.error("indexer stopped: the RPC serves another chain", extra={"reason": self.fatal})

    def _run(self) -> None:
        source = self.make_source()
        attempt = 0
        while not self.stop.is_set():
            try:
                cursor = self._initial_cursor(source)
                break
            except WrongChain:
                source.close()
                raise
            except (RpcUnavailable, RpcError) as exc:
                attempt += 1
                self.health.rpc_failed(str(exc))
                log.warning("rpc unavailable at start; retrying", extra={"error": str(exc)[:300]})
                self.stop.wait(self._backoff(attempt))
        else:
            source.close()
            return
        self.health.indexed = cursor.block_number
        self._restart_fetch(cursor.block_number + 1)
        self._fetcher = threading.Thread(target=self._fetch_loop, name="keeper-fetcher", daemon=True)
        self._fetcher.start()
        try:
            while not self.stop.is_set():
                try:
                    gen, batch = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if gen != self._gen:
                    continue
                if batch.start != cursor.block_number + 1:
                    self._restart_fetch(cursor.block_number + 1)
                    continue
                if batch.parent_hash != cursor.block_hash:
                    cursor = self._handle_reorg(source, cursor)
                    self._restart_fetch(cursor.block_number + 1)
                    continue
                began = time.perf_counter()
                new = Cursor(batch.end, batch.end_hash)
                logs, payments = source.decode(batch.raws)
                result = self.store.commit_batch(logs, batch.blocks, new, self.config.reorg_window, payments)
                cursor = new
                self.health.indexed = cursor.block_number
                self.health.last_batch_at = time.time()
                self.health.events += result.inserted
                self.metrics.batch(batch, result.inserted, time.perf_counter() - began)
                log.debug("batch", extra={"from_block": batch.start, "to_block": batch.end,
                                          "events": len(logs) + len(payments), "inserted": result.inserted})
        finally:
            self.stop.set()
            if self._fetcher is not None:
                self._fetcher.join(timeout=5)
            source.close()


def contracts_from_manifest(manifest: Any, extra_wallets: list[str] | None = None) -> dict[str, str]:
    """address -> contract kind for the indexed contracts of a deployment manifest."""
    out: dict[str, str] = {}
    for name, kind in CONTRACT_KINDS.items():
        if name in manifest.contracts:
            out[manifest.contracts[name].address.lower()] = kind
    for wallet in extra_wallets or []:
        out[wallet.lower()] = "wallet"
    return out


def default_decoder() -> Decoder:
    from paygent.artifacts import abi

    return Decoder({kind: abi(name) for name, kind in CONTRACT_KINDS.items()})
