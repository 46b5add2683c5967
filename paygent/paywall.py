"""x402 paywall for sellers: ASGI middleware that charges per route before serving it.

Unpaid request → 402 with the v1 JSON body *and* the v2 `PAYMENT-REQUIRED` header, so v1 and v2
clients (ours and the reference SDK's) both understand it. Paid request (`X-PAYMENT` or
`PAYMENT-SIGNATURE`) → matched against what this route advertises → settled through a facilitator
(ours or any other speaking /settle) → only after settlement succeeds is the route served, with
`X-PAYMENT-RESPONSE` / `PAYMENT-RESPONSE` on the answer.

Statuses: 400 malformed payment header (with a reason); 402 payment missing, not acceptable, or
refused by the facilitator (with a reason; nothing moved); 503 settlement pending, or the
facilitator cannot settle right now (Retry-After; retry the *same* header, never sign again); 502
facilitator unreachable or broken. Each authorization buys one
response: a replayed header is refused even though settlement itself is idempotent.

Prices come from the service's ServiceRegistry entry (`route_from_registry`) or are given.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paygent.networks import Network
from paygent.wire import cronos, v1, v2
from paygent.wire.common import WireError, decode_header, parse_json, parse_model, same_address
from paygent.wire.exact import NONCE_USED, Extra

log = logging.getLogger("paygent.paywall")

NO_MATCH = "invalid_payment_requirements"


@dataclass(frozen=True)
class PaidRoute:
    """One priced route."""

    path: str
    price: int
    """Atomic units of `asset` (USDC.e: 6 decimals)."""
    asset: str
    pay_to: str
    token_name: str
    """EIP-712 domain name of the asset, read from the chain."""
    token_version: str
    method: str = "GET"
    service_id: int | None = None
    """ServiceRegistry id; set when payTo is the PaymentRouter."""
    description: str = ""
    mime_type: str = "application/json"
    max_timeout_seconds: int = 300

    def extra(self) -> Extra:
        return Extra(name=self.token_name, version=self.token_version, service_id=self.service_id)

    def v1_requirements(self, network: Network, resource: str) -> v1.PaymentRequirements:
        return v1.PaymentRequirements(
            scheme="exact", network=network.x402_v1, max_amount_required=str(self.price), resource=resource,
            description=self.description, mime_type=self.mime_type, pay_to=self.pay_to,
            max_timeout_seconds=self.max_timeout_seconds, asset=self.asset, extra=self.extra())

    def v2_requirements(self, network: Network) -> v2.PaymentRequirements:
        return v2.PaymentRequirements(
            scheme="exact", network=network.caip2, asset=self.asset, amount=str(self.price), pay_to=self.pay_to,
            max_timeout_seconds=self.max_timeout_seconds, extra=self.extra())


def route_from_registry(w3: Any, registry: str, router: str, service_id: int, path: str, *,
                        method: str = "GET", description: str | None = None,
                        max_timeout_seconds: int = 300) -> PaidRoute:
    """A route priced by ServiceRegistry entry `service_id`: paid to the PaymentRouter
    (ReceiveWithAuthorization), which forwards to the service's registered payTo."""
    from eth_utils import to_checksum_address

    from paygent.artifacts import abi
    from paygent.eip3009 import DomainReader

    contract = w3.eth.contract(address=to_checksum_address(registry), abi=abi("ServiceRegistry"))
    service = contract.functions.getService(service_id).call()
    terms = contract.functions.paymentTerms(service_id).call()
    active, _model, token, price, _period, _pay_to = terms
    if not active:
        raise ValueError(f"service {service_id} is not active in the registry")
    domain = DomainReader(w3).domain(token)
    name = service[7] if len(service) > 7 else ""
    return PaidRoute(path=path, method=method, price=int(price), asset=to_checksum_address(token),
                     pay_to=to_checksum_address(router), token_name=domain.name, token_version=domain.version,
                     service_id=service_id, description=description or str(name),
                     max_timeout_seconds=max_timeout_seconds)


class FacilitatorError(RuntimeError):
    """The facilitator could not be reached or answered something unusable (HTTP 502), or said it
    cannot settle right now (HTTP 503, e.g. a keeper that is not the leader): then the paywall
    answers 503 with the facilitator's Retry-After, and the client resends the same header."""

    def __init__(self, message: str, status: int = 502, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FacilitatorClient(Protocol):
    async def settle(self, version: int, payload: v1.PaymentPayload | v2.PaymentPayload,
                     requirements: v1.PaymentRequirements | v2.PaymentRequirements) -> v2.SettleResponse: ...


class HttpFacilitator:
    """A facilitator reached over HTTP (POST {url}/settle)."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def settle(self, version: int, payload: v1.PaymentPayload | v2.PaymentPayload,
                     requirements: v1.PaymentRequirements | v2.PaymentRequirements) -> v2.SettleResponse:
        body = {"x402Version": version,
                "paymentPayload": payload.model_dump(mode="json", by_alias=True, exclude_none=True),
                "paymentRequirements": requirements.model_dump(mode="json", by_alias=True, exclude_none=True)}
        try:
            reply = await self._client.post(f"{self.url}/settle", json=body)
        except httpx.HTTPError as exc:
            raise FacilitatorError(f"facilitator unreachable: {type(exc).__name__}") from exc
        if reply.status_code == 400:  # it found the payload malformed: the payer's problem
            try:
                data = parse_json(reply.content)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise FacilitatorError("facilitator answered HTTP 400 without a JSON object")
            return v2.SettleResponse(success=False, error_reason=data.get("errorReason", "invalid_payload"),
                                     error_message=data.get("invalidMessage"), network="", status="failed")
        if reply.status_code == 503:
            reason = _error_of(reply)
            wait = reply.headers.get("retry-after", "")
            # Passed on only as whole seconds (what RFC 9110 delay-seconds allows, capped); else 2.
            raise FacilitatorError(f"facilitator cannot settle now ({reason})", 503,
                                   wait if wait.isascii() and wait.isdigit() and len(wait) <= 4 else "2")
        if reply.status_code != 200:
            raise FacilitatorError(f"facilitator answered HTTP {reply.status_code}")
        try:
            return v2.SettleResponse.model_validate_json(reply.content)
        except ValueError as exc:
            raise FacilitatorError("facilitator answered an unreadable settle response") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_of(reply: httpx.Response) -> str:
    """The `error` field of a JSON error answer, else the status line."""
    try:
        data = parse_json(reply.content)
    except ValueError:
        return f"HTTP {reply.status_code}"
    return str(data.get("error") or f"HTTP {reply.status_code}") if isinstance(data, dict) else f"HTTP {reply.status_code}"


class ServedLog:
    """Which authorizations already bought a response: one response per payment, however often its
    header is sent. SQLite; give it a file (shared by every worker process of the service, kept
    across restarts) — in memory, a restarted or second worker would serve a replayed header again."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS served (nonce TEXT PRIMARY KEY, tx TEXT)")
        self._lock = threading.Lock()

    def seen(self, nonce: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM served WHERE nonce = ?", (nonce.lower(),)).fetchone() is not None

    def claim(self, nonce: str, tx: str) -> bool:
        """True for the first caller per nonce, False afterwards."""
        with self._lock:
            return self._db.execute("INSERT OR IGNORE INTO served VALUES (?, ?)", (nonce.lower(), tx)).rowcount == 1

    def release(self, nonce: str) -> None:
        """The response the payment bought failed (5xx or an exception): the next request with the
        same header gets it instead — still one response per payment."""
        with self._lock:
            self._db.execute("DELETE FROM served WHERE nonce = ?", (nonce.lower(),))


@dataclass
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Paywall:
    """ASGI middleware: `Paywall(app, routes, facilitator, network)`."""

    def __init__(self, app: ASGIApp, routes: list[PaidRoute], facilitator: FacilitatorClient, network: Network,
                 served: ServedLog | None = None, public_url: str | None = None):
        self.app = app
        self.routes = {(r.method.upper(), r.path): r for r in routes}
        self.facilitator = facilitator
        self.network = network
        if served is None:
            log.warning("paywall: the served-payments log is in memory; a restarted or second worker would "
                        "serve a replayed payment header again (pass ServedLog(path))")
            served = ServedLog()
        self.served = served
        self.public_url = public_url.rstrip("/") if public_url else None

    def _resource(self, scope: Scope, headers: Headers) -> str:
        path = scope.get("path", "")
        if self.public_url:
            return self.public_url + path
        host = headers.get("host", "localhost")
        return f"{scope.get('scheme', 'http')}://{host}{path}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.routes.get((scope["method"].upper(), scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        resource = self._resource(scope, headers)
        try:
            outcome = await self._charge(route, resource, headers)
        except FacilitatorError as exc:
            log.warning("paywall %s: %s", route.path, exc)
            outcome = _Reply(exc.status, {"error": "facilitator_unavailable", "message": str(exc)},
                             {"Retry-After": exc.retry_after} if exc.retry_after else {})
        if isinstance(outcome, _Reply):
            await _send_json(send, outcome)
            return
        response_header, encoded, nonce = outcome
        status: list[int] = []

        async def send_with_receipt(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (response_header.lower().encode(), encoded.encode()),
                    (b"access-control-expose-headers", response_header.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_receipt)
        finally:  # the content did not come out: the payment still buys it, on the next try
            if not status or status[0] >= 500:
                log.warning("paywall %s: the app failed after payment %s; the same header may retry", route.path, nonce)
                self.served.release(nonce)

    def payment_required(self, route: PaidRoute, resource: str, error: str) -> _Reply:
        body = v1.PaymentRequired(error=error, accepts=[route.v1_requirements(self.network, resource)])
        header = v2.PaymentRequired(
            error=error, accepts=[route.v2_requirements(self.network)],
            resource=v2.ResourceInfo(url=resource, description=route.description or None,
                                     mime_type=route.mime_type))
        return _Reply(402, body.model_dump(mode="json", by_alias=True, exclude_none=True),
                      {v2.REQUIRED_HEADER: header.to_header(), "Cache-Control": "no-store"})

    async def _charge(self, route: PaidRoute, resource: str, headers: Headers) -> _Reply | tuple[str, str, str]:
        """A reply that ends the request (402, 400, 503 pending), or, once the payment is settled
        and claimed for this request, (response header name, its value, the authorization nonce)."""
        v2_header = headers.get(v2.PAYMENT_HEADER)
        v1_header = headers.get(v1.PAYMENT_HEADER)
        if v2_header is None and v1_header is None:
            return self.payment_required(route, resource, f"{v2.PAYMENT_HEADER} or {v1.PAYMENT_HEADER} header is required")
        try:
            if v2_header is not None:
                payload2 = parse_model(v2.PaymentPayload, decode_header(v2_header), "invalid_payment_header")
                requirements2 = route.v2_requirements(self.network)
                if not _accepts_v2(payload2.accepted, requirements2):
                    return self.payment_required(route, resource, f"{NO_MATCH}: accepted requirements are not offered here")
                version, payload, requirements, response_header = 2, payload2, requirements2, v2.RESPONSE_HEADER
            else:
                assert v1_header is not None
                payload1 = parse_v1_payment(decode_header(v1_header))
                requirements1 = route.v1_requirements(self.network, resource)
                if payload1.scheme != "exact" or payload1.network != self.network.x402_v1:
                    return self.payment_required(route, resource, f"{NO_MATCH}: scheme/network not offered here")
                version, payload, requirements, response_header = 1, payload1, requirements1, v1.RESPONSE_HEADER
        except WireError as exc:
            return _Reply(400, {"error": exc.reason, "message": exc.detail})
        nonce = payload.payload.authorization.nonce
        if self.served.seen(nonce):
            return self.payment_required(route, resource, f"{NONCE_USED}: this authorization was already used")
        result = await self.facilitator.settle(version, payload, requirements)
        if result.status == "pending":
            return _Reply(503, {"status": "pending", "paymentId": nonce,
                                "message": "settlement pending: retry with the same payment header"},
                          {"Retry-After": "2", response_header: result.to_header()})
        if not result.success:
            return self.payment_required(route, resource, result.error_reason or "settlement_failed")
        if not self.served.claim(nonce, result.transaction):
            return self.payment_required(route, resource, f"{NONCE_USED}: this authorization was already used")
        if version == 1:
            receipt = v1.SettlementResponse(success=True, transaction=result.transaction,
                                            network=result.network, payer=result.payer).to_header()
        else:
            receipt = result.to_header()
        return response_header, receipt, nonce


def parse_v1_payment(data: Any) -> v1.PaymentPayload:
    """An `X-PAYMENT` payload: the standard nested form, or the Cronos facilitator's flat form
    (`payload` = {from, to, value, validAfter, validBefore, nonce, signature, asset})."""
    payload = data.get("payload") if isinstance(data, dict) else None
    if isinstance(payload, dict) and "authorization" not in payload and "from" in payload:
        flat = parse_model(cronos.PaymentHeader, data, "invalid_payment_header")
        return v1.PaymentPayload(scheme=flat.scheme, network=flat.network, payload=flat.payload.to_exact())
    return parse_model(v1.PaymentPayload, data, "invalid_payment_header")


def _accepts_v2(accepted: v2.PaymentRequirements, offered: v2.PaymentRequirements) -> bool:
    return (accepted.scheme == offered.scheme and accepted.network == offered.network
            and same_address(accepted.asset, offered.asset) and accepted.amount == offered.amount
            and same_address(accepted.pay_to, offered.pay_to)
            and accepted.extra.service_id == offered.extra.service_id)


async def _send_json(send: Send, reply: _Reply) -> None:
    body = json.dumps(reply.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    if reply.status == 402 and v2.REQUIRED_HEADER in reply.headers:
        headers.append((b"access-control-expose-headers", v2.REQUIRED_HEADER.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
