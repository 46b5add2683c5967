"""Stateful properties: the ten invariants of DESIGN.md, against the real contracts on anvil.

Two hypothesis RuleBasedStateMachines drive the system that `paygent.deployment` deploys on the test
session's anvil (chain id 338):

* `WalletMachine` (invariants 1-5): the AgentWallet with two agents, USDC.e, WCRO and native CRO,
  the VVS router, signed intents, the approval queue, and time crossing window edges.
* `RegistryRouterMachine` (invariants 6-10): ServiceRegistry + PaymentRouter + USDC.e EIP-3009.

Each machine keeps a Python model of what the contracts must hold, PREDICTS every call's outcome
(success, or the set of errors that may explain the refusal when several rules are broken at once)
and compares the model with the contracts' views and balances after every step. Rules draw the
actors (owner / agent / second agent / stranger) and amounts around the boundaries (0, 1, cap,
cap+1, remaining, remaining+1), and also try every forbidden thing.

Time: the model owns the clock. Every transaction is pinned to `clock.now` with
`chain.pending_timestamp`, and only the `advance_time` rule moves it (`chain.mine(timestamp=...)`),
to exact window edges (`period*k - 1`, `period*k`), request expiries and arbitrary amounts; so what
the model predicts for a timestamp is what the chain executes at that timestamp.

Chain state: deployed once per test session (`stack`), set up once per machine, snapshotted; every
example starts with `chain.restore(snapshot)` and takes a fresh snapshot (anvil consumes one on
revert). Ape's own per-test isolation wraps the whole run and is restored after it.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from ape import chain, project
from ape.exceptions import ContractLogicError
from ape_ethereum import multicall
from eth_account import Account
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from paygent.localchain import test_key as key_of  # aliased: pytest would collect `test_key`

ZERO = "0x0000000000000000000000000000000000000000"
NATIVE = ZERO
DAY = 86_400
ONE_USDC = 10**6
ONE_CRO = 10**18
UINT96_MAX = 2**96 - 1

ANY = "*"  # any revert reason is an acceptable explanation

# Revert explanations shared by several rules.
NO_FUNDS = ("TransferFailed", "ERC20: transfer amount exceeds balance")
USED = "FiatTokenV2: authorization is used or canceled"
EXPIRED_AUTH = "FiatTokenV2: authorization is expired"
NOT_YET_AUTH = "FiatTokenV2: authorization is not yet valid"
BAD_SIG = "FiatTokenV2: invalid signature"

# RequestStatus
NONE, PENDING, EXECUTED, REJECTED, CANCELLED, EXPIRED = range(6)
# PricingModel
PER_CALL, METERED, SUBSCRIPTION = range(3)


# ------------------------------------------------------------------------------------------------
# Driving the chain


class Clock:
    """The model's time. Transactions are pinned to `now`; `advance` mines an empty block at the target."""

    def __init__(self) -> None:
        self.now = chain.blocks.head.timestamp

    def pin(self) -> None:
        chain.pending_timestamp = self.now

    def advance(self, target: int) -> None:
        if target > self.now:
            self.now = target
            chain.mine(timestamp=target)


OUTCOMES: collections.Counter = collections.Counter()  # (call, outcome) over the run, printed with -s


class Views:
    """The invariants' view calls, batched into one eth_call through Multicall3 (placed at its
    standard address by the deployment), then compared one by one with the model."""

    def __init__(self) -> None:
        self._calls = multicall.Call(supported_chains=[chain.chain_id])
        self._expected: list[tuple[str, Any, Callable | None]] = []

    def expect(self, label: str, method: Any, *args: Any, equals: Any, convert: Callable | None = None) -> None:
        self._calls.add(method, *args)
        self._expected.append((label, equals, convert))

    def verify(self) -> None:
        if not self._expected:
            return
        for (label, expected, convert), got in zip(self._expected, list(self._calls()), strict=True):
            assert got is not None, f"{label}: the view reverted"
            value = convert(got) if convert else got
            assert value == expected, f"{label}: chain has {value!r}, model expects {expected!r}"


def ints(value: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in value)


def reason(exc: ContractLogicError) -> str:
    """A custom error's name, or the revert string."""
    name = getattr(exc, "name", None)
    return name if isinstance(name, str) else str(exc.message)


def _name(fn: Any) -> str:
    abis = getattr(fn, "abis", None)
    return abis[0].name if abis else getattr(fn, "__name__", str(fn))


_ERROR_NAMES: dict[bytes, str] = {}


def decode_revert(data: str | None) -> str:
    """A revert's reason from its return data: the custom error's name (any project contract), the
    Error(string) message, or Panic(code)."""
    raw = bytes.fromhex((data or "0x")[2:])
    if not _ERROR_NAMES:
        for name in project.contracts:
            for err in project.contracts[name].errors:
                _ERROR_NAMES[keccak(text=err.selector)[:4]] = err.name
    if raw[:4] == bytes.fromhex("08c379a0"):
        return abi_decode(["string"], raw[4:])[0]
    if raw[:4] == bytes.fromhex("4e487b71"):
        return f"Panic({abi_decode(['uint256'], raw[4:])[0]:#x})"
    return _ERROR_NAMES.get(raw[:4], "0x" + raw.hex() if raw else "reverted without data")


def dry_run(fn: Any, args: tuple, sender: Any) -> str | None:
    """eth_call of the transaction in the pending block (the pinned timestamp): its revert reason,
    or None if it would succeed. Reverts are found this way, not by sending, because ape traces and
    prints every failed transaction (slow), and half of the calls here are meant to fail."""
    call = {"from": sender.address, "to": fn.contract.address, "data": "0x" + bytes(fn.encode_input(*args)).hex()}
    reply = chain.provider.web3.provider.make_request("eth_call", [call, "pending"])
    if "error" not in reply:
        return None
    return decode_revert(reply["error"].get("data"))


def attempt(clock: Clock, why: Any, fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """Send one transaction at `clock.now` and check the predicted outcome.

    `why` empty: must succeed. A collection of reasons: must revert with one of them (ANY: any
    reason; used only where a third-party contract, the AMM, gives the reason).
    Returns (receipt or None, revert reason or None).
    """
    clock.pin()
    receipt, err = None, None
    if hasattr(fn, "encode_input"):
        err = dry_run(fn, args, kwargs["sender"])
    if err is None:
        try:
            receipt = fn(*args, **kwargs)
        except ContractLogicError as exc:  # the dry run said it would succeed: report, don't hide
            receipt, err = None, f"{reason(exc)} (sent after a successful dry run)"
    OUTCOMES[(_name(fn), err or "ok")] += 1
    call = f"{_name(fn)}{tuple(args)} by {kwargs.get('sender')} at {clock.now}"
    if not why:
        assert err is None, f"{_name(fn)} expected to succeed, reverted with {err} -- {call}"
    else:
        assert err is not None, f"{_name(fn)} expected to revert ({sorted(why)}), it succeeded -- {call}"
        assert ANY in why or err in why, f"{_name(fn)} reverted with {err!r}, expected one of {sorted(why)} -- {call}"
    return receipt, err


def events(receipt: Any, name: str) -> list[dict]:
    return [dict(log.event_arguments) for log in receipt.events if log.event_name == name]


def addr(x: Any) -> str:
    return to_checksum_address(x if isinstance(x, str) else x.address)


def sign(key: Any, domain: dict, primary: str, types: list[tuple[str, str]], message: dict) -> bytes:
    signed = Account.sign_typed_data(
        key.key, domain_data=domain, message_types={primary: [{"name": n, "type": t} for n, t in types]},
        message_data=message,
    )
    return bytes(signed.signature)


def bound_nonce(service_id: int, seed: str) -> bytes:
    """An x402 nonce for the router: serviceId in the top 64 bits, 192 pseudo-random bits below."""
    low = int.from_bytes(keccak(text=seed), "big") & ((1 << 192) - 1)
    return ((service_id << 192) | low).to_bytes(32, "big")


def amount_for(kind: str, *, cap: int, remaining: int, noise: int, scale: int) -> int:
    """Amounts around a rule's boundaries."""
    return {
        "zero": 0,
        "one": 1,
        "cap": cap,
        "cap+1": cap + 1,
        "remaining": remaining,
        "remaining+1": remaining + 1,
        "available": min(remaining, cap),
        "random": noise % (2 * scale + 1),
    }[kind]


AMOUNT_KINDS = st.sampled_from(["zero", "one", "cap", "cap+1", "remaining", "remaining+1", "available", "available",
                                "random"])
NOISE = st.integers(min_value=0, max_value=2**64)


@dataclass
class World:
    """What a machine needs from the deployment, plus the snapshot every example restores."""

    stack: Any
    accounts: dict[str, Any]
    snapshot: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_machine(machine: type[RuleBasedStateMachine], world: World) -> None:
    world.snapshot = chain.snapshot()
    machine.world = world  # type: ignore[attr-defined]
    OUTCOMES.clear()
    try:
        run_state_machine_as_test(machine, settings=settings())
    finally:
        chain.restore(world.snapshot)
        print(f"\n{machine.__name__} outcomes:")
        for (call, outcome), n in sorted(OUTCOMES.items()):
            print(f"  {n:5d}  {call}: {outcome}")


# ------------------------------------------------------------------------------------------------
# AgentWallet: invariants 1-5


@dataclass
class Rule:
    limit: int = 0
    cap: int = 0
    period: int = 0
    float_cap: int = 0
    spent: int = 0
    window: int = 0
    epoch: int = 0  # bumped when the period changes (the contract then starts the window afresh)

    def spent_now(self, now: int) -> int:
        if self.period == 0:
            return 0
        return self.spent if self.window == now // self.period else 0


@dataclass
class Request:
    agent: str
    token: str
    to: str
    amount: int
    expires_at: int
    status: int = PENDING
    approved: int = 0
    executions: int = 0


AGENTS = ("agentA", "agentB")
ACTORS = st.sampled_from(["agentA", "agentA", "agentA", "agentB", "agentB", "owner", "stranger"])
CALLERS = st.sampled_from(["owner", "owner", "owner", "agentA", "stranger"])  # for owner-only functions
TOKENS = st.sampled_from(["USDC", "USDC", "NATIVE", "WCRO"])


@pytest.fixture(scope="module")
def wallet_world(stack, accounts):
    """The deployed wallet, with a second agent, explicit rules per (agent, token) and native CRO."""
    owner = accounts[0]
    acc = {"owner": owner, "agentA": accounts[1], "agentB": accounts[6], "stranger": accounts[4],
           "payee": accounts[7]}
    w = stack.wallet
    w.addAgent(acc["agentB"], sender=owner)
    usdc, wcro = stack.usdc.address, stack.wcro.address
    rules = {
        # agent, token: limit, cap, period, floatCap
        ("agentA", usdc): (5 * ONE_USDC, 3 * ONE_USDC, DAY, 1 * ONE_USDC),  # two caps exceed the limit
        ("agentB", usdc): (3 * ONE_USDC, 3 * ONE_USDC, 3600, 0),
        ("agentA", NATIVE): (2 * ONE_CRO, 1 * ONE_CRO, DAY, 0),
        ("agentA", wcro): (100 * ONE_CRO, 40 * ONE_CRO, DAY, 0),
        ("agentB", wcro): (10 * ONE_CRO, 10 * ONE_CRO, 60, 0),
        # (agentB, NATIVE) stays unset: an agent without a rule spends nothing.
    }
    for (name, token), (limit, cap, period, float_cap) in rules.items():
        w.setRule(acc[name], token, limit, cap, period, float_cap, sender=owner)
    owner.transfer(w, 10 * ONE_CRO)
    return World(stack, acc, extra={"rules": rules})


def test_wallet_invariants(wallet_world):
    """Invariants 1-5: limits and caps per window, the approval queue, owner-only controls, pause and
    revoke stop every path, and funds leave the wallet only by the allowed paths."""
    run_machine(WalletMachine, wallet_world)


class WalletMachine(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        chain.restore(world.snapshot)
        world.snapshot = chain.snapshot()
        s, a = world.stack, world.accounts
        self.s, self.a = s, a
        self.wallet, self.usdc, self.wcro, self.vvs = s.wallet, s.usdc, s.wcro, s.vvs
        self.clock = Clock()
        self.tokens = {"USDC": self.usdc.address, "NATIVE": NATIVE, "WCRO": self.wcro.address}
        self.unit = {"USDC": ONE_USDC, "NATIVE": ONE_CRO, "WCRO": ONE_CRO}
        # Model
        self.paused = False
        self.agents = {n: {"active": True, "paused": False} for n in AGENTS}
        self.rules = {(n, t): Rule() for n in AGENTS for t in self.tokens.values()}
        for (n, t), (limit, cap, period, fc) in world.extra["rules"].items():
            self.rules[(n, t)] = Rule(limit, cap, period, fc)
        self.routers = {self.vvs.address: True}
        self.bogus_router = a["stranger"].address  # never allowlisted
        self.requests: dict[int, Request] = {}
        self.ttl = int(self.wallet.requestTtl())
        self.nonces = {n: int(self.wallet.nonces(a[n])) for n in AGENTS}
        self.last_signed: dict | None = None
        # Balances the model follows (wallet, agents' hot keys, payee, owner) per token
        self.holders = ["wallet", "agentA", "agentB", "payee", "owner", "stranger"]
        # (native CRO only where no transaction is ever sent from: gas is free here, but need not be)
        self.bal = {(h, t): self._read_balance(h, t) for h in self.holders for t in self.tokens.values()
                    if t != NATIVE or h in ("wallet", "payee")}
        # Independent ledger for invariant 1: spend per (agent, token, rule epoch, window index)
        self.ledger: dict[tuple, int] = {}
        self.max_limit_in_window: dict[tuple, int] = {}
        self.domain = {"name": "Paygent AgentWallet", "version": "1", "chainId": chain.chain_id,
                       "verifyingContract": self.wallet.address}
        self.mc = project.Multicall3.at(s.manifest.address("Multicall3"))
        assert chain.chain_id == 338

    # --- helpers -------------------------------------------------------------------------------

    def _holder(self, h: str) -> str:
        return self.wallet.address if h == "wallet" else self.a[h].address

    def _read_balance(self, h: str, token: str) -> int:
        who = self._holder(h)
        if token == NATIVE:
            return chain.provider.get_balance(who)
        return int((self.usdc if token == self.usdc.address else self.wcro).balanceOf(who))

    def _move(self, token: str, frm: str, to: str, amount: int) -> None:
        if (frm, token) in self.bal:
            self.bal[(frm, token)] -= amount
        if (to, token) in self.bal:
            self.bal[(to, token)] += amount

    def _agent_errors(self, actor: str) -> set[str]:
        """Why an action by `actor` as an agent must fail, before any money rule."""
        why: set[str] = set()
        if self.paused:
            why.add("WalletIsPaused")
        if actor not in AGENTS or not self.agents[actor]["active"]:
            why.add("NotAgent")
        elif self.agents[actor]["paused"]:
            why.add("AgentIsPaused")
        return why

    def _spend_errors(self, actor: str, token: str, amount: int) -> set[str]:
        why = self._agent_errors(actor)
        if amount == 0:
            why.add("ZeroAmount")
        if actor in AGENTS:
            r = self.rules[(actor, token)]
            if r.period == 0:  # no rule for this token: nothing may be spent
                why |= {"CapExceeded", "LimitExceeded", "InvalidPeriod", "NoRule"}
            else:
                if amount > r.cap:
                    why.add("CapExceeded")
                if r.spent_now(self.clock.now) + amount > r.limit:
                    why.add("LimitExceeded")
        if amount > UINT96_MAX:
            why.add("AmountTooLarge")
        return why

    def _record_spend(self, actor: str, token: str, amount: int, receipt: Any, event: str) -> None:
        r = self.rules[(actor, token)]
        w = self.clock.now // r.period
        if r.window != w:
            r.spent, r.window = 0, w
        r.spent += amount
        key = (actor, token, r.epoch, w)
        self.ledger[key] = self.ledger.get(key, 0) + amount
        self.max_limit_in_window[key] = max(self.max_limit_in_window.get(key, 0), r.limit)
        # Invariant 1, stated directly: what the agent spent in this window never exceeds the limit.
        assert self.ledger[key] <= self.max_limit_in_window[key], (
            f"{actor} spent {self.ledger[key]} of {token} in window {w}, limit {r.limit}")
        assert amount <= r.cap
        (ev,) = events(receipt, event)
        assert ev["remainingInWindow"] == r.limit - r.spent and ev["windowIndex"] == w, ev

    def _amount(self, actor: str, token: str, kind: str, noise: int) -> int:
        r = self.rules.get((actor, token), Rule())
        remaining = max(r.limit - r.spent_now(self.clock.now), 0)
        return amount_for(kind, cap=r.cap, remaining=remaining, noise=noise, scale=max(r.limit, 10))

    def _token_name(self, token: str) -> str:
        return next(n for n, t in self.tokens.items() if t == token)

    # --- where an example starts ----------------------------------------------------------------

    @initialize(requests=st.integers(0, 2), ttl=st.sampled_from([DAY, 7 * DAY]),
                spent=st.sampled_from(["none", "none", "some", "all"]),
                clock=st.sampled_from(["as is", "as is", "edge-1", "edge", "expiry-1", "expiry"]),
                b_state=st.sampled_from(["active", "active", "paused", "revoked"]),
                a_paused=st.sampled_from([False, False, False, True]),
                wallet_paused=st.sampled_from([False, False, False, False, True]))
    def starting_point(self, requests: int, ttl: int, spent: str, clock: str, b_state: str, a_paused: bool,
                       wallet_paused: bool) -> None:
        """Examples start near the boundaries the invariants are about: requests already waiting
        (living a day or a week), agents that already spent part or all of their window, the clock
        one second before / at a window edge or a request's expiry, and agents or the wallet
        already paused or revoked."""
        if ttl != self.ttl:
            self.set_request_ttl("owner", ttl)
        for i in range(requests):
            self.propose("agentA" if i % 2 == 0 else "agentB", "USDC", "random", 10 * ONE_USDC + i)
        usdc = self.usdc.address
        if spent != "none":
            for agent in AGENTS:
                for _ in range(1 if spent == "some" else 3):
                    if self._amount(agent, usdc, "available", 0):
                        self.pay(agent, "USDC", "available", 0, True)
        if clock in ("edge-1", "edge"):
            period = self.rules[("agentA", usdc)].period
            edge = (self.clock.now // period + 1) * period
            self.clock.advance(edge - 1 if clock == "edge-1" else edge)
        elif clock.startswith("expiry") and self.requests:
            expiry = self.requests[1].expires_at
            self.clock.advance(expiry - 1 if clock == "expiry-1" else expiry)
        if b_state == "paused":
            self.set_agent_paused("owner", "agentB", True)
        elif b_state == "revoked":
            self.revoke_or_add_agent("owner", "agentB", False)
        if a_paused:
            self.set_agent_paused("owner", "agentA", True)
        if wallet_paused:
            self.set_wallet_paused("owner", True)

    # --- time ----------------------------------------------------------------------------------

    def advance_time(self, kind: str, which: tuple[str, str], k: int, noise: int) -> None:
        now = self.clock.now
        period = self.rules[(which[0], self.tokens[which[1]])].period or DAY
        edge = (now // period + k) * period
        pending = [r.expires_at for r in self.requests.values() if r.status == PENDING and r.expires_at > now]
        expiry = pending[noise % len(pending)] if pending else now + self.ttl
        target = {
            "edge-1": edge - 1,
            "edge": edge,
            "edge+1": edge + 1,
            "k*period-1": now + k * period - 1,
            "k*period": now + k * period,
            "half": now + period // 2,
            "second": now + 1,
            "expiry-1": expiry - 1,
            "expiry": expiry,
            "random": now + noise % (2 * DAY),
        }[kind]
        self.clock.advance(target)

    # --- agent actions -------------------------------------------------------------------------

    # Every way an agent moves funds, in one rule: hypothesis' swarm testing switches whole rules
    # off per example, and spending is what most invariants are about.
    def agent_spends(self, path, actor, token, kind, noise, to_payee, direction, router, min_out, deadline,
                     signer) -> None:
        if path == "pay":
            self.pay(actor, token, kind, noise, to_payee)
        elif path == "pay_with_sig":
            self.pay_with_sig(actor if actor in AGENTS else "agentA", signer, token if token != "WCRO" else "USDC",
                              kind, noise, deadline)
        elif path == "top_up_float":
            self.top_up_float(actor, token if token != "WCRO" else "USDC", kind, noise)
        else:
            self.swap(actor, direction, router, kind, noise, min_out, deadline)

    def pay(self, actor: str, token: str, kind: str, noise: int, to_payee: bool) -> None:
        t = self.tokens[token]
        amount = self._amount(actor, t, kind, noise)
        to = "payee" if to_payee else "stranger"
        why = self._spend_errors(actor, t, amount)
        if not why and self.bal[("wallet", t)] < amount:
            why |= set(NO_FUNDS)
        receipt, _ = attempt(self.clock, why, self.wallet.pay, t, self.a[to], amount, keccak(text=f"ref{noise}"),
                             sender=self.a[actor])
        if receipt is not None:
            self._record_spend(actor, t, amount, receipt, "Paid")
            self._move(t, "wallet", to, amount)

    def top_up_float(self, actor: str, token: str, kind: str, noise: int) -> None:
        t = self.tokens[token]
        amount = self._amount(actor, t, kind, noise)
        why = self._spend_errors(actor, t, amount)
        if actor in AGENTS and self._read_balance(actor, t) + amount > self.rules[(actor, t)].float_cap:
            why.add("FloatCapExceeded")
        if not why and self.bal[("wallet", t)] < amount:
            why |= set(NO_FUNDS)
        receipt, _ = attempt(self.clock, why, self.wallet.topUpFloat, t, amount, sender=self.a[actor])
        if receipt is not None:
            self._record_spend(actor, t, amount, receipt, "FloatToppedUp")
            self._move(t, "wallet", actor, amount)

    def agent_spends_float(self, agent: str, share: int) -> None:
        """The hot key pays someone from its float (outside the wallet): room for the next top-up."""
        t = self.usdc.address
        amount = self.bal[(agent, t)] // share
        if amount:
            attempt(self.clock, (), self.usdc.transfer, self.a["payee"], amount, sender=self.a[agent])
            self._move(t, agent, "payee", amount)

    def swap(self, actor, direction, router, kind, noise, min_out, deadline) -> None:
        path = [self.usdc.address, self.wcro.address]
        if direction == "WCRO>USDC":
            path.reverse()
        t_in, t_out = path
        amount = self._amount(actor, t_in, kind, noise)
        router_addr = self.vvs.address if router == "vvs" else self.bogus_router
        quote = int(self.vvs.getAmountsOut(amount, path)[-1]) if amount else 0
        minimum = {"zero": 0, "quote": quote, "quote+1": quote + 1}[min_out]
        dl = {"now": self.clock.now, "later": self.clock.now + 600, "past": self.clock.now - 1}[deadline]
        why = self._spend_errors(actor, t_in, amount)
        if not self.routers.get(router_addr, False):
            why.add("RouterNotAllowed")
        if dl < self.clock.now:
            why |= {"DeadlinePassed", ANY}  # the wallet's check, or the router's own
        if minimum > quote:
            why |= {"InsufficientOutput", ANY}
        if quote == 0 and amount:
            why.add(ANY)  # the AMM refuses a swap with no output
        if self.bal[("wallet", t_in)] < amount:
            why |= {ANY}
        receipt, _ = attempt(self.clock, why, self.wallet.swap, router_addr, amount, minimum, path, dl,
                             sender=self.a[actor])
        if receipt is not None:
            self._record_spend(actor, t_in, amount, receipt, "Swapped")
            self._move(t_in, "wallet", "pool", amount)
            self._move(t_out, "pool", "wallet", quote)  # output returns to the wallet, exactly the quote
            (ev,) = events(receipt, "Swapped")
            assert ev["amountOut"] == quote >= minimum and ev["amountIn"] == amount
        # The router's allowance is left at zero, whatever happened.
        assert int(self.usdc.allowance(self.wallet, self.vvs)) == 0
        assert int(self.wcro.allowance(self.wallet, self.vvs)) == 0

    def propose(self, actor: str, token: str, kind: str, noise: int) -> None:
        t = self.tokens[token]
        amount = self._amount(actor, t, kind, noise)
        if kind == "random":
            amount = noise % (50 * self.unit[token])  # requests are for amounts above the limit
        why = self._agent_errors(actor)
        if amount == 0:
            why.add("ZeroAmount")
        if amount > UINT96_MAX:
            why.add("AmountTooLarge")
        receipt, _ = attempt(self.clock, why, self.wallet.propose, t, self.a["payee"], amount, keccak(text="p"),
                             sender=self.a[actor])
        if receipt is not None:
            rid = len(self.requests) + 1
            self.requests[rid] = Request(actor, t, self.a["payee"].address, amount, self.clock.now + self.ttl)
            (ev,) = events(receipt, "RequestProposed")
            assert ev["requestId"] == rid and ev["amount"] == amount and ev["expiresAt"] == self.clock.now + self.ttl

    def _pick_request(self, pick: int) -> int:
        """Mostly a live Pending request, sometimes a lapsed one (Pending, past expiresAt), else any
        id: executed, rejected, cancelled, expired, or one that does not exist."""
        now = self.clock.now
        live = [rid for rid, r in self.requests.items() if r.status == PENDING and now < r.expires_at]
        lapsed = [rid for rid, r in self.requests.items() if r.status == PENDING and now >= r.expires_at]
        mode, index = pick % 6, pick // 6
        if mode in (3, 4) and lapsed:
            return lapsed[index % len(lapsed)]
        if mode in (1, 2, 3, 4) and live:
            return live[index % len(live)]
        return pick % (len(self.requests) + 1) + 1

    # Everything that ends a request, in one rule: approve (full or edited), reject, cancel, expire.
    def decide_request(self, how: str, caller: str, pick: int, edited: str) -> None:
        if how == "approve":
            self.approve(caller, pick, edited)
        elif how == "cancel":  # by its proposer, mostly
            req = self.requests.get(self._pick_request(pick))
            self.cancel(req.agent if req and caller == "owner" else caller, pick)
        else:
            getattr(self, how)(caller, pick)

    def approve(self, caller: str, pick: int, edited: str, rid: int | None = None) -> None:
        rid = self._pick_request(pick) if rid is None else rid
        req = self.requests.get(rid)
        requested = req.amount if req else 1
        amount = {"full": requested, "lower": max(requested // 2, 1), "zero": 0, "above": requested + 1}[edited]
        why: set[str] = set()
        if caller != "owner":
            why.add("NotOwner")
        if req is None:
            why.add("UnknownRequest")
        else:
            if req.status != PENDING:
                why.add("RequestNotPending")
            if self.clock.now >= req.expires_at:
                why.add("RequestHasExpired")
            if self.paused:
                why.add("WalletIsPaused")
            if not self.agents[req.agent]["active"]:
                why.add("NotAgent")
            elif self.agents[req.agent]["paused"]:
                why.add("AgentIsPaused")
        if edited == "above":
            why.add("ApprovedAboveRequested")
        if edited == "zero":
            why.add("ZeroAmount")
        if not why and self.bal[("wallet", req.token)] < amount:
            why |= set(NO_FUNDS)
        if edited == "full":
            receipt, _ = attempt(self.clock, why, self.wallet.approve, rid, sender=self.a[caller])
        else:
            receipt, _ = attempt(self.clock, why, self.wallet.approveAmount, rid, amount, sender=self.a[caller])
        if receipt is not None:
            req.status, req.approved, req.executions = EXECUTED, amount, req.executions + 1
            self._move(req.token, "wallet", "payee", amount)
            (ev,) = events(receipt, "RequestExecuted")
            assert ev["requestId"] == rid and ev["requestedAmount"] == req.amount and ev["approvedAmount"] == amount

    def reject(self, caller: str, pick: int) -> None:
        rid = self._pick_request(pick)
        req = self.requests.get(rid)
        why: Any = set()
        if caller != "owner":
            why.add("NotOwner")
        if req is None:
            why.add("UnknownRequest")
        elif req.status != PENDING:
            why.add("RequestNotPending")
        elif self.clock.now >= req.expires_at:
            why.add("RequestHasExpired")  # after expiry a request can only be expired
        receipt, _ = attempt(self.clock, why, self.wallet.reject, rid, sender=self.a[caller])
        if receipt is not None:
            req.status = REJECTED

    def cancel(self, actor: str, pick: int) -> None:
        rid = self._pick_request(pick)
        req = self.requests.get(rid)
        why: set[str] = set()
        if req is None:
            why.add("UnknownRequest")
        else:
            if actor != req.agent:
                why.add("NotProposer")
            if req.status != PENDING:
                why.add("RequestNotPending")
            elif self.clock.now >= req.expires_at:
                why.add("RequestHasExpired")
        # (a paused or revoked agent may still cancel: cancelling moves no funds)
        receipt, _ = attempt(self.clock, why, self.wallet.cancel, rid, sender=self.a[actor])
        if receipt is not None:
            req.status = CANCELLED

    def expire(self, caller: str, pick: int) -> None:
        rid = self._pick_request(pick)
        req = self.requests.get(rid)
        why: set[str] = set()
        if req is None:
            why.add("UnknownRequest")
        else:
            if req.status != PENDING:
                why.add("RequestNotPending")
            if self.clock.now < req.expires_at:
                why.add("RequestNotExpired")
        receipt, _ = attempt(self.clock, why, self.wallet.expire, rid, sender=self.a[caller])
        if receipt is not None:
            req.status = EXPIRED

    def spend_past_the_limit(self, agent: str, token: str, path: str) -> None:
        """An agent spends until less than a cap is left in its window, then one unit more than
        is left, by `path` (invariant 1: LimitExceeded, not CapExceeded, explains the refusal).
        The model predicts every step, so a paused agent or wallet, a missing rule or a short
        wallet are fine: their own errors are expected instead."""
        t = self.tokens[token]
        r = self.rules[(agent, t)]
        for _ in range(r.limit // r.cap + 1 if r.cap else 0):  # set_rule may make the cap tiny
            if r.limit - r.spent_now(self.clock.now) < r.cap or self._agent_errors(agent):
                break
            spent = r.spent_now(self.clock.now)
            self.pay(agent, token, "available", 0, True)
            if r.spent_now(self.clock.now) == spent:
                break  # refused (e.g. the wallet ran dry): the model said why
        over = r.limit - r.spent_now(self.clock.now) + 1
        if path == "top_up_float" and (token != "USDC" or self._read_balance(agent, t) + over > r.float_cap):
            path = "pay"  # FloatCapExceeded would explain the refusal as well as the limit
        if path == "pay" or (path == "swap" and token == "NATIVE") or (path != "swap" and token == "WCRO"):
            self.pay(agent, token, "remaining+1", 0, True)
        elif path == "top_up_float":
            self.top_up_float(agent, token, "remaining+1", 0)
        elif path == "pay_with_sig":
            self.pay_with_sig(agent, "agent", token, "remaining+1", 0, "later")
        else:
            self.swap(agent, "USDC>WCRO" if token == "USDC" else "WCRO>USDC", "vvs", "remaining+1", 0, "zero", "later")

    def approve_twice(self, agent: str, edited: str, k: int) -> None:
        """The owner approves a live request (made here if there is none), then approves it again
        (invariant 2: it executes once; the second approval is RequestNotPending)."""
        now = self.clock.now
        live = [rid for rid, r in self.requests.items() if r.status == PENDING and now < r.expires_at]
        if not live:
            self.propose(agent, "USDC", "random", 2 * ONE_USDC + k)
            live = [rid for rid, r in self.requests.items() if r.status == PENDING and now < r.expires_at]
            if not live:
                return  # the proposal was refused (agent or wallet paused): nothing to approve
        rid = live[k % len(live)]
        self.approve("owner", 0, edited, rid=rid)
        self.approve("owner", 0, "full", rid=rid)

    def decide_lapsed(self, how: str, k: int, edited: str) -> None:
        """A request past its expiry, decided anyway (invariant 2: never executed after expiry).
        Without a lapsed request one is made: agent A proposes and the clock moves to its
        expiresAt. The decision goes through the common paths with the request's own proposer or
        the owner, so only RequestHasExpired (or a pause) can explain a refusal."""
        now = self.clock.now
        if not any(r.status == PENDING and now >= r.expires_at for r in self.requests.values()):
            if not any(r.status == PENDING for r in self.requests.values()):
                self.propose("agentA", "USDC", "random", 10 * ONE_USDC + k)
            pending = [r.expires_at for r in self.requests.values() if r.status == PENDING]
            if not pending:
                return  # the proposal was refused (agent or wallet paused): nothing to decide
            self.clock.advance(min(pending))
        pick = 3 + 6 * k  # _pick_request: a lapsed request
        if how == "cancel":
            self.cancel(self.requests[self._pick_request(pick)].agent, pick)
        elif how == "approve":
            self.approve("owner", pick, edited)
        else:
            getattr(self, how)("owner", pick)

    def pay_with_sig(self, agent, signer, token, kind, noise, deadline) -> None:
        """Signed intents, relayed by a stranger; a replay of the last one that settled must fail."""
        if signer == "replay":
            if self.last_signed is None:
                return
            msg, sig = self.last_signed["msg"], self.last_signed["sig"]
            agent = self.last_signed["agent"]
        else:
            t = self.tokens[token]
            amount = self._amount(agent, t, kind, noise)
            dl = {"now": self.clock.now, "later": self.clock.now + 600, "past": self.clock.now - 1}[deadline]
            msg = {"agent": self.a[agent].address, "token": t, "to": self.a["payee"].address, "amount": amount,
                   "ref": keccak(text=f"sig{noise}"), "nonce": self.nonces[agent], "deadline": dl}
            key = key_of(1 if agent == "agentA" else 6) if signer == "agent" else key_of(4)
            sig = sign(key, self.domain, "Pay", [("agent", "address"), ("token", "address"), ("to", "address"),
                                                  ("amount", "uint256"), ("ref", "bytes32"), ("nonce", "uint256"),
                                                  ("deadline", "uint256")], msg)
        t, amount = msg["token"], msg["amount"]
        why = self._spend_errors(agent, t, amount)
        if signer in ("stranger", "replay") or msg["nonce"] != self.nonces[agent]:
            why.add("InvalidSignature")
        if self.clock.now > msg["deadline"]:
            why.add("DeadlinePassed")
        if not why and self.bal[("wallet", t)] < amount:
            why |= set(NO_FUNDS)
        receipt, _ = attempt(self.clock, why, self.wallet.payWithSig, msg["agent"], t, msg["to"], amount, msg["ref"],
                             msg["deadline"], sig, sender=self.a["stranger"])
        if receipt is not None:
            self.nonces[agent] += 1
            self._record_spend(agent, t, amount, receipt, "Paid")
            self._move(t, "wallet", "payee", amount)
            self.last_signed = {"msg": msg, "sig": sig, "agent": agent}

    # --- owner controls (and everyone else trying them) ----------------------------------------

    def set_rule(self, caller, agent, token, limit, cap, period, float_cap) -> None:
        t, unit = self.tokens[token], self.unit[token]
        r = self.rules[(agent, t)]
        limit_v = limit * unit
        cap_v = {"limit": limit_v, "half": limit_v // 2, "one": min(unit, limit_v), "zero": 0,
                 "limit+1": limit_v + 1}[cap]
        period_v = (r.period or DAY) if period == "same" else period
        float_v = float_cap * unit
        why: set[str] = set()
        if caller != "owner":
            why.add("NotOwner")
        if cap_v > limit_v:
            why.add("CapAboveLimit")
        if period_v == 0:
            why.add("InvalidPeriod")
        receipt, _ = attempt(self.clock, why, self.wallet.setRule, self.a[agent], t, limit_v, cap_v, period_v, float_v,
                             sender=self.a[caller])
        if receipt is not None:
            if period_v != r.period:
                r.spent, r.epoch = 0, r.epoch + 1
            r.limit, r.cap, r.period, r.float_cap = limit_v, cap_v, period_v, float_v
            key = (agent, t, r.epoch, self.clock.now // period_v)
            self.max_limit_in_window[key] = max(self.max_limit_in_window.get(key, 0), limit_v)

    def set_agent_paused(self, caller: str, agent: str, paused: bool) -> None:
        why = set() if caller == "owner" else {"NotOwner"}
        if not self.agents[agent]["active"]:
            why.add("NotAgent")
        receipt, _ = attempt(self.clock, why, self.wallet.setAgentPaused, self.a[agent], paused, sender=self.a[caller])
        if receipt is not None:
            self.agents[agent]["paused"] = paused

    def revoke_or_add_agent(self, caller: str, agent: str, add: bool) -> None:
        why = set() if caller == "owner" else {"NotOwner"}
        if self.agents[agent]["active"] == add:
            why.add("AlreadyAgent" if add else "NotAgent")
        fn = self.wallet.addAgent if add else self.wallet.revokeAgent
        receipt, _ = attempt(self.clock, why, fn, self.a[agent], sender=self.a[caller])
        if receipt is not None:
            # Either way the agent comes out unpaused (rules and nonce are kept).
            self.agents[agent] = {"active": add, "paused": False}

    def set_wallet_paused(self, caller: str, paused: bool) -> None:
        why = set() if caller == "owner" else {"NotOwner"}
        receipt, _ = attempt(self.clock, why, self.wallet.setPaused, paused, sender=self.a[caller])
        if receipt is not None:
            self.paused = paused

    def set_router(self, caller: str, allowed: bool) -> None:
        why = set() if caller == "owner" else {"NotOwner"}
        receipt, _ = attempt(self.clock, why, self.wallet.setRouter, self.vvs, allowed, sender=self.a[caller])
        if receipt is not None:
            self.routers[self.vvs.address] = allowed

    def set_request_ttl(self, caller: str, ttl: int) -> None:
        why = set() if caller == "owner" else {"NotOwner"}
        receipt, _ = attempt(self.clock, why, self.wallet.setRequestTtl, ttl, sender=self.a[caller])
        if receipt is not None:
            self.ttl = ttl

    # Pausing, revoking and the rest share one rule (so the agents' spending rules are drawn more
    # often); the draws lean towards undoing a pause or a revocation, so examples keep spending.
    def owner_control(self, caller: str, action: str, agent: str, ttl: int) -> None:
        if action in ("pause-agent", "unpause-agent"):
            self.set_agent_paused(caller, agent, action == "pause-agent")
        elif action in ("revoke", "add"):
            self.revoke_or_add_agent(caller, agent, action == "add")
        elif action in ("pause-wallet", "unpause-wallet"):
            self.set_wallet_paused(caller, action == "pause-wallet")
        elif action in ("router-on", "router-off"):
            self.set_router(caller, action == "router-on")
        else:
            self.set_request_ttl(caller, ttl)

    def withdraw(self, caller: str, token: str, share: str, to: str) -> None:
        t = self.tokens[token]
        have = self.bal[("wallet", t)]
        amount = {"all": have, "half": have // 2, "all+1": have + 1, "zero": 0}[share]
        why: set[str] = set()
        if caller != "owner":
            why.add("NotOwner")
        if amount == 0:
            why.add("ZeroAmount")
        elif amount > have:
            why |= set(NO_FUNDS)
        receipt, _ = attempt(self.clock, why, self.wallet.withdraw, t, self.a[to], amount, sender=self.a[caller])
        if receipt is not None:
            self._move(t, "wallet", to, amount)

    def owner_deposits(self, token: str, units: int) -> None:
        t, amount = self.tokens[token], units * self.unit[token]
        if token == "NATIVE":
            receipt, _ = attempt(self.clock, (), self.a["owner"].transfer, self.wallet, amount)
            assert events(receipt, "Deposited") == [{"from": self.a["owner"].address, "amount": amount}]
        else:
            attempt(self.clock, (), self.usdc.transfer, self.wallet, amount, sender=self.a["owner"])
        self._move(t, "owner", "wallet", amount)

    # --- what happens next ----------------------------------------------------------------------

    # One rule draws each step's action by weight, then the action's arguments. (With one rule per
    # action, hypothesis' swarm testing switches random subsets of rules off per example and its
    # rule ordering favours the simplest ones: spending and approvals were drawn a few times per run,
    # owner housekeeping hundreds of times.)
    ACTIONS = {
        "agent_spends": (7, dict(
            path=st.sampled_from(["pay", "pay", "pay", "pay_with_sig", "pay_with_sig", "top_up_float", "swap", "swap",
                                  "swap"]),
            actor=ACTORS,
            token=TOKENS,
            kind=AMOUNT_KINDS,
            noise=NOISE,
            to_payee=st.booleans(),
            direction=st.sampled_from(["USDC>WCRO", "USDC>WCRO", "USDC>WCRO", "WCRO>USDC"]),
            router=st.sampled_from(["vvs", "vvs", "vvs", "vvs", "vvs", "bogus"]),
            min_out=st.sampled_from(["zero", "quote", "quote", "quote", "quote+1"]),
            deadline=st.sampled_from(["now", "later", "later", "later", "past"]),
            signer=st.sampled_from(["agent", "agent", "agent", "agent", "stranger", "replay"]),
        )),
        "advance_time": (3, dict(
            kind=st.sampled_from(["edge-1", "edge", "edge+1", "k*period-1", "k*period", "half", "second", "expiry-1",
                                  "expiry", "expiry-1", "expiry", "random"]),
            which=st.sampled_from(sorted({(n, t) for n in AGENTS for t in ("USDC", "WCRO", "NATIVE")})),
            k=st.integers(1, 2),
            noise=NOISE,
        )),
        "decide_request": (3, dict(
            how=st.sampled_from(["approve", "approve", "approve", "reject", "cancel", "expire"]),
            caller=st.sampled_from(["owner", "owner", "owner", "agentA", "agentB", "stranger"]),
            pick=st.integers(0, 60),
            edited=st.sampled_from(["full", "full", "lower", "zero", "above"]),
        )),
        "propose": (2, dict(actor=ACTORS, token=TOKENS, kind=AMOUNT_KINDS, noise=NOISE)),
        "spend_past_the_limit": (1, dict(
            agent=st.sampled_from(AGENTS),
            token=st.sampled_from(["USDC", "USDC", "NATIVE", "WCRO"]),
            path=st.sampled_from(["pay", "pay", "top_up_float", "pay_with_sig", "swap"]),
        )),
        "approve_twice": (1, dict(
            agent=st.sampled_from(AGENTS),
            edited=st.sampled_from(["full", "lower"]),
            k=st.integers(0, 9),
        )),
        "decide_lapsed": (1, dict(
            how=st.sampled_from(["approve", "approve", "approve", "reject", "cancel", "expire"]),
            k=st.integers(0, 9),
            edited=st.sampled_from(["full", "lower"]),
        )),
        "set_rule": (2, dict(
            caller=CALLERS,
            agent=st.sampled_from(AGENTS),
            token=TOKENS,
            limit=st.sampled_from([0, 1, 2, 3, 5, 10]),
            cap=st.sampled_from(["limit", "half", "one", "zero", "limit+1"]),
            period=st.sampled_from(["same", "same", 60, 3600, DAY, 0]),
            float_cap=st.sampled_from([0, 1, 3]),
        )),
        "owner_control": (2, dict(
            caller=CALLERS,
            action=st.sampled_from(["pause-agent", "unpause-agent", "unpause-agent", "revoke", "add", "add",
                                    "pause-wallet", "unpause-wallet", "unpause-wallet", "router-off", "router-on",
                                    "router-on", "ttl"]),
            agent=st.sampled_from(AGENTS),
            ttl=st.sampled_from([60, 3600, DAY]),
        )),
        "agent_spends_float": (1, dict(agent=st.sampled_from(AGENTS), share=st.sampled_from([1, 2, 4]))),
        "withdraw": (1, dict(
            caller=CALLERS,
            token=TOKENS,
            share=st.sampled_from(["all", "half", "all+1", "zero"]),
            to=st.sampled_from(["owner", "payee"]),
        )),
        "owner_deposits": (1, dict(token=st.sampled_from(["USDC", "NATIVE"]), units=st.sampled_from([1, 5]))),
    }

    @rule(action=st.sampled_from([name for name, (weight, _) in ACTIONS.items() for _ in range(weight)]),
          data=st.data())
    def step(self, action: str, data: Any) -> None:
        """Draws the next action by weight, then its arguments (each labelled in a failure report)."""
        _, strategies = self.ACTIONS[action]
        getattr(self, action)(**{name: data.draw(strategy, label=name) for name, strategy in strategies.items()})


    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def clock_is_the_chains(self) -> None:
        assert chain.blocks.head.timestamp == self.clock.now

    def _balance_view(self, v: Views, h: str, t: str, expected: int) -> None:
        who = self._holder(h)
        if t == NATIVE:
            v.expect(f"CRO balance of {h}", self.mc.getEthBalance, who, equals=expected, convert=int)
        else:
            token = self.usdc if t == self.usdc.address else self.wcro
            v.expect(f"{self._token_name(t)} balance of {h}", token.balanceOf, who, equals=expected, convert=int)

    @invariant()
    def balances_move_only_by_allowed_paths(self) -> None:
        """Invariant 5: every balance the model follows equals the chain's."""
        v = Views()
        for (h, t), expected in self.bal.items():
            self._balance_view(v, h, t, expected)
        v.verify()

    @invariant()
    def windows_and_rules_match(self) -> None:
        """Invariant 1 as the views report it: rule, spend in the current window, what is available."""
        now, v = self.clock.now, Views()
        for (agent, t), r in self.rules.items():
            who, label = self.a[agent], f"{agent}/{self._token_name(t)}"
            v.expect(f"rule {label}", self.wallet.rule, who, t, equals=(r.limit, r.cap, r.period, r.float_cap),
                     convert=ints)
            spent = r.spent_now(now)
            v.expect(f"available {label}", self.wallet.available, who, t,
                     equals=min(max(r.limit - spent, 0), r.cap) if r.period else 0, convert=int)
            if r.period:
                w = now // r.period
                v.expect(f"spentInWindow {label}", self.wallet.spentInWindow, who, t,
                         equals=(spent, w, (w + 1) * r.period), convert=ints)
        v.verify()

    @invariant()
    def controls_match(self) -> None:
        """Invariants 3/4: pause, agents, routers and nonces are what the owner (only) set."""
        v = Views()
        v.expect("wallet paused", self.wallet.paused, equals=self.paused, convert=bool)
        for n in AGENTS:
            info = self.agents[n]
            v.expect(f"agentInfo {n}", self.wallet.agentInfo, self.a[n], equals=(info["active"], info["paused"]),
                     convert=lambda x: (bool(x[0]), bool(x[1])))
            v.expect(f"nonces {n}", self.wallet.nonces, self.a[n], equals=self.nonces[n], convert=int)
        v.expect("vvs allowlisted", self.wallet.isRouterAllowed, self.vvs, equals=self.routers[self.vvs.address])
        v.expect("bogus router allowlisted", self.wallet.isRouterAllowed, self.bogus_router, equals=False)
        v.expect("owner", self.wallet.owner, equals=self.a["owner"].address)
        v.expect("requestTtl", self.wallet.requestTtl, equals=self.ttl, convert=int)
        v.verify()

    @invariant()
    def requests_match(self) -> None:
        """Invariant 2: each request's status and executed amount; at most one execution each."""
        v = Views()
        v.expect("requestCount", self.wallet.requestCount, equals=len(self.requests), convert=int)
        for rid, req in self.requests.items():
            assert req.executions <= 1, f"request {rid} executed {req.executions} times"
            approved = req.approved if req.status == EXECUTED else 0
            v.expect(f"request {rid}", self.wallet.request, rid,
                     equals=(self.a[req.agent].address, req.token, req.to, req.amount, approved, req.expires_at,
                             req.status),
                     convert=lambda x: (x.agent, x.token, x.to, int(x.amount), int(x.approvedAmount),
                                        int(x.expiresAt), int(x.status)))
        v.verify()


# ------------------------------------------------------------------------------------------------
# ServiceRegistry + PaymentRouter: invariants 6-10


@dataclass
class Service:
    provider: str
    name: str
    endpoint: str
    model: int
    token: str
    price: int
    period: int
    pay_to: str
    metadata: str
    active: bool = True

    def provider_name(self, accounts: dict[str, Any]) -> str:
        return next(n for n, acc in accounts.items() if acc.address == self.provider)

    def fields(self) -> tuple:
        return (self.provider, self.name, self.endpoint, self.model, self.token, self.price, self.period,
                self.pay_to, self.metadata, self.active)


def service_fields(v: Any) -> tuple:
    """A registry Service struct as the model's field tuple."""
    return (v.provider, v.name, v.endpoint, int(v.model), v.token, int(v.price), int(v.period), v.payTo,
            v.metadataURI, bool(v.active))


@pytest.fixture(scope="module")
def router_world(stack, accounts):
    """Payer funded and approved; fees go to a dedicated recipient."""
    owner = accounts[0]
    acc = {"owner": owner, "provider": accounts[2], "provider2": accounts[8], "payer": accounts[3],
           "stranger": accounts[4], "fee": accounts[5], "payee2": accounts[9]}
    stack.router.setFeeRecipient(acc["fee"], sender=owner)
    stack.usdc.mint(acc["payer"], 1_000 * ONE_USDC, sender=owner)
    stack.usdc.approve(stack.router, 2**256 - 1, sender=acc["payer"])
    return World(stack, acc)


def test_registry_and_router_invariants(router_world):
    """Invariants 6-10: conservation and the fee cap, EIP-3009 nonces settle once, only active
    services are paid at their registered terms, ids are unique and provider-owned, and events alone
    rebuild the registry and the router's totals."""
    run_machine(RegistryRouterMachine, router_world)


class RegistryRouterMachine(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        chain.restore(world.snapshot)
        world.snapshot = chain.snapshot()
        s, a = world.stack, world.accounts
        self.s, self.a = s, a
        self.registry, self.router, self.usdc = s.registry, s.router, s.usdc
        self.clock = Clock()
        self.max_fee = int(self.router.MAX_FEE_BPS())
        self.fee_bps = int(self.router.feeBps())
        self.fee_to = self.router.feeRecipient()
        assert self.fee_to == a["fee"].address
        self.services: dict[int, Service] = {}
        for sid in range(1, int(self.registry.serviceCount()) + 1):
            self.services[sid] = self._read_service(sid)
        self.stats = {sid: tuple(int(x) for x in self.router.serviceStats(sid)) for sid in self.services}
        self.payments = int(self.router.paymentCount())
        self.subscriptions: dict[tuple[int, str], int] = {}
        self.used_nonces: set[bytes] = set()
        self.settled: list[dict] = []  # authorizations that settled, for replays
        self.nonce_counter = itertools.count()
        self.watch = {addr(a[n]) for n in ("provider", "provider2", "payer", "stranger", "fee", "payee2")}
        self.watch.add(self.router.address)
        self.bal = {h: int(self.usdc.balanceOf(h)) for h in self.watch}
        self.domain = {"name": self.usdc.name(), "version": self.usdc.version(), "chainId": chain.chain_id,
                       "verifyingContract": self.usdc.address}

    def _read_service(self, sid: int) -> Service:
        return Service(*service_fields(self.registry.getService(sid)))

    def _move(self, frm: str, to: str, amount: int) -> None:
        if frm in self.bal:
            self.bal[frm] -= amount
        if to in self.bal:
            self.bal[to] += amount

    def _pick(self, pick: int) -> int:
        return pick % (len(self.services) + 1) + 1  # one unknown id now and then

    def _pick_model(self, pick: int, model: int) -> int:
        """Two times in three a service of `model` (if there is one), else any id as `_pick` draws it."""
        ids = [sid for sid, svc in self.services.items() if svc.model == model]
        return ids[(pick // 3) % len(ids)] if ids and pick % 3 else self._pick(pick)

    # --- where an example starts ----------------------------------------------------------------

    @initialize(inactive=st.sampled_from([0, 0, 1, 2, 3, 4]), fee=st.sampled_from(["keep", "keep", "zero", "max"]),
                settled=st.booleans())
    def starting_point(self, inactive: int, fee: str, settled: bool) -> None:
        """Besides the two per-call demo services: a metered and a subscription service (other
        providers, other payTo), one service possibly deactivated, the fee possibly 0 or at its cap."""
        self.register("provider2", "metered", "cents", "none", "payee2", "oracle")
        self.register("provider", "subscription", "dollars", "day", "provider2", "weather")
        if inactive:
            self.set_active(self.services[inactive].provider_name(self.a), inactive - 1, False)
        if fee != "keep":
            self.set_fee("owner", fee)
        if settled:  # an x402 payment already settled: replays are possible from the first step
            self.settle_authorization(0, "price", "valid", "payer", False, "own")

    # --- registry ------------------------------------------------------------------------------

    def _terms(self, model, price, period, pay_to, name):
        m = {"per-call": PER_CALL, "metered": METERED, "subscription": SUBSCRIPTION}[model]
        p = {"zero": 0, "one": 1, "cents": 10_000, "dollars": 3 * ONE_USDC, "max": UINT96_MAX}[price]
        per = {"none": 0, "minute": 60, "day": DAY}[period]
        to = ZERO if pay_to == "zero" else addr(self.a[pay_to])
        why: set[str] = set()
        if not name:
            why.add("EmptyName")
        if to == ZERO:
            why.add("InvalidPayTo")
        if p == 0:
            why.add("InvalidPrice")
        if (m == SUBSCRIPTION) != (per > 0):
            why.add("InvalidPeriod")
        return m, p, per, to, why

    TERMS = dict(
        model=st.sampled_from(["per-call", "per-call", "metered", "subscription"]),
        price=st.sampled_from(["one", "cents", "cents", "dollars", "zero", "max"]),
        period=st.sampled_from(["none", "none", "minute", "day"]),
        pay_to=st.sampled_from(["provider", "provider2", "payee2", "zero"]),
        name=st.sampled_from(["oracle", "oracle", "weather", ""]),
    )

    def register(self, caller, model, price, period, pay_to, name) -> None:
        m, p, per, to, why = self._terms(model, price, period, pay_to, name)
        sid = len(self.services) + 1
        endpoint, meta = f"http://svc/{sid}", f"ipfs://{sid}"
        receipt, _ = attempt(self.clock, why, self.registry.register, name, endpoint, m, self.usdc, p, per, to, meta,
                             sender=self.a[caller])
        if receipt is not None:
            self.services[sid] = Service(addr(self.a[caller]), name, endpoint, m, self.usdc.address, p, per, to, meta)
            self.stats[sid] = (0, 0, 0)
            (ev,) = events(receipt, "ServiceRegistered")
            assert ev["serviceId"] == sid, "service ids are 1, 2, 3, ... and never reused"

    def update(self, caller, pick, model, price, period, pay_to, name) -> None:
        sid = self._pick(pick)
        svc = self.services.get(sid)
        m, p, per, to, why = self._terms(model, price, period, pay_to, name)
        if svc is None:
            why.add("UnknownService")
        elif svc.provider != addr(self.a[caller]):
            why.add("NotProvider")
        endpoint, meta = f"http://svc/{sid}/v2", f"ipfs://{sid}/v2"
        receipt, _ = attempt(self.clock, why, self.registry.update, sid, name, endpoint, m, self.usdc, p, per, to, meta,
                             sender=self.a[caller])
        if receipt is not None:
            svc.name, svc.endpoint, svc.model, svc.price, svc.period, svc.pay_to, svc.metadata = (
                name, endpoint, m, p, per, to, meta)

    def set_active(self, caller: str, pick: int, active: bool) -> None:
        sid = self._pick(pick)
        svc = self.services.get(sid)
        why: set[str] = set()
        if svc is None:
            why.add("UnknownService")
        else:
            if svc.provider != addr(self.a[caller]):
                why.add("NotProvider")
            if svc.active == active:
                why.add("AlreadyActive" if active else "AlreadyInactive")
        fn = self.registry.reactivate if active else self.registry.deactivate
        receipt, _ = attempt(self.clock, why, fn, sid, sender=self.a[caller])
        if receipt is not None:
            svc.active = active

    # --- router --------------------------------------------------------------------------------

    def _service_errors(self, sid: int) -> set[str]:
        svc = self.services.get(sid)
        if svc is None:
            return {"UnknownService"}
        return set() if svc.active else {"ServiceInactive"}

    def _paid(self, receipt: Any, sid: int, payer: str, amount: int, units: int, kind: int, ref: bytes) -> None:
        """Invariants 6 and 8 for one payment: one event with everything, exact split, fee under the cap."""
        svc = self.services[sid]
        fee = amount * self.fee_bps // 10_000
        assert fee <= amount * self.max_fee // 10_000
        self.payments += 1
        (ev,) = events(receipt, "PaymentMade")
        assert ev == {"paymentId": self.payments, "serviceId": sid, "payer": payer, "token": svc.token,
                      "payTo": svc.pay_to, "amount": amount, "fee": fee, "units": units, "ref": ref, "kind": kind}, ev
        assert ev["amount"] == (ev["amount"] - ev["fee"]) + ev["fee"] and ev["fee"] <= amount
        self._move(payer, svc.pay_to, amount - fee)
        self._move(payer, self.fee_to, fee)
        volume, count, _ = self.stats[sid]
        self.stats[sid] = (volume + amount, count + 1, self.clock.now)

    def _funds_errors(self, payer: str, amount: int, allowance: bool = True) -> set[str]:
        why: set[str] = set()
        if amount > self.bal[payer]:
            why.add("ERC20: transfer amount exceeds balance")
        if allowance and payer != addr(self.a["payer"]):
            why.add("ERC20: transfer amount exceeds allowance")  # only the payer approved the router
        if why:
            why.add("TransferFailed")
        return why

    # The three ways to pay a service, in one rule (see WalletMachine.agent_spends).
    def buy(self, path, who, pick, units, ref, value, timing, signer, replay, bound, terms) -> None:
        if path == "pay":
            self.pay(who, pick, units, ref, terms)
        elif path == "subscribe":
            self.subscribe(pick, units, terms)
        else:
            self.settle_authorization(pick, value, timing, signer, replay, bound)

    def _payer_terms(self, svc: Service | None, amount: int, terms: str) -> tuple[str, int, int, set[str]]:
        """(token, maxAmount, period) a direct payer names for `svc`, and what the router must refuse
        about them once the service, model and units passed: the payer's terms guard it against a
        provider who changed the entry (invariant 8: never more than the payer agreed to)."""
        token, period = (svc.token, svc.period) if svc is not None else (addr(self.usdc), 0)
        max_amount, why = 2**256 - 1, set()
        if terms == "exact":
            max_amount = amount
        elif terms == "max-1":
            max_amount, why = amount - 1 if amount else 0, {"AmountAboveMax"} if amount else set()
        elif terms == "other-token":
            token, why = addr(self.a["stranger"]), {"WrongToken"}
        elif terms == "other-period":
            period = period + 1
            if svc is not None and svc.model == SUBSCRIPTION:
                why = {"WrongPeriod"}
        return token, max_amount, period, why

    def pay(self, who: str, pick: int, units: int, ref: bytes, terms: str = "exact") -> None:
        sid = self._pick(pick)
        svc = self.services.get(sid)
        why = self._service_errors(sid)
        payer = addr(self.a[who])
        amount = 0
        if svc is not None:
            if svc.model == SUBSCRIPTION:
                why.add("WrongPricingModel")
            elif (svc.model == PER_CALL and units != 1) or units == 0:
                why.add("InvalidUnits")
            amount = svc.price * units
        token, max_amount, _period, refused = self._payer_terms(svc, amount, terms)
        if svc is not None and not why:
            why |= refused
            if not why:
                why |= self._funds_errors(payer, amount)
        receipt, _ = attempt(self.clock, why, self.router.pay, sid, units, token, max_amount, ref,
                             sender=self.a[who])
        if receipt is not None:
            self._paid(receipt, sid, payer, amount, units, 0, ref)

    def subscribe(self, pick: int, periods: int, terms: str = "exact") -> None:
        sid = self._pick_model(pick, SUBSCRIPTION)
        svc = self.services.get(sid)
        why = self._service_errors(sid)
        payer = addr(self.a["payer"])
        amount = svc.price * periods if svc is not None else 0
        token, max_amount, period, refused = self._payer_terms(svc, amount, terms)
        if svc is not None:
            if svc.model != SUBSCRIPTION:
                why.add("WrongPricingModel")
            if periods == 0:
                why.add("InvalidUnits")
            if not why:
                why |= refused
            if not why:
                why |= self._funds_errors(payer, amount)
        ref = keccak(text=f"sub{sid}")
        receipt, _ = attempt(self.clock, why, self.router.subscribe, sid, periods, token, max_amount, period, ref,
                             sender=self.a["payer"])
        if receipt is not None:
            self._paid(receipt, sid, payer, svc.price * periods, periods, 2, ref)
            self._extend(receipt, sid, payer, svc.period * periods)

    def _extend(self, receipt: Any, sid: int, subscriber: str, seconds: int) -> None:
        expires = max(self.clock.now, self.subscriptions.get((sid, subscriber), 0)) + seconds
        self.subscriptions[(sid, subscriber)] = expires
        (ev,) = events(receipt, "SubscriptionExtended")
        assert ev == {"serviceId": sid, "subscriber": subscriber, "expiresAt": expires, "paymentId": self.payments}

    def _authorization(self, primary: str, frm: str, to: str, value: int, after: int, before: int, nonce: bytes,
                       key: Any) -> bytes:
        fields = [("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"),
                  ("validBefore", "uint256"), ("nonce", "bytes32")]
        msg = {"from": frm, "to": to, "value": value, "validAfter": after, "validBefore": before, "nonce": nonce}
        return sign(key, self.domain, primary, fields, msg)

    def settle_authorization(self, pick, value, timing, signer, replay, bound="own") -> None:
        """x402: an EIP-3009 authorization to the router, relayed by anyone; replays must fail."""
        payer = addr(self.a["payer"])
        if replay:
            if not self.settled:
                return
            auth = self.settled[pick % len(self.settled)]
        else:
            sid = self._pick(pick)
            price = self.services[sid].price if sid in self.services else 10_000
            v = {"price": price, "2*price": 2 * price, "price+1": price + 1, "zero": 0}[value]
            after, before = {"valid": (self.clock.now - 1, self.clock.now + 60),
                             "not-yet": (self.clock.now, self.clock.now + 60),
                             "expired": (self.clock.now - 60, self.clock.now)}[timing]
            # The nonce names the service it pays (top 64 bits); "other": signed for another service.
            nonce = bound_nonce(sid if bound == "own" else sid % (len(self.services) + 1) + 1,
                                f"auth{next(self.nonce_counter)}")
            key = key_of(3) if signer == "payer" else key_of(4)
            sig = self._authorization("ReceiveWithAuthorization", payer, self.router.address, v, after, before, nonce,
                                      key)
            auth = {"sid": sid, "value": v, "after": after, "before": before, "nonce": nonce, "sig": sig,
                    "bad_signer": signer != "payer"}
        sid, v = auth["sid"], auth["value"]
        svc = self.services.get(sid)
        why = self._service_errors(sid)
        if int.from_bytes(auth["nonce"], "big") >> 192 != sid:
            why.add("NonceNotBoundToService")
        units = 0
        if svc is not None:
            if svc.model == PER_CALL:
                units = 1
                if v != svc.price:
                    why.add("AmountMismatch")
            else:
                units = v // svc.price
                if v == 0 or v % svc.price:
                    why.add("AmountMismatch")
        if not why:  # the token's own checks, in FiatToken's order
            if not self.clock.now > auth["after"]:
                why.add(NOT_YET_AUTH)
            if not self.clock.now < auth["before"]:
                why.add(EXPIRED_AUTH)
            if auth["nonce"] in self.used_nonces:
                why.add(USED)
            if auth["bad_signer"]:
                why.add(BAD_SIG)
            if v > self.bal[payer]:
                why |= set(NO_FUNDS)
        ref = keccak(text="x402")
        r, s_, vv = auth["sig"][:32], auth["sig"][32:64], auth["sig"][64]
        receipt, _ = attempt(self.clock, why, self.router.settleAuthorization, sid, payer, v, auth["after"],
                             auth["before"], auth["nonce"], vv, r, s_, ref, sender=self.a["stranger"])
        if receipt is not None:
            assert auth["nonce"] not in self.used_nonces, "an EIP-3009 nonce settled twice"
            self.used_nonces.add(auth["nonce"])
            self.settled.append(auth)
            self._paid(receipt, sid, payer, v, units, 1, ref)
            if svc.model == SUBSCRIPTION:
                self._extend(receipt, sid, payer, svc.period * units)

    def transfer_with_authorization(self, pick: int, mode: str) -> None:
        """Invariant 7 at the token: a (signer, nonce) is spent once, whichever function spends it."""
        payer, to = addr(self.a["payer"]), addr(self.a["payee2"])
        if mode == "replay-settled" and self.settled:
            nonce = self.settled[pick % len(self.settled)]["nonce"]
        elif mode == "replay" and self.used_nonces:
            nonce = sorted(self.used_nonces)[pick % len(self.used_nonces)]
        else:
            nonce = keccak(text=f"twa{next(self.nonce_counter)}")
        after, before = self.clock.now - 1, self.clock.now + 60
        sig = self._authorization("TransferWithAuthorization", payer, to, 1, after, before, nonce, key_of(3))
        why = {USED} if nonce in self.used_nonces else set()
        receipt, _ = attempt(self.clock, why, self.usdc.transferWithAuthorization, payer, to, 1, after, before, nonce,
                             sig[64], sig[:32], sig[32:64], sender=self.a["stranger"])
        if receipt is not None:
            self.used_nonces.add(nonce)
            self._move(payer, to, 1)

    def cancel_authorization(self, which: str, pick: int) -> None:
        """A cancelled nonce can never settle (the next settle_authorization replay covers it)."""
        payer = addr(self.a["payer"])
        if which == "used" and self.used_nonces:
            nonce = sorted(self.used_nonces)[pick % len(self.used_nonces)]
        else:
            nonce = bound_nonce(1, f"cancel{next(self.nonce_counter)}")  # so a settle for service 1 would use it
        fields = [("authorizer", "address"), ("nonce", "bytes32")]
        sig = sign(key_of(3), self.domain, "CancelAuthorization", fields, {"authorizer": payer, "nonce": nonce})
        why = {USED} if nonce in self.used_nonces else set()
        receipt, _ = attempt(self.clock, why, self.usdc.cancelAuthorization, payer, nonce, sig[64], sig[:32],
                             sig[32:64],
                             sender=self.a["stranger"])
        if receipt is not None:
            self.used_nonces.add(nonce)
            # A settle with this nonce must now fail: queue it as a "settled" auth for the replay rule.
            sid = int.from_bytes(nonce, "big") >> 192 or 1
            price = self.services[sid].price if sid in self.services else 1
            before = self.clock.now + 600
            s = self._authorization("ReceiveWithAuthorization", payer, self.router.address, price, 0, before, nonce,
                                    key_of(3))
            self.settled.append({"sid": sid, "value": price, "after": 0, "before": before, "nonce": nonce, "sig": s,
                                 "bad_signer": False})

    def token_authorization(self, kind: str, mode: str, pick: int) -> None:
        """EIP-3009 straight at the token: transferWithAuthorization and cancelAuthorization."""
        if kind == "transfer":
            self.transfer_with_authorization(pick, "replay" if mode == "used" else mode)
        else:
            self.cancel_authorization("fresh" if mode == "fresh" else "used", pick)

    def set_fee(self, caller: str, bps: str) -> None:
        value = {"zero": 0, "max": self.max_fee, "max+1": self.max_fee + 1, "mid": self.max_fee // 2}[bps]
        why: set[str] = set()
        if caller != "owner":
            why.add("NotOwner")
        if value > self.max_fee:
            why.add("FeeTooHigh")
        receipt, _ = attempt(self.clock, why, self.router.setFee, value, sender=self.a[caller])
        if receipt is not None:
            assert events(receipt, "FeeChanged") == [{"oldFeeBps": self.fee_bps, "newFeeBps": value}]
            self.fee_bps = value

    def advance_time(self, seconds: int) -> None:
        self.clock.advance(self.clock.now + seconds)

    # --- what happens next ----------------------------------------------------------------------

    # One rule draws each step's action by weight, then the action's arguments. (With one rule per
    # action, hypothesis' swarm testing switches random subsets of rules off per example and its
    # rule ordering favours the simplest ones: spending and approvals were drawn a few times per run,
    # owner housekeeping hundreds of times.)
    ACTIONS = {
        "buy": (6, dict(
            path=st.sampled_from(["pay", "pay", "subscribe", "settle", "settle"]),
            who=st.sampled_from(["payer", "payer", "payer", "stranger"]),
            pick=st.integers(0, 20),
            units=st.sampled_from([1, 1, 2, 0, 3]),
            ref=st.binary(min_size=32, max_size=32),
            value=st.sampled_from(["price", "price", "2*price", "price+1", "zero"]),
            timing=st.sampled_from(["valid", "valid", "valid", "not-yet", "expired"]),
            signer=st.sampled_from(["payer", "payer", "payer", "stranger"]),
            replay=st.sampled_from([False, False, True]),
            bound=st.sampled_from(["own", "own", "own", "other"]),
            terms=st.sampled_from(["exact", "exact", "unbounded", "max-1", "other-token", "other-period"]),
        )),
        "register": (2, dict(caller=st.sampled_from(["provider", "provider2", "stranger"]), **TERMS)),
        "update": (2, dict(
            caller=st.sampled_from(["provider", "provider", "provider2", "stranger"]),
            pick=st.integers(0, 20),
            **TERMS,
        )),
        "set_active": (2, dict(
            caller=st.sampled_from(["provider", "provider", "provider2", "stranger"]),
            pick=st.integers(0, 20),
            active=st.booleans(),
        )),
        "token_authorization": (2, dict(
            kind=st.sampled_from(["transfer", "transfer", "cancel"]),
            mode=st.sampled_from(["fresh", "replay", "replay-settled", "used"]),
            pick=st.integers(0, 20),
        )),
        "advance_time": (2, dict(seconds=st.sampled_from([1, 59, 60, 61, 3600, DAY]))),
        "set_fee": (1, dict(
            caller=st.sampled_from(["owner", "owner", "stranger"]),
            bps=st.sampled_from(["zero", "max", "max+1", "mid"]),
        )),
    }

    @rule(action=st.sampled_from([name for name, (weight, _) in ACTIONS.items() for _ in range(weight)]),
          data=st.data())
    def step(self, action: str, data: Any) -> None:
        """Draws the next action by weight, then its arguments (each labelled in a failure report)."""
        _, strategies = self.ACTIONS[action]
        getattr(self, action)(**{name: data.draw(strategy, label=name) for name, strategy in strategies.items()})


    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def registry_matches(self) -> None:
        """Invariant 9 (and 8's inputs): ids 1..n, each with the fields and provider the model holds."""
        v = Views()
        v.expect("serviceCount", self.registry.serviceCount, equals=len(self.services), convert=int)
        for sid, svc in self.services.items():
            v.expect(f"getService {sid}", self.registry.getService, sid, equals=svc.fields(), convert=service_fields)
            v.expect(f"paymentTerms {sid}", self.registry.paymentTerms, sid,
                     equals=(svc.active, svc.model, svc.token, svc.price, svc.period, svc.pay_to),
                     convert=lambda x: (bool(x[0]), int(x[1]), x[2], int(x[3]), int(x[4]), x[5]))
        v.verify()

    @invariant()
    def router_totals_and_balances_match(self) -> None:
        """Invariants 6-8: balances moved exactly by the payments; the router keeps nothing."""
        assert self.bal[self.router.address] == 0
        v = Views()
        v.expect("paymentCount", self.router.paymentCount, equals=self.payments, convert=int)
        v.expect("feeBps", self.router.feeBps, equals=self.fee_bps, convert=int)
        assert self.fee_bps <= self.max_fee
        for sid, stats in self.stats.items():
            v.expect(f"serviceStats {sid}", self.router.serviceStats, sid, equals=stats, convert=ints)
        for holder, expected in self.bal.items():
            v.expect(f"USDC.e balance of {holder}", self.usdc.balanceOf, holder, equals=expected, convert=int)
        for (sid, who), expires in self.subscriptions.items():
            v.expect(f"subscriptionExpiry {sid} {who}", self.router.subscriptionExpiry, sid, who, equals=expires,
                     convert=int)
        v.verify()

    @invariant()
    def used_nonces_stay_used(self) -> None:
        """Invariant 7: every nonce that settled or was cancelled stays used."""
        payer, v = addr(self.a["payer"]), Views()
        for nonce in self.used_nonces:
            v.expect(f"authorizationState {nonce.hex()}", self.usdc.authorizationState, payer, nonce, equals=True)
        v.verify()

    def teardown(self) -> None:
        """Invariant 10: replaying registry and router events from the deployment block rebuilds
        every service, the per-service totals, subscriptions and the payment count."""
        start = self.s.manifest.deployment_block
        head = chain.blocks.head.number
        logs = []
        for name in ("ServiceRegistered", "ServiceUpdated", "ServiceDeactivated", "ServiceReactivated"):
            logs += list(getattr(self.registry, name).range(start, head + 1))
        for name in ("PaymentMade", "SubscriptionExtended"):
            logs += list(getattr(self.router, name).range(start, head + 1))
        logs.sort(key=lambda log: (log.block_number, log.log_index))
        services: dict[int, tuple] = {}
        stats: dict[int, tuple] = {}
        subs: dict[tuple, int] = {}
        payment_ids: list[int] = []
        for log in logs:
            e = log.event_arguments
            if log.event_name.startswith("Service"):
                if log.event_name == "ServiceRegistered":
                    assert e["serviceId"] not in services, "a service id registered twice"
                else:
                    assert e["serviceId"] in services
                    assert services[e["serviceId"]][0] == e["provider"], "only the provider edits a service"
                services[e["serviceId"]] = (e["provider"], e["name"], e["endpoint"], int(e["model"]), e["token"],
                                            int(e["price"]), int(e["period"]), e["payTo"], e["metadataURI"],
                                            bool(e["active"]))
            elif log.event_name == "PaymentMade":
                payment_ids.append(e["paymentId"])
                volume, count, _ = stats.get(e["serviceId"], (0, 0, 0))
                stats[e["serviceId"]] = (volume + e["amount"], count + 1, chain.blocks[log.block_number].timestamp)
            else:
                subs[(e["serviceId"], e["subscriber"])] = e["expiresAt"]
        assert payment_ids == list(range(1, len(payment_ids) + 1)), "payment ids are 1, 2, 3, ..."
        assert len(payment_ids) == int(self.router.paymentCount())
        assert sorted(services) == list(range(1, int(self.registry.serviceCount()) + 1))
        for sid, fields in services.items():
            onchain = self._read_service(sid).fields()
            assert onchain == fields, f"service {sid}: events rebuild {fields}, the registry holds {onchain}"
            onchain_stats = ints(self.router.serviceStats(sid))
            assert onchain_stats == stats.get(sid, (0, 0, 0)), (
                f"service {sid}: events rebuild stats {stats.get(sid, (0, 0, 0))}, the router holds {onchain_stats}")
        for (sid, who), expires in subs.items():
            assert int(self.router.subscriptionExpiry(sid, who)) == expires
