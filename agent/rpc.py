"""A lean JSON-RPC path for the agent's hot calls: ABI encode/decode with eth-abi, raw requests.

web3.py's contract layer re-derives selectors, validates and formats every call (~1-2 ms of CPU
each); the agent makes a dozen calls per action, so its own time would dominate a tool call. Here
the selector and types of each function/event are derived once from the compiled ABI (one source
of truth) and calls go straight to the provider (still web3's provider, so they are timed as I/O).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address


def _type(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][5:]}"
    return entry["type"]


@dataclass(frozen=True)
class Fn:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    components: tuple[str, ...] = ()
    """Field names when the single output is a struct."""

    def data(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))


@dataclass(frozen=True)
class Event:
    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]


@lru_cache(maxsize=None)
def fn(contract: str, name: str) -> Fn:
    from paygent.artifacts import abi

    for entry in abi(contract):
        if entry.get("type") == "function" and entry["name"] == name:
            outs = entry.get("outputs", [])
            comps = tuple(c["name"] for c in outs[0]["components"]) if len(outs) == 1 and outs[0]["type"] == "tuple" else ()
            return Fn(name, function_abi_to_4byte_selector(entry), tuple(_type(i) for i in entry["inputs"]),
                      tuple(_type(o) for o in outs), tuple(o["name"] for o in outs), comps)
    raise KeyError(f"{contract} has no function {name}")


@lru_cache(maxsize=None)
def event(contract: str, name: str) -> Event:
    from paygent.artifacts import abi

    for entry in abi(contract):
        if entry.get("type") == "event" and entry["name"] == name:
            return Event(name, event_abi_to_log_topic(entry),
                         tuple((i["name"], _type(i)) for i in entry["inputs"] if i["indexed"]),
                         tuple((i["name"], _type(i)) for i in entry["inputs"] if not i["indexed"]))
    raise KeyError(f"{contract} has no event {name}")


class RpcError(Exception):
    """A JSON-RPC error answer; for reverts `data` holds the revert data (0x...)."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(str(error.get("message", error)))
        self.message = str(error.get("message", ""))
        data = error.get("data")
        self.data = data if isinstance(data, str) else (data or {}).get("data") if isinstance(data, dict) else None


class TxFailed(Exception):
    def __init__(self, tx_hash: str, receipt: dict[str, Any]):
        super().__init__(f"transaction {tx_hash} reverted")
        self.tx_hash = tx_hash
        self.receipt = receipt


class TxUnconfirmed(Exception):
    """The transaction was (or may have been) broadcast, but its outcome is unknown: the node failed
    or timed out while we waited. It may still be mined: never report it as failed or retry it."""

    def __init__(self, tx_hash: str, reason: str):
        super().__init__(f"transaction {tx_hash} was sent but its outcome is unknown ({reason})")
        self.tx_hash = tx_hash
        self.reason = reason


class Rpc:
    def __init__(self, w3: Any, chain_id: int, receipt_poll: float = 0.05, waiting: Any = None):
        self.provider = w3.provider
        self.chain_id = chain_id
        self.receipt_poll = receipt_poll
        self.waiting = waiting
        self._send_lock = threading.Lock()

    def request(self, method: str, params: list[Any]) -> Any:
        reply = self.provider.make_request(method, params)
        if reply.get("error"):
            raise RpcError(reply["error"])
        return reply.get("result")

    def call(self, to: str, f: Fn, *args: Any) -> Any:
        """The decoded return value: one output -> the value (a struct -> a dict), several -> a tuple."""
        raw = self.request("eth_call", [{"to": to, "data": "0x" + f.data(*args).hex()}, "latest"])
        values = decode(list(f.outputs), bytes.fromhex(raw[2:]))
        if len(values) == 1:
            value = values[0]
            return dict(zip(f.components, value)) if f.components else value
        return values

    def send(self, account: Any, to: str, data: bytes, value: int = 0) -> dict[str, Any]:
        """Estimate (reverts raise RpcError with the revert data), sign locally, send, wait for the receipt."""
        sender = account.address
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value)}
        with self._send_lock:
            gas = int(self.request("eth_estimateGas", [tx]), 16)
            nonce = int(self.request("eth_getTransactionCount", [sender, "pending"]), 16)
            gas_price = int(self.request("eth_gasPrice", []), 16)
            signed = account.sign_transaction({
                "to": to_checksum_address(to), "data": data, "value": value, "nonce": nonce, "chainId": self.chain_id,
                "gas": gas * 5 // 4 + 10_000,  # headroom over the estimate (refunds, 63/64 rule)
                "gasPrice": gas_price})
            tx_hash = "0x" + bytes(signed.hash).hex()
            try:
                self.request("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
            except RpcError:
                raise  # the node refused it: not sent
            except Exception as exc:  # noqa: BLE001 - the transport failed: it may have gone out
                raise TxUnconfirmed(tx_hash, f"{type(exc).__name__} while sending") from None
        try:
            receipt = self._wait(tx_hash)
        except Exception as exc:  # noqa: BLE001 - sent; only its receipt is missing
            raise TxUnconfirmed(tx_hash, f"{type(exc).__name__}: {str(exc)[:120]}") from None
        if int(receipt["status"], 16) != 1:
            raise TxFailed(tx_hash, {**receipt, "_tx": tx})
        return receipt

    def _wait(self, tx_hash: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        ctx = self.waiting() if self.waiting is not None else _null()
        with ctx:
            while True:
                receipt = self.request("eth_getTransactionReceipt", [tx_hash])
                if receipt is not None:
                    return receipt
                if time.monotonic() > deadline:
                    raise TimeoutError(f"transaction {tx_hash} not mined within {timeout:.0f}s")
                time.sleep(self.receipt_poll)


def logs(receipt: dict[str, Any], address: str, ev: Event) -> list[dict[str, Any]]:
    """Decoded `ev` logs emitted by `address` in a raw receipt."""
    out = []
    topic = "0x" + ev.topic.hex()
    for log in receipt.get("logs", []):
        if log["address"].lower() != address.lower() or not log["topics"] or log["topics"][0].lower() != topic:
            continue
        values: dict[str, Any] = {}
        for (name, typ), raw in zip(ev.indexed, log["topics"][1:]):
            values[name] = decode([typ], bytes.fromhex(raw[2:]))[0]
        decoded = decode([t for _n, t in ev.data], bytes.fromhex(log["data"][2:]))
        values.update({n: v for (n, _t), v in zip(ev.data, decoded)})
        out.append(values)
    return out


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None
