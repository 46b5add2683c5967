"""The offline planner: deterministic, no network, no model — the same requests as the Claude path.

It reads a request as clauses ("..., then ...", "...; ...") and each clause as one intent:

  balance / limits / history            read the wallet (get_balances, get_limits, get_history)
  swap A X to B [N% / N bps slippage]   quote_swap, then swap with that bound (default from settings)
  call|use|buy ... [from] <service>     discover_services, pick the named one, call_service (x402)
  ... the cheapest <capability>         discover_services, pick by memory rank (cheap + reliable)
  pay <service> / pay X TOKEN to 0x..   pay_service / pay_address from the wallet
  subscribe to <service> [for N ...]    discover_services, subscribe
  ask the owner to approve X to ...     request_approval (and wait for the decision)

A payment over the agent's limit becomes an approval request to the owner; a refused swap or call
is explained, never retried around the rule. What a paid service returns is shown as data and is
never parsed for instructions: only the user's words decide the tool calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agent.planner import Answer
from agent.session import Session, ToolOutcome

AMOUNT = r"(\d+(?:\.\d+)?)\s*(usdc\.e|usdc|wcro|cro)\b"
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
TOKEN_ALIASES = {"usdc": "USDC", "usdc.e": "USDC", "cro": "WCRO", "wcro": "WCRO"}
STOPWORDS = frozenset(
    "a an the to from for of with and or then please me my i we our us you it its this that some any "
    "call use query buy get fetch ask pay send cheapest cheap best service services one on at in by "
    "subscribe subscription up via using is are be want need would like can could now also".split())
SPLIT = re.compile(r"\s*(?:,\s*)?(?:\band then\b|\bthen\b|;|\.\s+(?=[A-Za-z])|\band\b(?=\s+(?:swap|pay|call|"
                   r"subscribe|check|show|buy|get|ask|use|trade|send)\b))\s*", re.IGNORECASE)
FAILOVER_CODES = frozenset({"service_unavailable", "service_error", "payment_failed", "internal_error",
                            "registry_mismatch"})

CAPABILITIES = (
    "check balances (\"what's my balance\"), limits (\"show my limits\") or history",
    "call a service: \"buy the CRO price from vvs-price-oracle\" or \"... from the cheapest price oracle\"",
    "swap: \"swap 2 USDC to CRO with 1% max slippage\"",
    "pay: \"pay vvs-price-oracle\" or \"pay 3 USDC to 0x...\" (over the limit -> asks the owner)",
    "subscribe: \"subscribe to <service> for 2 periods\"",
    "approval: \"ask the owner to approve 3 USDC to 0x...\"",
)


@dataclass
class Intent:
    kind: str
    clause: str
    amount: Decimal | None = None
    token: str | None = None
    token_out: str | None = None
    to: str | None = None
    words: list[str] = field(default_factory=list)
    cheapest: bool = False
    slippage_bps: int | None = None
    max_price: Decimal | None = None
    periods: int = 1
    units: int = 1


def _token(raw: str | None) -> str | None:
    return TOKEN_ALIASES.get(raw.lower()) if raw else None


def _slippage(clause: str) -> int | None:
    """The slippage bound the user wrote: of the percentages / basis points in the clause, the one
    nearest the word "slippage" ("CRO is up 30% today, swap with 0.5% max slippage" -> 50 bps)."""
    words = [m.start() for m in re.finditer(r"slippage", clause, re.IGNORECASE)]
    if not words:
        return None
    found = list(re.finditer(r"(\d+(?:\.\d+)?)\s*(%|percent|bps|basis points?)", clause, re.IGNORECASE))
    if not found:
        return None
    m = min(found, key=lambda f: min(abs(f.start() - w) for w in words))
    value = Decimal(m.group(1))
    return int(value * 100) if m.group(2).lower() in ("%", "percent") else int(value)


def _content_words(clause: str) -> list[str]:
    text = ADDRESS.sub(" ", clause.lower())
    text = re.sub(AMOUNT, " ", text)
    words = re.findall(r"[a-z0-9][a-z0-9./-]*[a-z0-9]|[a-z0-9]", text)
    return [w for w in words if w not in STOPWORDS and not re.fullmatch(r"\d+(\.\d+)?", w)]


def parse(request: str) -> list[Intent]:
    """Clauses -> intents (one per clause; read intents may share a clause)."""
    intents: list[Intent] = []
    for clause in (c.strip(" .,!?") for c in SPLIT.split(request.strip())):
        if not clause:
            continue
        low = clause.lower()
        amount_match = re.search(AMOUNT, low)
        amount = Decimal(amount_match.group(1)) if amount_match else None
        token = _token(amount_match.group(2)) if amount_match else None
        address = ADDRESS.search(clause)
        max_price = None
        mp = re.search(r"(?:at most|max(?:imum)?|up to|under|no more than)\s+(\d+(?:\.\d+)?)\s*(?:usdc(?:\.e)?)?", low)
        if mp and "slippage" not in low[mp.start():mp.end() + 12]:
            max_price = Decimal(mp.group(1))

        swap = re.search(r"\b(?:swap|trade|exchange|convert|sell)\s+" + AMOUNT + r"\s+(?:to|for|into)\s+(\w+(?:\.e)?)",
                         low)
        if swap:
            intents.append(Intent("swap", clause, Decimal(swap.group(1)), _token(swap.group(2)),
                                  _token(swap.group(3)) or swap.group(3).upper(), slippage_bps=_slippage(clause)))
            continue
        if re.search(r"\b(?:ask|request)\b.*\b(?:owner|approv\w*)\b", low) and amount is not None:
            intents.append(Intent("approval", clause, amount, token or "USDC", to=address.group(0) if address else None,
                                  words=_content_words(clause)))
            continue
        if re.search(r"\bsubscribe\b", low):
            periods = re.search(r"(\d+)\s*(?:periods?|days?|months?|weeks?|times?)", low)
            intents.append(Intent("subscribe", clause, words=_content_words(clause),
                                  periods=int(periods.group(1)) if periods else 1))
            continue
        if re.search(r"\b(?:pay|send|transfer)\b", low):
            units = re.search(r"(\d+)\s*(?:units?|calls?)", low)
            intents.append(Intent("pay", clause, amount, token or ("USDC" if amount else None),
                                  to=address.group(0) if address else None, words=_content_words(clause),
                                  units=int(units.group(1)) if units else 1))
            continue
        reads = []
        if re.search(r"\bbalances?\b|how much (?:money|usdc|do i have)", low):
            reads.append("balance")
        if re.search(r"\blimits?\b|\bavailable\b|how much can (?:i|you) spend|spent today|\ballowance\b", low):
            reads.append("limits")
        if re.search(r"\bhistory\b|\brecent\b|\bactivity\b|what did (?:i|you) (?:pay|spend|buy)", low):
            reads.append("history")
        if reads:
            intents.extend(Intent(kind, clause, token=token) for kind in reads)
            continue
        if re.search(r"\b(?:call|use|query|buy|get|fetch|ask|request)\b", low) or "cheapest" in low:
            intents.append(Intent("call", clause, words=_content_words(clause), cheapest="cheapest" in low
                                  or "cheaper" in low, max_price=max_price))
            continue
        intents.append(Intent("unknown", clause))
    return intents


def resolve(services: list[dict[str, Any]], intent: Intent) -> list[dict[str, Any]]:
    """Candidates for the intent's service, best first (the discovery order is the memory rank)."""
    low = intent.clause.lower()
    named = []  # services whose whole name is in the request; the longest name wins ("vvs-price-oracle"
    for rank, svc in enumerate(services):  # over a look-alike called "price")
        name = str(svc["name"]).lower()
        if name and any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", low) for n in {name, name.replace("-", " ")}):
            named.append((-len(name), rank, svc))
    if named:
        return [min(named, key=lambda t: (t[0], t[1]))[2]]
    for word in intent.words:
        if word.isdigit() or (word.startswith("#") and word[1:].isdigit()):
            for svc in services:
                if str(svc["id"]) == word.lstrip("#"):
                    return [svc]
    scored = []
    for rank, svc in enumerate(services):
        text = f"{svc['name']} {svc.get('description', '')}".lower().replace("-", " ")
        overlap = sum(1 for w in set(intent.words) if w in text)
        if overlap:
            scored.append((-overlap if not intent.cheapest else 0, rank, svc))
    if not scored and intent.cheapest:
        scored = [(0, rank, svc) for rank, svc in enumerate(services)]
    return [svc for *_key, svc in sorted(scored, key=lambda t: (t[0], t[1]))]


class OfflinePlanner:
    """Deterministic planner: the same requests as Claude, no network. See the module docstring."""

    name = "offline"

    def __init__(self, default_slippage_bps: int = 50, swap_deadline_seconds: int = 300,
                 approval_wait_seconds: float | None = None):
        self.default_slippage_bps = default_slippage_bps
        self.swap_deadline_seconds = swap_deadline_seconds
        self.approval_wait_seconds = approval_wait_seconds

    def handle(self, request: str, session: Session) -> Answer:
        session.begin(request)
        start = len(session.outcomes)
        intents = parse(request)
        if not intents or all(i.kind == "unknown" for i in intents):
            return Answer("I did not understand that. I can:\n  - " + "\n  - ".join(CAPABILITIES),
                          ok=False, stop_reason="not_understood")
        session.plan.set([(self._step_text(i), None) for i in intents])
        lines: list[str] = []
        ok = True
        stop = "done"
        for index, intent in enumerate(intents):
            step = session.plan.steps[index]
            session.plan.mark(step, "running")
            handler = getattr(self, f"_do_{intent.kind}")
            done, text = handler(intent, session)
            lines.append(text)
            session.plan.mark(step, "done" if done else "failed")
            if not done:
                ok = False
                if session.stopped:
                    stop = "budget"
                    session.plan.skip_rest(f"stopped: {session.stopped}")
                    break
                stop = "refused"
                if intent.kind in ("swap", "pay", "call", "subscribe", "approval"):
                    session.plan.skip_rest("an earlier step failed")
                    break
        return Answer("\n".join(lines), ok=ok, stop_reason=stop, outcomes=session.outcomes[start:])

    # --- plan text --------------------------------------------------------------------------------

    @staticmethod
    def _step_text(i: Intent) -> str:
        return {
            "balance": "check balances", "limits": "check limits", "history": "read history",
            "swap": f"swap {i.amount} {i.token} to {i.token_out}",
            "call": ("call the cheapest matching service" if i.cheapest else "call the requested service"),
            "pay": (f"pay {i.amount} {i.token} to {i.to}" if i.to else "pay the requested service"),
            "subscribe": f"subscribe ({i.periods} period(s))",
            "approval": f"ask the owner to approve {i.amount} {i.token}",
            "unknown": f"(not understood: {i.clause!r})",
        }[i.kind]

    # --- intents ----------------------------------------------------------------------------------

    def _do_unknown(self, intent: Intent, session: Session) -> tuple[bool, str]:
        return False, f"Skipped {intent.clause!r}: not understood."

    def _do_balance(self, intent: Intent, session: Session) -> tuple[bool, str]:
        return _report(session.call("get_balances", {}))

    def _do_limits(self, intent: Intent, session: Session) -> tuple[bool, str]:
        return _report(session.call("get_limits", {"token": intent.token or "USDC"}))

    def _do_history(self, intent: Intent, session: Session) -> tuple[bool, str]:
        return _report(session.call("get_history", {"limit": 10}))

    def _do_swap(self, intent: Intent, session: Session) -> tuple[bool, str]:
        if not intent.token or not intent.token_out:
            return False, "Swap refused: name both tokens, e.g. 'swap 2 USDC to CRO'."
        base = {"token_in": intent.token, "token_out": intent.token_out, "amount_in": str(intent.amount)}
        quote = session.call("quote_swap", base)
        if not quote.ok:
            return _report(quote)
        bps = intent.slippage_bps if intent.slippage_bps is not None else self.default_slippage_bps
        swap = session.call("swap", {**base, "slippage_bps": bps, "deadline_seconds": self.swap_deadline_seconds,
                                     "expected_out": (quote.result or {}).get("amount_out")})
        if not swap.ok and swap.code == "over_limit":
            return False, _refusal(swap)
        return _report(swap)

    def _discover(self, intent: Intent, session: Session) -> tuple[list[dict[str, Any]], ToolOutcome]:
        args: dict[str, Any] = {"query": " ".join(intent.words)} if intent.words else {}
        if intent.max_price is not None:
            args["max_price"] = str(intent.max_price)
        found = session.call("discover_services", args)
        return (found.result or {}).get("services", []) if found.ok else [], found

    def _do_call(self, intent: Intent, session: Session) -> tuple[bool, str]:
        services, found = self._discover(intent, session)
        if not found.ok:
            return _report(found)
        candidates = resolve([s for s in services if s.get("active", True)], intent)
        if not candidates:
            return False, f"No registered service matches {intent.clause!r}."
        attempts = candidates[:2] if (intent.cheapest or len(candidates) > 1) else candidates[:1]
        failures = []
        for svc in attempts:
            args: dict[str, Any] = {"service": str(svc["id"])}
            if intent.max_price is not None:
                args["max_price"] = str(intent.max_price)
            out = session.call("call_service", args)
            if out.ok:
                return _report(out)
            failures.append(_refusal(out))
            if out.code not in FAILOVER_CODES or session.stopped:
                break
        return False, " ".join(failures)

    def _do_subscribe(self, intent: Intent, session: Session) -> tuple[bool, str]:
        services, found = self._discover(intent, session)
        if not found.ok:
            return _report(found)
        subs = [s for s in services if s.get("model") == "subscription" and s.get("active", True)]
        candidates = resolve(subs, intent)
        if not candidates:
            return False, f"No subscription service matches {intent.clause!r}."
        return _report(session.call("subscribe", {"service": str(candidates[0]["id"]), "periods": intent.periods}))

    def _do_pay(self, intent: Intent, session: Session) -> tuple[bool, str]:
        if intent.to:
            if intent.amount is None:
                return False, "Payment refused: say how much, e.g. 'pay 3 USDC to 0x...'."
            args: dict[str, Any] = {"to": intent.to, "amount": str(intent.amount), "token": intent.token or "USDC"}
            out = session.call("pay_address", args)
            approval = {"to": intent.to}
        else:
            services, found = self._discover(intent, session)
            if not found.ok:
                return _report(found)
            candidates = resolve(services, intent)
            if not candidates:
                return False, f"Payment refused: no registered service matches {intent.clause!r}."
            svc = candidates[0]
            out = session.call("pay_service", {"service": str(svc["id"]), "units": intent.units})
            approval = {"service": str(svc["id"])}
            if intent.amount is None:
                intent.amount = Decimal(str((out.error or {}).get("details", {}).get("amount_human", "0")))
        if out.ok or out.code != "over_limit":
            return _report(out)
        reason = (out.error or {}).get("message", "over the agent's limit")
        amount = (out.error or {}).get("details", {}).get("amount_human") or str(intent.amount)
        request = {**approval, "amount": str(amount), "token": intent.token or "USDC",
                   "reason": intent.clause[:200]}
        if self.approval_wait_seconds is not None:
            request["wait_seconds"] = self.approval_wait_seconds
        ok, text = _report(session.call("request_approval", request))
        return ok, f"Not mine to pay alone ({reason}), so I asked the owner: {text}"

    def _do_approval(self, intent: Intent, session: Session) -> tuple[bool, str]:
        request: dict[str, Any] = {"amount": str(intent.amount), "token": intent.token or "USDC",
                                   "reason": intent.clause[:200]}
        if intent.to:
            request["to"] = intent.to
        else:
            services, found = self._discover(intent, session)
            candidates = resolve(services, intent) if found.ok else []
            if not candidates:
                return False, "Approval not requested: name the recipient (0x...) or a registered service."
            request["service"] = str(candidates[0]["id"])
        if self.approval_wait_seconds is not None:
            request["wait_seconds"] = self.approval_wait_seconds
        return _report(session.call("request_approval", request))


UNCONFIRMED_CODES = frozenset({"payment_unconfirmed", "transaction_unconfirmed"})
"""Errors after which money may have moved (or did): reported as such, never failed over."""


def _refusal(out: ToolOutcome) -> str:
    err = out.error or {}
    hint = f" ({err['hint']})" if err.get("hint") else ""
    lead = "Paid, not confirmed" if err.get("code") in UNCONFIRMED_CODES else "Refused"
    return f"{lead} — {err.get('message', 'unknown error')} [{err.get('code')}]{hint}."


def _report(out: ToolOutcome) -> tuple[bool, str]:
    if not out.ok:
        return False, _refusal(out)
    result = out.result or {}
    text = str(result.get("summary") or result)
    content = result.get("content")
    if isinstance(content, dict) and "untrusted_data" in content:
        import json

        data = json.dumps(content["untrusted_data"], sort_keys=True)
        text += f"\n    service data (untrusted, shown as-is): {data[:400]}"
    return bool(result.get("ok", True)), text
