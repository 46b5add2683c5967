"""x402 client: meet a 402, pick an acceptable requirement, sign, retry, return the receipt.

Rules it keeps:
- only the configured network and asset; price within the per-request cap and the session budget
  (spend is counted when signing, so failures and retries cannot slip past the budget);
- payTo == the PaymentRouter → ReceiveWithAuthorization (needs extra.serviceId), otherwise
  TransferWithAuthorization; the token's EIP-712 domain comes from the chain and must match any
  name/version the seller states;
- one authorization per request: a retry after "pending" (503), a 5xx or a transport error resends
  the *same* header; a second 402 after paying stops with an error, it never signs again.

`X402Client` (sync) and `AsyncX402Client` share the decisions in `PaymentPlanner`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import httpx

from agent.signer import Signer, SignedAuthorization
from paygent.eip3009 import AuthorizationKind, TokenDomain, service_nonce
from paygent.networks import Network
from paygent.wire import cronos, v1, v2
from paygent.wire.common import WireError, decode_header, parse_json, parse_model, same_address
from paygent.wire.exact import NONCE_USED

RETRYABLE = {500, 502, 503, 504}


class PaymentRefused(RuntimeError):
    """The client will not pay (or paying failed without moving money); `reason` is a code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DomainSource(Protocol):
    def domain(self, token: str) -> TokenDomain: ...


@dataclass(frozen=True)
class Offer:
    """One acceptable requirement, in version-neutral form."""

    version: int
    scheme: str
    network: str
    asset: str
    amount: int
    pay_to: str
    max_timeout_seconds: int
    service_id: int | None
    token_name: str | None
    token_version: str | None
    v1: v1.PaymentRequirements | None = None
    v2: v2.PaymentRequirements | None = None
    resource: v2.ResourceInfo | None = None


@dataclass(frozen=True)
class PaidResponse:
    response: httpx.Response
    receipt: v2.SettleResponse | v1.SettlementResponse | None = None
    """Decoded PAYMENT-RESPONSE / X-PAYMENT-RESPONSE; None when nothing was paid."""
    amount: int = 0
    payment_id: str | None = None
    """The EIP-3009 nonce (GET /payments/{id} on the facilitator)."""


@dataclass
class Budget:
    """Caps in atomic units of the asset. Thread-safe."""

    per_request: int
    session: int
    spent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reserve(self, amount: int) -> None:
        with self._lock:
            if amount > self.per_request:
                raise PaymentRefused("over_budget", f"price {amount} exceeds the per-request cap {self.per_request}")
            if self.spent + amount > self.session:
                raise PaymentRefused("over_budget", f"price {amount} exceeds the session budget left "
                                                    f"({self.session - self.spent} of {self.session})")
            self.spent += amount


def request_fingerprint(method: str, url: str, content: bytes | None) -> str:
    h = hashlib.sha256(f"{method.upper()} {url}\n".encode())
    h.update(content or b"")
    return h.hexdigest()


@dataclass
class _Pending:
    header_name: str
    header_value: str
    amount: int
    nonce: str


class PaymentPlanner:
    """The decisions, without I/O: which requirement, which signature, which header."""

    def __init__(self, signer: Signer, domains: DomainSource, network: Network, asset: str, budget: Budget,
                 router: str | None = None, check: Callable[[Offer], str | None] | None = None,
                 max_timeout_seconds: int = 300, v1_flat_payload: bool = False):
        self.signer = signer
        self.v1_flat_payload = v1_flat_payload
        """Send v1 payments in the Cronos facilitator's flat form (payload with asset + signature)."""
        self.domains = domains
        self.network = network
        self.asset = asset
        self.budget = budget
        self.router = router
        self.check = check
        """Extra acceptance rule (e.g. the ServiceRegistry entry must match); returns a refusal reason."""
        self.max_timeout_seconds = max_timeout_seconds
        self._inflight: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    # --- reading the 402 ---------------------------------------------------------------------------

    def offers(self, response: httpx.Response) -> list[Offer]:
        required = response.headers.get(v2.REQUIRED_HEADER)
        try:
            if required is not None:
                pr2 = parse_model(v2.PaymentRequired, decode_header(required), "invalid_payment_required")
                return [Offer(2, r.scheme, r.network, r.asset, int(r.amount), r.pay_to, r.max_timeout_seconds,
                              r.extra.service_id, r.extra.name, r.extra.version, v2=r, resource=pr2.resource)
                        for r in pr2.accepts]
            pr1 = parse_model(v1.PaymentRequired, parse_json(response.content), "invalid_payment_required")
        except (WireError, ValueError) as exc:
            detail = exc.detail if isinstance(exc, WireError) else "402 body is not JSON"
            raise PaymentRefused("invalid_payment_required", detail) from None
        return [Offer(1, r.scheme, r.network, r.asset, int(r.max_amount_required), r.pay_to, r.max_timeout_seconds,
                      r.extra.service_id if r.extra else None, r.extra.name if r.extra else None,
                      r.extra.version if r.extra else None, v1=r) for r in pr1.accepts]

    def _refusal(self, offer: Offer) -> tuple[str, str] | None:
        net_id = self.network.caip2 if offer.version == 2 else self.network.x402_v1
        if offer.scheme != "exact":
            return "unsupported_scheme", f"scheme {offer.scheme!r}"
        if offer.network != net_id:
            return "unknown_network", f"network {offer.network!r} (this client pays on {net_id!r})"
        if not same_address(offer.asset, self.asset):
            return "unknown_asset", f"asset {offer.asset} (this client pays in {self.asset})"
        if offer.amount > self.budget.per_request:
            return "over_budget", f"price {offer.amount} exceeds the per-request cap {self.budget.per_request}"
        if offer.amount > self.budget.session - self.budget.spent:
            return "over_budget", f"price {offer.amount} exceeds the session budget left"
        if self.router and same_address(offer.pay_to, self.router) and offer.service_id is None:
            return "missing_service_id", "payment to the PaymentRouter without extra.serviceId"
        if self.check is not None:
            reason = self.check(offer)
            if reason:
                return reason, f"requirement refused by policy ({offer.pay_to}, {offer.amount})"
        return None

    def choose(self, offers: list[Offer]) -> Offer:
        refusals = []
        for offer in offers:
            refusal = self._refusal(offer)
            if refusal is None:
                return offer
            refusals.append(refusal)
        if not refusals:
            raise PaymentRefused("no_requirements", "the 402 offers no way to pay")
        reason = refusals[0][0] if len({r[0] for r in refusals}) == 1 else "no_acceptable_requirement"
        raise PaymentRefused(reason, "; ".join(d for _, d in refusals))

    # --- signing --------------------------------------------------------------------------------

    def sign(self, offer: Offer) -> SignedAuthorization:
        domain = self.domains.domain(offer.asset)
        if offer.token_name is not None and offer.token_name != domain.name:
            raise PaymentRefused("invalid_exact_evm_token_name_mismatch",
                                 f"seller says {offer.token_name!r}, the token says {domain.name!r}")
        if offer.token_version is not None and offer.token_version != domain.version:
            raise PaymentRefused("invalid_exact_evm_token_version_mismatch",
                                 f"seller says {offer.token_version!r}, the token says {domain.version!r}")
        kind = (AuthorizationKind.RECEIVE if self.router and same_address(offer.pay_to, self.router)
                else AuthorizationKind.TRANSFER)
        # A router payment names its service in the signed nonce, so it cannot be redirected.
        nonce = service_nonce(offer.service_id) if kind is AuthorizationKind.RECEIVE and offer.service_id else None
        self.budget.reserve(offer.amount)
        timeout = min(offer.max_timeout_seconds, self.max_timeout_seconds)
        return self.signer.authorize(domain, kind, offer.pay_to, offer.amount, timeout, nonce=nonce)

    def header(self, offer: Offer, signed: SignedAuthorization) -> tuple[str, str]:
        if offer.version == 2:
            assert offer.v2 is not None
            p2 = v2.PaymentPayload(payload=signed.payload(), accepted=offer.v2, resource=offer.resource)
            return v2.PAYMENT_HEADER, p2.to_header()
        if self.v1_flat_payload:
            flat = cronos.PaymentHeader(scheme=offer.scheme, network=offer.network,
                                        payload=cronos.FlatPayload.from_exact(signed.payload(), offer.asset))
            return v1.PAYMENT_HEADER, flat.to_header()
        p1 = v1.PaymentPayload(scheme=offer.scheme, network=offer.network, payload=signed.payload())
        return v1.PAYMENT_HEADER, p1.to_header()

    def authorize(self, fingerprint: str, response: httpx.Response) -> _Pending:
        """The payment header for this request: the one already signed for it, or a new one."""
        with self._lock:
            pending = self._inflight.get(fingerprint)
            if pending is not None:
                return pending
            offer = self.choose(self.offers(response))
            signed = self.sign(offer)
            name, value = self.header(offer, signed)
            pending = _Pending(name, value, offer.amount, signed.nonce_hex)
            self._inflight[fingerprint] = pending
            return pending

    def done(self, fingerprint: str) -> None:
        with self._lock:
            self._inflight.pop(fingerprint, None)

    def outcome(self, response: httpx.Response, pending: _Pending, retried: bool = False) -> PaidResponse:
        """Final answer to a paid request (2xx/4xx other than 402). `retried`: the header was sent
        before without a final answer (a lost response, a 5xx, pending)."""
        if response.status_code == 402:
            try:
                data = parse_json(response.content)
            except ValueError:
                data = None
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            if retried and NONCE_USED in error:  # our own earlier attempt used it: the money moved
                raise PaymentRefused("paid_response_lost", f"payment {pending.nonce} was used by an earlier attempt "
                                     "whose answer did not arrive; not paying again for this request")
            said = repr(error[:160]) if error else "no reason"  # the seller's words: quoted, bounded
            raise PaymentRefused("payment_rejected", f"the server refused the payment (it said {said}); "
                                                     "not paying again for this request")
        receipt: v2.SettleResponse | v1.SettlementResponse | None = None
        header = response.headers.get(v2.RESPONSE_HEADER) or response.headers.get(v1.RESPONSE_HEADER)
        if header is not None:
            model = v2.SettleResponse if response.headers.get(v2.RESPONSE_HEADER) else v1.SettlementResponse
            try:
                receipt = parse_model(model, decode_header(header), "invalid_payment_response")
            except WireError:
                receipt = None
        return PaidResponse(response, receipt, pending.amount, pending.nonce)


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    """Seconds before the next try: the server's Retry-After when it is a sane number (0..5 s),
    else exponential backoff. A negative, NaN or date-valued header never breaks the retry."""
    if response is not None:
        try:
            wait = float(response.headers.get("retry-after", ""))
        except ValueError:
            wait = math.nan
        if math.isfinite(wait) and wait >= 0:
            return min(wait, 5.0)
    return min(0.2 * 2**attempt, 5.0)


class X402Client:
    """Synchronous paying HTTP client."""

    def __init__(self, planner: PaymentPlanner, http: httpx.Client | None = None, max_retries: int = 5):
        self.planner = planner
        self.http = http or httpx.Client(timeout=60)
        self.max_retries = max_retries

    def request(self, method: str, url: str, **kwargs: Any) -> PaidResponse:
        request = self.http.build_request(method, url, **kwargs)
        first = self.http.send(request)
        if first.status_code != 402:
            return PaidResponse(first)
        fingerprint = request_fingerprint(method, str(request.url), request.content)
        pending = self.planner.authorize(fingerprint, first)
        try:
            response: httpx.Response | None = None
            for attempt in range(self.max_retries + 1):
                paid = self.http.build_request(method, url, **kwargs)
                paid.headers[pending.header_name] = pending.header_value
                try:
                    response = self.http.send(paid)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code not in RETRYABLE:
                    return self.planner.outcome(response, pending, retried=attempt > 0)
                if attempt < self.max_retries:
                    time.sleep(_retry_after(response, attempt))
            raise PaymentRefused("settlement_unknown", f"no final answer after {self.max_retries} retries; "
                                 f"check payment {pending.nonce} before paying again")
        finally:
            self.planner.done(fingerprint)

    def get(self, url: str, **kwargs: Any) -> PaidResponse:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        self.http.close()


class AsyncX402Client:
    """Asynchronous paying HTTP client (signing runs in a worker thread when it may read the chain)."""

    def __init__(self, planner: PaymentPlanner, http: httpx.AsyncClient | None = None, max_retries: int = 5):
        self.planner = planner
        self.http = http or httpx.AsyncClient(timeout=60)
        self.max_retries = max_retries

    async def request(self, method: str, url: str, **kwargs: Any) -> PaidResponse:
        request = self.http.build_request(method, url, **kwargs)
        first = await self.http.send(request)
        if first.status_code != 402:
            return PaidResponse(first)
        await first.aread()
        fingerprint = request_fingerprint(method, str(request.url), request.content)
        pending = await asyncio.to_thread(self.planner.authorize, fingerprint, first)
        try:
            response: httpx.Response | None = None
            for attempt in range(self.max_retries + 1):
                paid = self.http.build_request(method, url, **kwargs)
                paid.headers[pending.header_name] = pending.header_value
                try:
                    response = await self.http.send(paid)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code not in RETRYABLE:
                    return self.planner.outcome(response, pending, retried=attempt > 0)
                if attempt < self.max_retries:
                    await asyncio.sleep(_retry_after(response, attempt))
            raise PaymentRefused("settlement_unknown", f"no final answer after {self.max_retries} retries; "
                                 f"check payment {pending.nonce} before paying again")
        finally:
            self.planner.done(fingerprint)

    async def get(self, url: str, **kwargs: Any) -> PaidResponse:
        return await self.request("GET", url, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()
