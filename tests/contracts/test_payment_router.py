"""PaymentRouter: pays only active services at their registered terms, splits every amount exactly
into payout + fee under the immutable cap, settles an EIP-3009 authorization at most once, and its
events rebuild its state.

Invariants 6-8 and 10 of DESIGN.md, rule by rule, against the local USDC.e stand-in; the stateful
twin is RegistryRouterMachine in test_properties.py. EIP-3009 signatures are made here with
eth_account from ape's test mnemonic, independently of the project's own signer.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest
from custom_errors import fails, view_fails
from ape import chain
from ape.exceptions import ContractLogicError
from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from hypothesis import given
from hypothesis import strategies as st
from paygent.eip3009 import nonce_service, service_nonce

ZERO = "0x0000000000000000000000000000000000000000"
PER_CALL, METERED, SUBSCRIPTION = range(3)  # PricingModel
DIRECT, AUTHORIZATION, SUBSCRIPTION_KIND = range(3)  # PaymentKind
ONE_USDC = 10**6
PRICE = 10_000  # 0.01 USDC.e
FEE_BPS = 100  # 1%
MAX_FEE_BPS = 500
DAY = 86_400
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1
UINT128_MAX = 2**128 - 1
UINT256_MAX = 2**256 - 1
REF = keccak(text="GET /btc-price")
USED = "FiatTokenV2: authorization is used or canceled"

RECEIVE_TYPES = [("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"),
                 ("validBefore", "uint256"), ("nonce", "bytes32")]


# ------------------------------------------------------------------------------------------------
# Helpers


def deploy_fails(container: Any, sender: Any, args: tuple, error: str, **inputs: Any) -> None:
    """A deployment reverts with custom error `error` and exactly `inputs` (ape leaves constructor
    errors undecoded: the raw revert data is decoded here with the contract's ABI)."""
    from eth_abi import decode

    with pytest.raises(ContractLogicError) as info:
        sender.deploy(container, *args)
    data = HexBytes(info.value.message)
    (abi,) = [e for e in container.contract_type.errors if e.name == error]
    assert data[:4] == keccak(text=abi.selector)[:4], f"expected {error}, got {info.value.message}"
    values = decode([i.canonical_type for i in abi.inputs], data[4:])
    assert dict(zip([i.name for i in abi.inputs], values)) == inputs


def emitted(receipt: Any, **contracts: Any) -> list[tuple[str, str, dict]]:
    """Every event of the named contracts in `receipt`, in log order: (contract name, event, args)."""
    names = {c.address: n for n, c in contracts.items()}
    return [(names[log.contract_address], log.event_name, dict(log.event_arguments)) for log in receipt.events
            if log.contract_address in names]


def test_account(index: int):
    """Key of ape test account `index`, derived from the mnemonic in ape-config.yaml with eth_account."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ape.config.get_config("test").mnemonic, account_path=f"m/44'/60'/0'/0/{index}")


test_account.__test__ = False  # a helper, not a test


class Auth:
    """A ReceiveWithAuthorization signed over the token's EIP-712 domain.

    Router payments name their service in the nonce (top 64 bits, see settleAuthorization): the
    signature is made for `service` when given, else for the service of the first settle call;
    `salt` fills the low 192 bits. Later settles reuse that one signature, whatever service they name.
    """

    def __init__(self, token: Any, signer: Any, to: str, value: int, valid_after: int, valid_before: int,
                 salt: bytes, service: int | None = None) -> None:
        self.token, self.signer, self.salt = token, signer, salt
        self.frm, self.to, self.value = signer.address, to, value
        self.valid_after, self.valid_before = valid_after, valid_before
        self._nonce: bytes | None = None
        if service is not None:
            self.sign_for(service)

    @property
    def nonce(self) -> bytes:
        assert self._nonce is not None, "not signed yet: pass service= or settle first"
        return self._nonce

    def sign_for(self, service: int) -> None:
        self._nonce = service_nonce(service, self.salt)
        domain = {"name": "Bridged USDC (Stargate)", "version": "1", "chainId": 338,
                  "verifyingContract": self.token.address}
        message = {"from": self.frm, "to": self.to, "value": self.value, "validAfter": self.valid_after,
                   "validBefore": self.valid_before, "nonce": self._nonce}
        types = {"ReceiveWithAuthorization": [{"name": n, "type": t} for n, t in RECEIVE_TYPES]}
        signed = Account.sign_typed_data(self.signer.key, domain, types, message)
        self.v, self.r, self.s = signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    def settle(self, router: Any, service_id: int, sender: Any, ref: bytes = REF, frm: str | None = None,
               value: int | None = None):
        if self._nonce is None:
            self.sign_for(service_id)
        return router.settleAuthorization(service_id, frm or self.frm, self.value if value is None else value,
                                          self.valid_after, self.valid_before, self.nonce, self.v, self.r, self.s,
                                          ref, sender=sender)


def registered(router: Any, sid: int) -> tuple[str, int, int]:
    """(token, price, period) of service `sid` as the registry holds it now; (ZERO, 0, 0) if unknown."""
    registry = ape.project.ServiceRegistry.at(router.REGISTRY())
    if sid == 0 or sid > registry.serviceCount():
        return ZERO, 0, 0
    svc = registry.getService(sid)
    return svc.token, svc.price, svc.period


def pay(router: Any, sid: int, units: int, *, sender: Any, token: Any = None, max_amount: int = UINT256_MAX,
        ref: bytes = REF) -> Any:
    """router.pay naming the service's registered token (unless `token`) and at most `max_amount`."""
    return router.pay(sid, units, registered(router, sid)[0] if token is None else token, max_amount, ref,
                      sender=sender)


def subscribe(router: Any, sid: int, periods: int, *, sender: Any, token: Any = None, max_amount: int = UINT256_MAX,
              period: int | None = None, ref: bytes = REF) -> Any:
    """router.subscribe naming the registered token and period (unless given) and at most `max_amount`."""
    reg_token, _price, reg_period = registered(router, sid)
    return router.subscribe(sid, periods, reg_token if token is None else token, max_amount,
                            reg_period if period is None else period, ref, sender=sender)


def split(amount: int, bps: int = FEE_BPS) -> tuple[int, int]:
    """(payout, fee) of `amount`: the fee rounds down."""
    fee = amount * bps // 10_000
    return amount - fee, fee


def payment(pid: int, sid: int, payer: Any, token: Any, pay_to: Any, amount: int, units: int, kind: int,
            ref: bytes = REF, bps: int = FEE_BPS) -> tuple[str, str, dict]:
    return ("router", "PaymentMade", {
        "paymentId": pid, "serviceId": sid, "payer": _addr(payer), "token": _addr(token), "payTo": _addr(pay_to),
        "amount": amount, "fee": split(amount, bps)[1], "units": units, "ref": ref, "kind": kind})


def transfer(frm: Any, to: Any, value: int) -> tuple[str, str, dict]:
    return ("usdc", "Transfer", {"from": _addr(frm), "to": _addr(to), "value": value})


def _addr(x: Any) -> str:
    return x if isinstance(x, str) else x.address


class Balances:
    """USDC.e balances of some accounts, to compare before and after."""

    def __init__(self, usdc: Any, **holders: Any) -> None:
        self.usdc, self.holders = usdc, holders
        self.start = self.now()

    def now(self) -> dict[str, int]:
        return {n: int(self.usdc.balanceOf(h)) for n, h in self.holders.items()}

    def delta(self) -> dict[str, int]:
        end = self.now()
        return {n: end[n] - self.start[n] for n in self.holders}


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def payee(accounts):
    """A service's registered payTo."""
    return accounts[9]


@pytest.fixture(scope="session")
def relayer(accounts):
    """Whoever submits an x402 settlement (the facilitator)."""
    return accounts[6]


@pytest.fixture(scope="session")
def payer_key(payer):
    key = test_account(3)
    assert key.address == payer.address
    return key


@pytest.fixture
def registry(project, owner):
    return owner.deploy(project.ServiceRegistry)


@pytest.fixture
def router(project, owner, registry, fee_recipient):
    return owner.deploy(project.PaymentRouter, registry, owner, fee_recipient, FEE_BPS, MAX_FEE_BPS)


@pytest.fixture
def funded(usdc, owner, payer, router, payee, fee_recipient):
    """Payer holds 1,000 USDC.e and approved the router; payee and fee recipient already hold some."""
    usdc.mint(payer, 1_000 * ONE_USDC, sender=owner)
    usdc.approve(router, 2**256 - 1, sender=payer)
    usdc.mint(payee, ONE_USDC, sender=owner)
    usdc.mint(fee_recipient, ONE_USDC, sender=owner)
    return usdc


def register(registry, provider, token, *, model=PER_CALL, price=PRICE, period=0, pay_to=None, name="oracle") -> int:
    pay_to = pay_to or provider
    return registry.register(name, f"https://{name}.example", model, token, price, period, pay_to,
                             f"ipfs://{name}", sender=provider).return_value


@pytest.fixture
def per_call(registry, provider, usdc, payee):
    return register(registry, provider, usdc, pay_to=payee)


@pytest.fixture
def metered(registry, provider, usdc, payee):
    return register(registry, provider, usdc, model=METERED, price=2_500, pay_to=payee, name="tokens")


@pytest.fixture
def monthly(registry, provider, usdc, payee):
    return register(registry, provider, usdc, model=SUBSCRIPTION, price=5 * ONE_USDC, period=30 * DAY,
                    pay_to=payee, name="feed")


def auth(usdc, key, to, value, *, valid_after=None, valid_before=None, nonce=b"\x01" * 32,
         service: int | None = None) -> Auth:
    now = chain.pending_timestamp
    return Auth(usdc, key, _addr(to), value, now - 1 if valid_after is None else valid_after,
                now + 3600 if valid_before is None else valid_before, nonce, service)


# ------------------------------------------------------------------------------------------------
# Constructor and configuration


def test_constructor_sets_the_configuration_and_emits_it(project, owner, registry, fee_recipient):
    router = owner.deploy(project.PaymentRouter, registry, owner, fee_recipient, FEE_BPS, MAX_FEE_BPS)
    assert router.REGISTRY() == registry.address
    assert router.MAX_FEE_BPS() == MAX_FEE_BPS
    assert router.owner() == owner.address
    assert router.pendingOwner() == ZERO
    assert router.feeRecipient() == fee_recipient.address
    assert router.feeBps() == FEE_BPS
    assert router.paymentCount() == 0
    receipt = chain.get_receipt(router.txn_hash)
    assert emitted(receipt, router=router) == [
        ("router", "OwnershipTransferred", {"previousOwner": ZERO, "newOwner": owner.address}),
        ("router", "FeeRecipientChanged", {"oldRecipient": ZERO, "newRecipient": fee_recipient.address}),
        ("router", "FeeChanged", {"oldFeeBps": 0, "newFeeBps": FEE_BPS}),
    ]


@pytest.mark.parametrize("fee_bps, max_fee_bps", [(0, 0), (0, 10_000), (10_000, 10_000), (500, 500)])
def test_constructor_accepts_fees_up_to_the_cap_and_a_cap_up_to_100_percent(project, owner, registry, fee_bps,
                                                                             max_fee_bps):
    router = owner.deploy(project.PaymentRouter, registry, owner, owner, fee_bps, max_fee_bps)
    assert (router.feeBps(), router.MAX_FEE_BPS()) == (fee_bps, max_fee_bps)


@pytest.mark.parametrize("fee_bps, max_fee_bps, inputs", [
    (0, 10_001, {"feeBps": 10_001, "maxFeeBps": 10_000}),
    (501, 500, {"feeBps": 501, "maxFeeBps": 500}),
    (1, 0, {"feeBps": 1, "maxFeeBps": 0}),
])
def test_constructor_refuses_a_fee_above_the_cap(project, owner, registry, fee_bps, max_fee_bps, inputs):
    deploy_fails(project.PaymentRouter, owner, (registry, owner, owner, fee_bps, max_fee_bps), "FeeTooHigh", **inputs)


@pytest.mark.parametrize("which", ["registry", "owner", "feeRecipient"])
def test_constructor_refuses_zero_addresses(project, owner, registry, which):
    args = {"registry": registry.address, "owner": owner.address, "feeRecipient": owner.address}
    args[which] = ZERO
    deploy_fails(project.PaymentRouter, owner, (args["registry"], args["owner"], args["feeRecipient"], 0, 0),
                 "ZeroAddress")


def test_set_fee_up_to_the_immutable_cap(router, owner):
    receipt = router.setFee(MAX_FEE_BPS, sender=owner)
    assert emitted(receipt, router=router) == [("router", "FeeChanged", {"oldFeeBps": FEE_BPS,
                                                                          "newFeeBps": MAX_FEE_BPS})]
    assert router.feeBps() == MAX_FEE_BPS
    receipt = router.setFee(0, sender=owner)
    assert emitted(receipt, router=router) == [("router", "FeeChanged", {"oldFeeBps": MAX_FEE_BPS, "newFeeBps": 0})]
    with fails("FeeTooHigh", feeBps=MAX_FEE_BPS + 1, maxFeeBps=MAX_FEE_BPS):
        router.setFee(MAX_FEE_BPS + 1, sender=owner)
    with fails("FeeTooHigh", feeBps=2**16 - 1, maxFeeBps=MAX_FEE_BPS):
        router.setFee(2**16 - 1, sender=owner)
    assert router.feeBps() == 0
    assert router.MAX_FEE_BPS() == MAX_FEE_BPS


def test_set_fee_recipient(router, owner, accounts, fee_recipient):
    receipt = router.setFeeRecipient(accounts[8], sender=owner)
    assert emitted(receipt, router=router) == [("router", "FeeRecipientChanged", {
        "oldRecipient": fee_recipient.address, "newRecipient": accounts[8].address})]
    assert router.feeRecipient() == accounts[8].address
    with fails("ZeroAddress"):
        router.setFeeRecipient(ZERO, sender=owner)
    assert router.feeRecipient() == accounts[8].address


@pytest.mark.parametrize("call", [
    lambda r, a: r.setFee(0, sender=a),
    lambda r, a: r.setFeeRecipient(a, sender=a),
    lambda r, a: r.transferOwnership(a, sender=a),
], ids=["setFee", "setFeeRecipient", "transferOwnership"])
def test_only_the_owner_configures(router, stranger, fee_recipient, call):
    with fails("NotOwner", caller=stranger.address):
        call(router, stranger)
    assert (router.feeBps(), router.feeRecipient(), router.pendingOwner()) == (FEE_BPS, fee_recipient.address, ZERO)


def test_ownership_moves_in_two_steps(router, owner, stranger, accounts):
    new = accounts[8]
    receipt = router.transferOwnership(new, sender=owner)
    assert emitted(receipt, router=router) == [("router", "OwnershipTransferStarted", {
        "previousOwner": owner.address, "newOwner": new.address})]
    assert (router.owner(), router.pendingOwner()) == (owner.address, new.address)
    router.setFee(1, sender=owner)  # still the owner until accepted
    with fails("NotOwner", caller=stranger.address):
        router.acceptOwnership(sender=stranger)
    with fails("NotOwner", caller=owner.address):
        router.acceptOwnership(sender=owner)

    receipt = router.acceptOwnership(sender=new)
    assert emitted(receipt, router=router) == [("router", "OwnershipTransferred", {
        "previousOwner": owner.address, "newOwner": new.address})]
    assert (router.owner(), router.pendingOwner()) == (new.address, ZERO)
    with fails("NotOwner", caller=owner.address):
        router.setFee(2, sender=owner)
    router.setFee(2, sender=new)
    with fails("NotOwner", caller=new.address):
        router.acceptOwnership(sender=new)  # the offer was used up


def test_transfer_to_zero_withdraws_a_pending_offer(router, owner, accounts):
    router.transferOwnership(accounts[8], sender=owner)
    receipt = router.transferOwnership(ZERO, sender=owner)
    assert emitted(receipt, router=router) == [("router", "OwnershipTransferStarted", {
        "previousOwner": owner.address, "newOwner": ZERO})]
    with fails("NotOwner", caller=accounts[8].address):
        router.acceptOwnership(sender=accounts[8])
    assert router.owner() == owner.address


# ------------------------------------------------------------------------------------------------
# pay


def test_pay_sends_the_price_to_pay_to_minus_the_fee_and_emits_everything(router, funded, per_call, payer, payee,
                                                                          fee_recipient):
    usdc = funded
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    chain.pending_timestamp = t = chain.pending_timestamp + 5
    receipt = pay(router, per_call, 1, sender=payer)
    payout, fee = split(PRICE)
    assert (payout, fee) == (9_900, 100)
    assert receipt.return_value == 1
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, per_call, payer, usdc, payee, PRICE, 1, DIRECT),
        transfer(payer, payee, payout),
        transfer(payer, fee_recipient, fee),
    ]
    assert b.delta() == {"payer": -PRICE, "payee": payout, "fee": fee, "router": 0}
    assert router.paymentCount() == 1
    assert tuple(router.serviceStats(per_call)) == (PRICE, 1, t)


def test_pay_metered_charges_price_times_units(router, funded, metered, payer, payee, fee_recipient):
    usdc = funded
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient)
    receipt = pay(router, metered, 37, sender=payer)
    amount = 2_500 * 37
    payout, fee = split(amount)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, metered, payer, usdc, payee, amount, 37, DIRECT),
        transfer(payer, payee, payout),
        transfer(payer, fee_recipient, fee),
    ]
    assert b.delta() == {"payer": -amount, "payee": payout, "fee": fee}


# amount, fee bps -> fee (rounded down)
FEE_TABLE = [
    (10_000, 100, 100),
    (10_099, 100, 100),  # 100.99 -> 100
    (9_999, 100, 99),  # 99.99 -> 99
    (99, 100, 0),  # 0.99 -> 0: no fee transfer at all
    (1, 500, 0),
    (19_999, 5, 9),  # 9.9995 -> 9
    (UINT96_MAX, 500, UINT96_MAX * 500 // 10_000),
    (12_345, 0, 0),
]


@pytest.mark.parametrize("price, bps, fee", FEE_TABLE)
def test_fee_is_amount_times_bps_rounded_down_and_payout_takes_the_rest(router, owner, usdc, registry, provider,
                                                                      payer, payee, fee_recipient, price, bps, fee):
    sid = register(registry, provider, usdc, price=price, pay_to=payee)
    router.setFee(bps, sender=owner)
    usdc.mint(payer, price, sender=owner)
    usdc.approve(router, price, sender=payer)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    receipt = pay(router, sid, 1, sender=payer)
    expected = [payment(1, sid, payer, usdc, payee, price, 1, DIRECT, bps=bps), transfer(payer, payee, price - fee)]
    if fee:
        expected.append(transfer(payer, fee_recipient, fee))  # skipped entirely when the fee is 0
    assert emitted(receipt, router=router, usdc=usdc) == expected
    assert b.delta() == {"payer": -price, "payee": price - fee, "fee": fee, "router": 0}
    assert usdc.allowance(payer, router) == 0  # exactly the amount was pulled


@given(price=st.integers(1, 10**12), units=st.integers(1, 1_000), bps=st.integers(0, MAX_FEE_BPS))
def test_conservation_amount_is_payout_plus_fee_under_the_cap(router, owner, usdc, registry, provider, payer, payee,
                                                             fee_recipient, price, units, bps):
    """Hypothesis twin of the fee table: whatever the price, units and rate, the payer loses exactly
    price * units, which is exactly what the payee and the fee recipient gain, and the fee never
    exceeds the cap's share."""
    sid = register(registry, provider, usdc, model=METERED, price=price, pay_to=payee)
    router.setFee(bps, sender=owner)
    amount = price * units
    assert tuple(router.quote(sid, units)) == (amount, amount * bps // 10_000)
    usdc.mint(payer, amount, sender=owner)
    usdc.approve(router, amount, sender=payer)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    receipt = pay(router, sid, units, sender=payer)
    d = b.delta()
    (event,) = [log for log in receipt.events if log.event_name == "PaymentMade"]
    assert event.amount == amount == -d["payer"] == d["payee"] + d["fee"]
    assert event.fee == d["fee"] == amount * bps // 10_000 <= amount * MAX_FEE_BPS // 10_000
    assert d["router"] == 0


def test_pay_refuses_an_inactive_service_and_pays_it_again_once_reactivated(router, registry, funded, per_call,
                                                                            provider, payer):
    registry.deactivate(per_call, sender=provider)
    with fails("ServiceInactive", serviceId=per_call):
        pay(router, per_call, 1, sender=payer)
    assert router.paymentCount() == 0
    registry.reactivate(per_call, sender=provider)
    assert pay(router, per_call, 1, sender=payer).return_value == 1


@pytest.mark.parametrize("sid", [0, 2, 2**256 - 1])
def test_pay_refuses_an_unknown_service_with_the_registry_error(router, funded, per_call, payer, sid):
    with fails("UnknownService", serviceId=sid):
        pay(router, sid, 1, sender=payer)


def test_pay_refuses_a_subscription_service(router, funded, monthly, payer):
    with fails("WrongPricingModel", serviceId=monthly, model=SUBSCRIPTION):
        pay(router, monthly, 1, sender=payer)


@pytest.mark.parametrize("model, units", [(PER_CALL, 0), (PER_CALL, 2), (METERED, 0), (METERED, UINT128_MAX + 1),
                                          (METERED, 2**256 - 1)])
def test_pay_refuses_units_out_of_range(router, registry, provider, funded, payer, model, units):
    sid = register(registry, provider, funded, model=model)
    with fails("InvalidUnits", units=units):
        pay(router, sid, units, sender=payer)


def test_pay_without_allowance_or_funds_moves_nothing(router, usdc, owner, per_call, payer, stranger, payee):
    # The token's own reason is swallowed by SafeTransfer: TransferFailed(token, to, amount).
    payout, _ = split(PRICE)
    with fails("TransferFailed", token=usdc.address, to=payee.address, amount=payout):
        pay(router, per_call, 1, sender=stranger)  # no allowance, no funds
    usdc.approve(router, PRICE, sender=stranger)
    with fails("TransferFailed", token=usdc.address, to=payee.address, amount=payout):
        pay(router, per_call, 1, sender=stranger)  # allowance, no funds
    usdc.mint(payer, PRICE, sender=owner)
    usdc.approve(router, PRICE - 1, sender=payer)
    with fails("TransferFailed", token=usdc.address, to=router.feeRecipient(), amount=PRICE - payout):
        pay(router, per_call, 1, sender=payer)  # enough allowance for the payout, not the fee
    assert router.paymentCount() == 0
    assert tuple(router.serviceStats(per_call)) == (0, 0, 0)
    assert usdc.balanceOf(payee) == 0


def test_services_priced_in_native_cro_are_not_routed(router, registry, provider, payer, payee):
    sid = register(registry, provider, ZERO, pay_to=payee)
    with fails("TransferFailed", token=ZERO, to=payee.address, amount=split(PRICE)[0]):
        pay(router, sid, 1, sender=payer)


def test_pay_follows_the_registry_terms_at_payment_time(router, registry, funded, per_call, provider, payer,
                                                        accounts, fee_recipient):
    usdc = funded
    new_payee = accounts[8]
    registry.update(per_call, "oracle", "https://oracle.example", PER_CALL, usdc, 3 * PRICE, 0, new_payee,
                    "ipfs://oracle", sender=provider)
    b = Balances(usdc, payer=payer, new_payee=new_payee)
    receipt = pay(router, per_call, 1, sender=payer)
    payout, fee = split(3 * PRICE)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, per_call, payer, usdc, new_payee, 3 * PRICE, 1, DIRECT),
        transfer(payer, new_payee, payout),
        transfer(payer, fee_recipient, fee),
    ]
    assert b.delta() == {"payer": -3 * PRICE, "new_payee": payout}


def test_pay_charges_at_most_the_payers_max_amount(router, funded, metered, payer):
    b = Balances(funded, payer=payer)
    with fails("AmountAboveMax", amount=3 * 2_500, maxAmount=3 * 2_500 - 1):
        pay(router, metered, 3, sender=payer, max_amount=3 * 2_500 - 1)
    assert b.delta() == {"payer": 0} and router.paymentCount() == 0
    assert pay(router, metered, 3, sender=payer, max_amount=3 * 2_500).return_value == 1  # the max itself is fine
    assert b.delta() == {"payer": -3 * 2_500}


def test_a_price_raised_while_a_payment_is_pending_cannot_drain_the_allowance(router, registry, funded, per_call,
                                                                               provider, payer, payee):
    """The payer approved the router for far more than one payment (`funded`: unlimited) and sends
    pay(max = the price it saw); the provider's update lands first."""
    registry.update(per_call, "oracle", "https://oracle.example", PER_CALL, funded, 500 * PRICE, 0, payee,
                    "ipfs://oracle", sender=provider)
    b = Balances(funded, payer=payer, payee=payee)
    with fails("AmountAboveMax", amount=500 * PRICE, maxAmount=PRICE):
        pay(router, per_call, 1, sender=payer, max_amount=PRICE)
    assert b.delta() == {"payer": 0, "payee": 0}
    assert router.paymentCount() == 0 and tuple(router.serviceStats(per_call)) == (0, 0, 0)


def test_pay_refuses_a_service_in_another_token_than_the_payer_named(router, funded, per_call, payer, stranger):
    b = Balances(funded, payer=payer)
    with fails("WrongToken", serviceId=per_call, expected=stranger.address, registered=funded.address):
        pay(router, per_call, 1, sender=payer, token=stranger)
    with fails("WrongToken", serviceId=per_call, expected=ZERO, registered=funded.address):  # checked before the max
        pay(router, per_call, 1, sender=payer, token=ZERO, max_amount=0)
    assert b.delta() == {"payer": 0} and router.paymentCount() == 0


def test_fee_settings_apply_to_the_next_payment(router, owner, funded, per_call, payer, payee, accounts):
    usdc = funded
    router.setFee(250, sender=owner)
    router.setFeeRecipient(accounts[8], sender=owner)
    receipt = pay(router, per_call, 1, sender=payer)
    payout, fee = split(PRICE, 250)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, per_call, payer, usdc, payee, PRICE, 1, DIRECT, bps=250),
        transfer(payer, payee, payout),
        transfer(payer, accounts[8], fee),
    ]


def test_service_volume_that_would_overflow_its_counter_is_refused(router, registry, provider, funded, payer):
    sid = register(registry, provider, funded, model=METERED, price=UINT96_MAX)
    units = 2**33  # (2^96 - 1) * 2^33 > 2^128 - 1
    with fails("VolumeOverflow", serviceId=sid, volume=0, amount=UINT96_MAX * units):
        pay(router, sid, units, sender=payer)


def test_payment_ids_and_service_stats_count_every_payment(router, funded, per_call, metered, payer):
    chain.pending_timestamp = t1 = chain.pending_timestamp + 10
    assert pay(router, per_call, 1, sender=payer).return_value == 1
    chain.pending_timestamp = t2 = t1 + 100
    assert pay(router, metered, 4, sender=payer).return_value == 2
    chain.pending_timestamp = t3 = t2 + 7
    assert pay(router, per_call, 1, sender=payer).return_value == 3
    assert router.paymentCount() == 3
    assert tuple(router.serviceStats(per_call)) == (2 * PRICE, 2, t3)
    assert tuple(router.serviceStats(metered)) == (4 * 2_500, 1, t2)
    assert tuple(router.serviceStats(99)) == (0, 0, 0)


# ------------------------------------------------------------------------------------------------
# subscribe


def test_subscribe_extends_from_now_then_from_the_current_expiry(router, funded, monthly, payer, payee,
                                                                 fee_recipient):
    usdc = funded
    price, period = 5 * ONE_USDC, 30 * DAY
    assert router.subscriptionExpiry(monthly, payer) == 0
    chain.pending_timestamp = t0 = chain.pending_timestamp + 10
    receipt = subscribe(router, monthly, 2, sender=payer)
    assert tuple(receipt.return_value) == (1, t0 + 2 * period)
    payout, fee = split(2 * price)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, monthly, payer, usdc, payee, 2 * price, 2, SUBSCRIPTION_KIND),
        ("router", "SubscriptionExtended", {"serviceId": monthly, "subscriber": payer.address,
                                            "expiresAt": t0 + 2 * period, "paymentId": 1}),
        transfer(payer, payee, payout),
        transfer(payer, fee_recipient, fee),
    ]
    assert router.subscriptionExpiry(monthly, payer) == t0 + 2 * period

    # Renewing before expiry stacks on the current expiry.
    chain.pending_timestamp = t0 + DAY
    receipt = subscribe(router, monthly, 1, sender=payer)
    assert tuple(receipt.return_value) == (2, t0 + 3 * period)
    assert router.subscriptionExpiry(monthly, payer) == t0 + 3 * period

    # After it lapsed, a new period starts from now.
    chain.pending_timestamp = t1 = t0 + 3 * period + 1_000
    receipt = subscribe(router, monthly, 1, sender=payer)
    assert tuple(receipt.return_value) == (3, t1 + period)
    assert [e for e in emitted(receipt, router=router) if e[1] == "SubscriptionExtended"] == [
        ("router", "SubscriptionExtended", {"serviceId": monthly, "subscriber": payer.address,
                                            "expiresAt": t1 + period, "paymentId": 3})]
    assert tuple(router.serviceStats(monthly)) == (4 * price, 3, t1)


def test_subscribe_at_the_exact_expiry_starts_from_now(router, funded, monthly, payer):
    chain.pending_timestamp = t0 = chain.pending_timestamp + 10
    subscribe(router, monthly, 1, sender=payer)
    expiry = t0 + 30 * DAY
    chain.pending_timestamp = expiry
    assert tuple(subscribe(router, monthly, 1, sender=payer).return_value) == (2, expiry + 30 * DAY)


@pytest.mark.parametrize("fixture, model", [("per_call", PER_CALL), ("metered", METERED)])
def test_subscribe_refuses_non_subscription_services(router, funded, payer, request, fixture, model):
    sid = request.getfixturevalue(fixture)
    with fails("WrongPricingModel", serviceId=sid, model=model):
        subscribe(router, sid, 1, sender=payer)


def test_subscribe_refuses_zero_periods_inactive_and_unknown_services(router, registry, funded, monthly, provider,
                                                                     payer):
    with fails("InvalidUnits", units=0):
        subscribe(router, monthly, 0, sender=payer)
    with fails("UnknownService", serviceId=monthly + 1):
        subscribe(router, monthly + 1, 1, sender=payer)
    registry.deactivate(monthly, sender=provider)
    with fails("ServiceInactive", serviceId=monthly):
        subscribe(router, monthly, 1, sender=payer)
    assert router.subscriptionExpiry(monthly, payer) == 0


def test_subscribe_refuses_terms_other_than_the_payer_named(router, registry, funded, monthly, provider, payer,
                                                             payee, stranger):
    """A provider who shortens the period (or raises the price, or switches the token) while a
    subscription is pending is refused, and nothing moves. Checked: period, then token, then amount."""
    b = Balances(funded, payer=payer)
    with fails("WrongToken", serviceId=monthly, expected=stranger.address, registered=funded.address):
        subscribe(router, monthly, 1, sender=payer, token=stranger)
    registry.update(monthly, "feed", "https://feed.example", SUBSCRIPTION, funded, 5 * ONE_USDC, 60, payee,
                    "ipfs://feed", sender=provider)
    with fails("WrongPeriod", serviceId=monthly, expected=30 * DAY, registered=60):
        subscribe(router, monthly, 2, sender=payer, period=30 * DAY, max_amount=0)
    with fails("WrongPeriod", serviceId=monthly, expected=30 * DAY, registered=60):
        subscribe(router, monthly, 2, sender=payer, period=30 * DAY, token=stranger)
    with fails("AmountAboveMax", amount=10 * ONE_USDC, maxAmount=10 * ONE_USDC - 1):
        subscribe(router, monthly, 2, sender=payer, max_amount=10 * ONE_USDC - 1)
    assert b.delta() == {"payer": 0} and router.paymentCount() == 0
    assert router.subscriptionExpiry(monthly, payer) == 0
    chain.pending_timestamp = t = chain.pending_timestamp + 10
    assert tuple(subscribe(router, monthly, 2, sender=payer, period=60, max_amount=10 * ONE_USDC).return_value) == (
        1, t + 120)


def test_subscription_expiry_that_would_not_fit_64_bits_is_refused(router, registry, provider, funded, payer):
    sid = register(registry, provider, funded, model=SUBSCRIPTION, price=1, period=UINT64_MAX)
    chain.pending_timestamp = t = chain.pending_timestamp + 10
    with fails("ExpiryOverflow", serviceId=sid, expiresAt=t + UINT64_MAX):
        subscribe(router, sid, 1, sender=payer)


def test_subscription_for_the_maximum_periods(router, registry, provider, funded, payer, owner):
    funded.mint(payer, UINT32_MAX, sender=owner)
    sid = register(registry, provider, funded, model=SUBSCRIPTION, price=1, period=1)
    chain.pending_timestamp = t = chain.pending_timestamp + 10
    assert tuple(subscribe(router, sid, UINT32_MAX, sender=payer).return_value) == (1, t + UINT32_MAX)


# ------------------------------------------------------------------------------------------------
# settleAuthorization (x402)


def test_settle_moves_the_price_from_the_signer_to_pay_to_and_fee_recipient(router, funded, per_call, payer,
                                                                            payer_key, payee, fee_recipient,
                                                                            relayer):
    usdc = funded
    a = auth(usdc, payer_key, router, PRICE, nonce=keccak(text="n1"), service=per_call)
    assert not usdc.authorizationState(payer, a.nonce)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router, relayer=relayer)
    chain.pending_timestamp = t = chain.pending_timestamp + 1
    receipt = a.settle(router, per_call, relayer)
    payout, fee = split(PRICE)
    assert receipt.return_value == 1
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, per_call, payer, usdc, payee, PRICE, 1, AUTHORIZATION),
        ("usdc", "AuthorizationUsed", {"authorizer": payer.address, "nonce": a.nonce}),
        transfer(payer, router, PRICE),
        transfer(router, payee, payout),
        transfer(router, fee_recipient, fee),
    ]
    assert b.delta() == {"payer": -PRICE, "payee": payout, "fee": fee, "router": 0, "relayer": 0}
    assert usdc.authorizationState(payer, a.nonce)
    assert usdc.allowance(payer, router) == 2**256 - 1  # the approval played no part
    assert tuple(router.serviceStats(per_call)) == (PRICE, 1, t)


@pytest.mark.parametrize("bps, price", [(0, PRICE), (FEE_BPS, 99)])
def test_settle_with_a_zero_fee_makes_no_fee_transfer(router, owner, registry, provider, funded, payer, payer_key,
                                                      payee, fee_recipient, relayer, bps, price):
    usdc = funded
    sid = register(registry, provider, usdc, price=price, pay_to=payee, name="cheap")
    router.setFee(bps, sender=owner)
    a = auth(usdc, payer_key, router, price)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    receipt = a.settle(router, sid, relayer)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, sid, payer, usdc, payee, price, 1, AUTHORIZATION, bps=bps),
        ("usdc", "AuthorizationUsed", {"authorizer": payer.address, "nonce": a.nonce}),
        transfer(payer, router, price),
        transfer(router, payee, price),
    ]
    assert b.delta() == {"payer": -price, "payee": price, "fee": 0, "router": 0}


def test_the_same_authorization_moves_money_once(router, registry, provider, funded, per_call, payer, payer_key,
                                                  payee, fee_recipient, relayer, stranger):
    usdc = funded
    twin = register(registry, provider, usdc, pay_to=payee, name="twin")  # same token, price and payTo
    a = auth(usdc, payer_key, router, PRICE)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    a.settle(router, per_call, relayer)
    with ape.reverts(USED):
        a.settle(router, per_call, relayer)
    with ape.reverts(USED):
        a.settle(router, per_call, stranger, ref=keccak(text="another request"))
    with fails("NonceNotBoundToService", serviceId=twin, nonce=a.nonce):  # nor for a twin service
        a.settle(router, twin, relayer)
    payout, fee = split(PRICE)
    assert b.delta() == {"payer": -PRICE, "payee": payout, "fee": fee, "router": 0}
    assert router.paymentCount() == 1
    assert tuple(router.serviceStats(per_call))[:2] == (PRICE, 1)


def test_an_authorization_cannot_be_redirected_to_a_look_alike_service(router, registry, funded, per_call, payer,
                                                                        payer_key, payee, stranger, relayer):
    """The nonce names the service (top 64 bits) and the signature covers the nonce: a stranger who
    registers a look-alike service (same token, same price) cannot settle the payer's authorization
    for it; the intended service still can."""
    usdc = funded
    look_alike = registry.register("oracle", "https://evil.example", PER_CALL, usdc, PRICE, 0, stranger, "",
                                   sender=stranger).return_value
    a = auth(usdc, payer_key, router, PRICE, service=per_call)
    b = Balances(usdc, payee=payee, stranger=stranger)
    with fails("NonceNotBoundToService", serviceId=look_alike, nonce=a.nonce):
        a.settle(router, look_alike, stranger)
    assert not usdc.authorizationState(payer, a.nonce)
    a.settle(router, per_call, relayer)
    assert b.delta() == {"payee": split(PRICE)[0], "stranger": 0}


def test_service_nonce_puts_the_service_id_in_the_top_64_bits():
    nonce = service_nonce(7, b"\xab" * 32)
    assert nonce[:8] == (7).to_bytes(8, "big") and nonce[8:] == b"\xab" * 24
    assert nonce_service(nonce) == 7
    with pytest.raises(ValueError):
        service_nonce(1 << 64)


def test_settle_refuses_an_inactive_service_and_leaves_the_nonce_unused(router, registry, funded, per_call,
                                                                        provider, payer, payer_key, relayer):
    usdc = funded
    a = auth(usdc, payer_key, router, PRICE)
    registry.deactivate(per_call, sender=provider)
    with fails("ServiceInactive", serviceId=per_call):
        a.settle(router, per_call, relayer)
    assert not usdc.authorizationState(payer, a.nonce)
    registry.reactivate(per_call, sender=provider)
    assert a.settle(router, per_call, relayer).return_value == 1


def test_settle_refuses_an_unknown_service(router, funded, per_call, payer_key, relayer):
    a = auth(funded, payer_key, router, PRICE)
    with fails("UnknownService", serviceId=per_call + 1):
        a.settle(router, per_call + 1, relayer)


@pytest.mark.parametrize("value", [PRICE + 1, PRICE - 1, 0, 2 * PRICE])
def test_settle_per_call_value_must_equal_the_price(router, funded, per_call, payer_key, relayer, value):
    a = auth(funded, payer_key, router, value)
    with fails("AmountMismatch", expected=PRICE, actual=value):
        a.settle(router, per_call, relayer)


@pytest.mark.parametrize("units", [1, 3, 400])
def test_settle_metered_pays_value_over_price_units(router, funded, metered, payer, payer_key, payee,
                                                    fee_recipient, relayer, units):
    usdc = funded
    value = 2_500 * units
    a = auth(usdc, payer_key, router, value)
    b = Balances(usdc, payer=payer, payee=payee, fee=fee_recipient, router=router)
    receipt = a.settle(router, metered, relayer)
    payout, fee = split(value)
    assert emitted(receipt, router=router)[0] == payment(1, metered, payer, usdc, payee, value, units,
                                                         AUTHORIZATION)
    assert b.delta() == {"payer": -value, "payee": payout, "fee": fee, "router": 0}


@pytest.mark.parametrize("value, expected", [
    (0, 2_500),
    (1, 2_500),
    (2_499, 2_500),
    (2_501, 2_500),
    (7_499, 5_000),  # 2.9996 units: the largest multiple below is quoted
    (2_500 * 10 + 1, 2_500 * 10),
])
def test_settle_metered_value_must_be_a_positive_multiple_of_the_price(router, funded, metered, payer_key, relayer,
                                                                       value, expected):
    a = auth(funded, payer_key, router, value)
    with fails("AmountMismatch", expected=expected, actual=value):
        a.settle(router, metered, relayer)


def test_settle_metered_units_beyond_128_bits_are_refused(router, registry, provider, funded, payer_key, relayer):
    sid = register(registry, provider, funded, model=METERED, price=1)
    a = auth(funded, payer_key, router, 2**128)
    with fails("InvalidUnits", units=2**128):
        a.settle(router, sid, relayer)


def test_settle_subscription_extends_the_signers_expiry(router, funded, monthly, payer, payer_key, payee,
                                                        fee_recipient, relayer):
    usdc = funded
    price, period = 5 * ONE_USDC, 30 * DAY
    a = auth(usdc, payer_key, router, 3 * price)
    chain.pending_timestamp = t = chain.pending_timestamp + 1
    receipt = a.settle(router, monthly, relayer)
    payout, fee = split(3 * price)
    assert emitted(receipt, router=router, usdc=usdc) == [
        payment(1, monthly, payer, usdc, payee, 3 * price, 3, AUTHORIZATION),
        ("router", "SubscriptionExtended", {"serviceId": monthly, "subscriber": payer.address,
                                            "expiresAt": t + 3 * period, "paymentId": 1}),
        ("usdc", "AuthorizationUsed", {"authorizer": payer.address, "nonce": a.nonce}),
        transfer(payer, router, 3 * price),
        transfer(router, payee, payout),
        transfer(router, fee_recipient, fee),
    ]
    assert router.subscriptionExpiry(monthly, payer) == t + 3 * period
    assert router.subscriptionExpiry(monthly, relayer) == 0


@pytest.mark.parametrize("value, error, inputs", [
    (5 * ONE_USDC + 1, "AmountMismatch", {"expected": 5 * ONE_USDC, "actual": 5 * ONE_USDC + 1}),
    (ONE_USDC, "AmountMismatch", {"expected": 5 * ONE_USDC, "actual": ONE_USDC}),
    (5 * ONE_USDC * 2**32, "InvalidUnits", {"units": 2**32}),  # more periods than subscribe() takes
])
def test_settle_subscription_value_rules(router, funded, monthly, payer_key, relayer, value, error, inputs):
    a = auth(funded, payer_key, router, value)
    with fails(error, **inputs):
        a.settle(router, monthly, relayer)


def test_settle_after_a_price_change_refuses_the_old_price(router, registry, funded, per_call, provider,
                                                           payer_key, relayer, payee):
    a = auth(funded, payer_key, router, PRICE)
    registry.update(per_call, "oracle", "https://oracle.example", PER_CALL, funded, 2 * PRICE, 0, payee, "",
                    sender=provider)
    with fails("AmountMismatch", expected=2 * PRICE, actual=PRICE):
        a.settle(router, per_call, relayer)


def test_settle_pays_the_payto_registered_now(router, registry, funded, per_call, provider, payer_key, relayer,
                                              accounts):
    usdc = funded
    a = auth(usdc, payer_key, router, PRICE)
    registry.update(per_call, "oracle", "https://oracle.example", PER_CALL, usdc, PRICE, 0, accounts[8], "",
                    sender=provider)
    b = Balances(usdc, new_payee=accounts[8])
    a.settle(router, per_call, relayer)
    assert b.delta() == {"new_payee": split(PRICE)[0]}


# The token's own checks, in FiatToken's order; each leaves the nonce unused and moves nothing.
def test_settle_surfaces_the_tokens_refusals(router, funded, per_call, payer, payer_key, relayer, stranger,
                                             payee, owner):
    usdc = funded
    now = chain.pending_timestamp
    cases = [
        (auth(usdc, payer_key, router, PRICE, valid_after=now + 100, nonce=b"\x11" * 32),
         "FiatTokenV2: authorization is not yet valid"),
        (auth(usdc, payer_key, router, PRICE, valid_after=now - 100, valid_before=now, nonce=b"\x12" * 32),
         "FiatTokenV2: authorization is expired"),
        (auth(usdc, test_account(4), router, PRICE, nonce=b"\x13" * 32), "FiatTokenV2: invalid signature"),
        # Made out to the payee (a plain transfer authorization's recipient), not to the router.
        (auth(usdc, payer_key, payee, PRICE, nonce=b"\x14" * 32), "FiatTokenV2: invalid signature"),
    ]
    b = Balances(usdc, payer=payer, payee=payee, router=router)
    for a, message in cases:
        chain.pending_timestamp = now
        with ape.reverts(message):
            a.settle(router, per_call, relayer, frm=payer.address)
        assert not usdc.authorizationState(payer, a.nonce)
    # Balance last: a valid authorization for more than the signer holds.
    usdc.transfer(stranger, usdc.balanceOf(payer) - PRICE + 1, sender=payer)
    a = auth(usdc, payer_key, router, PRICE, nonce=b"\x15" * 32)
    with ape.reverts("ERC20: transfer amount exceeds balance"):
        a.settle(router, per_call, relayer)
    assert not usdc.authorizationState(payer, a.nonce)
    assert b.delta()["payee"] == 0 and b.delta()["router"] == 0
    assert router.paymentCount() == 0


def test_settle_for_a_native_cro_service_is_refused(router, registry, provider, funded, payer_key, relayer):
    sid = register(registry, provider, ZERO)
    a = auth(funded, payer_key, router, PRICE)
    with fails("TransferFailed", token=ZERO, to=router.address, amount=PRICE):
        a.settle(router, sid, relayer)


def test_settle_with_a_cancelled_authorization_is_refused(router, funded, per_call, payer, payer_key, relayer):
    usdc = funded
    a = auth(usdc, payer_key, router, PRICE, service=per_call)
    domain = {"name": "Bridged USDC (Stargate)", "version": "1", "chainId": 338, "verifyingContract": usdc.address}
    types = {"CancelAuthorization": [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}]}
    c = Account.sign_typed_data(payer_key.key, domain, types, {"authorizer": payer.address, "nonce": a.nonce})
    usdc.cancelAuthorization(payer, a.nonce, c.v, c.r.to_bytes(32, "big"), c.s.to_bytes(32, "big"), sender=relayer)
    with ape.reverts(USED):
        a.settle(router, per_call, relayer)


# ------------------------------------------------------------------------------------------------
# quote


def test_quote_is_what_pay_charges(router, owner, funded, per_call, metered, monthly, payer):
    assert tuple(router.quote(per_call, 1)) == (PRICE, 100)
    assert tuple(router.quote(metered, 7)) == (17_500, 175)
    assert tuple(router.quote(monthly, 12)) == (60 * ONE_USDC, 600_000)
    router.setFee(3, sender=owner)
    assert tuple(router.quote(metered, 7)) == (17_500, 5)  # 5.25 -> 5
    receipt = pay(router, metered, 7, sender=payer)
    (event,) = [log for log in receipt.events if log.event_name == "PaymentMade"]
    assert (event.amount, event.fee) == (17_500, 5)


def test_quote_refuses_what_pay_would_refuse(router, registry, funded, per_call, metered, monthly, provider):
    assert view_fails(router, "quote", per_call, 2) == ("InvalidUnits", {"units": 2})
    assert view_fails(router, "quote", metered, 0) == ("InvalidUnits", {"units": 0})
    assert view_fails(router, "quote", monthly, UINT32_MAX + 1) == ("InvalidUnits", {"units": UINT32_MAX + 1})
    assert view_fails(router, "quote", 99, 1) == ("UnknownService", {"serviceId": 99})
    registry.deactivate(metered, sender=provider)
    assert view_fails(router, "quote", metered, 1) == ("ServiceInactive", {"serviceId": metered})


# ------------------------------------------------------------------------------------------------
# Re-entrancy from a hostile token


@pytest.fixture
def hostile(project, owner, registry, router, provider, payer, payee):
    token = owner.deploy(project.HostileToken)
    sid = register(registry, provider, token, model=METERED, price=PRICE, pay_to=payee, name="hostile")
    token.mint(payer, 100 * PRICE, sender=owner)
    token.approve(router, 2**256 - 1, sender=payer)
    token.mint(token, 100 * PRICE, sender=owner)  # so that, without a lock, its own re-entrant pay would succeed
    return token, sid


REENTRANCY = keccak(text="Reentrancy()")[:4]


@pytest.mark.parametrize("entry", ["pay", "settle"])
@pytest.mark.parametrize("reenter", ["pay", "subscribe", "settle"])
def test_a_hostile_token_cannot_reenter(router, hostile, payer, relayer, monthly, entry, reenter):
    token, sid = hostile
    inner = {
        "pay": router.pay.encode_input(sid, 1, token, UINT256_MAX, REF),
        "subscribe": router.subscribe.encode_input(monthly, 1, registered(router, monthly)[0], UINT256_MAX, 30 * DAY,
                                                   REF),
        "settle": router.settleAuthorization.encode_input(sid, payer.address, PRICE, 0, 2**255, service_nonce(sid, b"\0"), 27,
                                                          b"\x00" * 32, b"\x00" * 32, REF),
    }[reenter]
    token.arm(router, inner, sender=payer)
    if entry == "pay":
        receipt = pay(router, sid, 2, sender=payer)
    else:
        receipt = router.settleAuthorization(sid, payer, 2 * PRICE, 0, 2**255, service_nonce(sid, b"\1"), 27, b"\x00" * 32,
                                             b"\x00" * 32, REF, sender=relayer)
    assert token.hookCalled() and not token.hookSucceeded()
    assert HexBytes(token.hookResult()) == HexBytes(REENTRANCY)
    # The outer payment went through once, and nothing else was recorded.
    assert router.paymentCount() == 1
    assert [log.event_name for log in receipt.events if log.contract_address == router.address] == ["PaymentMade"]
    assert tuple(router.serviceStats(sid))[:2] == (2 * PRICE, 1)
    assert token.balanceOf(router) == 0


def test_the_lock_is_released_after_each_payment(router, hostile, payer):
    token, sid = hostile
    for expected in (1, 2, 3):
        assert pay(router, sid, 1, sender=payer).return_value == expected


# ------------------------------------------------------------------------------------------------
# Storage layout and replay (invariant 10)


def test_storage_layout_matches_the_comment(router, funded, per_call, payer, fee_recipient, owner):
    chain.pending_timestamp = t = chain.pending_timestamp + 3
    pay(router, per_call, 1, sender=payer)

    def word(slot: int) -> int:
        return int.from_bytes(chain.provider.get_storage(router.address, slot), "big")

    # slot 0: feeRecipient | feeBps << 160 | paymentCount << 176 | locked << 248 (unlocked after the call)
    assert word(0) == int(fee_recipient.address, 16) | (FEE_BPS << 160) | (1 << 176)
    assert word(1) == int(owner.address, 16)
    assert word(2) == 0
    stats = int.from_bytes(keccak(per_call.to_bytes(32, "big") + (3).to_bytes(32, "big")), "big")
    assert word(stats) == PRICE | (1 << 128) | (t << 192)


def test_replaying_router_events_rebuilds_its_state(project, owner, registry, usdc, provider, payer, payer_key,
                                                     payee, relayer, accounts, fee_recipient):
    start = chain.blocks.head.number + 1
    router = owner.deploy(project.PaymentRouter, registry, owner, fee_recipient, FEE_BPS, MAX_FEE_BPS)
    usdc.mint(payer, 1_000 * ONE_USDC, sender=owner)
    usdc.approve(router, 2**256 - 1, sender=payer)
    call = register(registry, provider, usdc, pay_to=payee)
    meter = register(registry, provider, usdc, model=METERED, price=2_500, pay_to=payee, name="m")
    sub = register(registry, provider, usdc, model=SUBSCRIPTION, price=ONE_USDC, period=DAY, pay_to=payee, name="s")

    pay(router, call, 1, sender=payer)
    pay(router, meter, 9, sender=payer)
    subscribe(router, sub, 2, sender=payer)
    router.setFee(250, sender=owner)
    auth(usdc, payer_key, router, 3 * ONE_USDC, nonce=b"\x21" * 32).settle(router, sub, relayer)
    chain.mine(timestamp=chain.pending_timestamp + 10 * DAY)
    subscribe(router, sub, 1, sender=payer)
    router.setFeeRecipient(accounts[8], sender=owner)
    auth(usdc, payer_key, router, PRICE, nonce=b"\x22" * 32).settle(router, call, relayer)
    router.transferOwnership(accounts[8], sender=owner)
    router.acceptOwnership(sender=accounts[8])
    registry.deactivate(call, sender=provider)
    with fails("ServiceInactive", serviceId=call):  # refused calls leave no trace
        pay(router, call, 1, sender=payer)

    head = chain.blocks.head.number
    names = ("PaymentMade", "SubscriptionExtended", "FeeChanged", "FeeRecipientChanged", "OwnershipTransferStarted",
             "OwnershipTransferred")
    logs = sorted((log for n in names for log in getattr(router, n).range(start, head + 1)),
                  key=lambda log: (log.block_number, log.log_index))
    ids, stats, subs = [], {}, {}
    state = {"feeBps": None, "feeRecipient": None, "owner": None, "pendingOwner": ZERO}
    for log in logs:
        e = log.event_arguments
        if log.event_name == "PaymentMade":
            ids.append(e["paymentId"])
            volume, count, _ = stats.get(e["serviceId"], (0, 0, 0))
            stats[e["serviceId"]] = (volume + e["amount"], count + 1, chain.blocks[log.block_number].timestamp)
            assert e["fee"] == e["amount"] * state["feeBps"] // 10_000
        elif log.event_name == "SubscriptionExtended":
            subs[(e["serviceId"], e["subscriber"])] = e["expiresAt"]
        elif log.event_name == "FeeChanged":
            assert e["oldFeeBps"] == (state["feeBps"] or 0)
            state["feeBps"] = e["newFeeBps"]
        elif log.event_name == "FeeRecipientChanged":
            state["feeRecipient"] = e["newRecipient"]
        elif log.event_name == "OwnershipTransferStarted":
            state["pendingOwner"] = e["newOwner"]
        else:
            state["owner"], state["pendingOwner"] = e["newOwner"], ZERO

    assert ids == list(range(1, router.paymentCount() + 1)) == list(range(1, 7))
    for sid in (call, meter, sub):
        assert tuple(router.serviceStats(sid)) == stats[sid]
    assert subs and all(router.subscriptionExpiry(s, who) == exp for (s, who), exp in subs.items())
    assert state == {"feeBps": router.feeBps(), "feeRecipient": router.feeRecipient(), "owner": router.owner(),
                     "pendingOwner": router.pendingOwner()}


# ------------------------------------------------------------------------------------------------
# Gas


def _twa_baseline(usdc, payer_key, relayer, to) -> int:
    """transferWithAuthorization of the same value between existing holders (the x402 baseline)."""
    domain = {"name": "Bridged USDC (Stargate)", "version": "1", "chainId": 338, "verifyingContract": usdc.address}
    types = {"TransferWithAuthorization": [{"name": n, "type": t} for n, t in RECEIVE_TYPES]}
    now = chain.pending_timestamp
    msg = {"from": payer_key.address, "to": _addr(to), "value": PRICE, "validAfter": now - 1, "validBefore": now + 600,
           "nonce": b"\x77" * 32}
    s = Account.sign_typed_data(payer_key.key, domain, types, msg)
    return usdc.transferWithAuthorization(msg["from"], msg["to"], PRICE, msg["validAfter"], msg["validBefore"],
                                          msg["nonce"], s.v, s.r.to_bytes(32, "big"), s.s.to_bytes(32, "big"),
                                          sender=relayer).gas_used



@pytest.fixture
def gas(router, owner, funded, per_call, payer, payer_key, payee, relayer) -> dict[str, int]:
    """Gas per transaction in the steady state: payer, payee and fee recipient already hold USDC.e
    and the service was paid before (its stats word is non-zero)."""
    usdc = funded
    out = {"transfer_with_authorization": _twa_baseline(usdc, payer_key, relayer, payee)}
    pay(router, per_call, 1, sender=payer)
    out["pay"] = pay(router, per_call, 1, sender=payer).gas_used
    out["settle"] = auth(usdc, payer_key, router, PRICE, nonce=b"\x31" * 32).settle(router, per_call, relayer).gas_used
    router.setFee(0, sender=owner)
    out["pay_no_fee"] = pay(router, per_call, 1, sender=payer).gas_used
    out["settle_no_fee"] = auth(usdc, payer_key, router, PRICE, nonce=b"\x32" * 32).settle(router, per_call,
                                                                                          relayer).gas_used
    return out


# Regression ceilings, a little above what was measured (anvil, optimizer 10,000 runs):
#   transferWithAuthorization 67.5k; settle 110.5k (+42.9k), without fee 102.2k (+34.7k);
#   pay 78.2k, without fee 69.4k (the payer's token and maxAmount cost ~1.1k of calldata and checks).
SETTLE_OVERHEAD_CEILING = 44_000
SETTLE_NO_FEE_OVERHEAD_CEILING = 35_500
PAY_CEILING = 79_500
PAY_NO_FEE_CEILING = 70_500


def test_gas_stays_under_the_measured_ceilings(gas):
    twa = gas["transfer_with_authorization"]
    print("\n" + "\n".join(f"{k:>28} {v:>8,}" for k, v in gas.items()))
    assert gas["settle"] - twa <= SETTLE_OVERHEAD_CEILING, gas
    assert gas["settle_no_fee"] - twa <= SETTLE_NO_FEE_OVERHEAD_CEILING, gas
    assert gas["pay"] <= PAY_CEILING, gas
    assert gas["pay_no_fee"] <= PAY_NO_FEE_CEILING, gas
    # Skipping a zero fee saves a whole token transfer.
    assert gas["settle"] - gas["settle_no_fee"] > 7_000 and gas["pay"] - gas["pay_no_fee"] > 7_000, gas


@pytest.mark.xfail(strict=True, reason="budget not reachable with the spec'd design: see the docstring")
def test_settle_costs_at_most_transfer_with_authorization_plus_30k(gas):
    """The spec's budget: settle <= transferWithAuthorization + 30,000. Not met. On top of the
    token's own work, a settle necessarily pays for: the token as a cold account (2.6k), the
    registry call reading two cold slots (~7k), the router's config slot (5k), the service's stats
    slot (5k), PaymentMade (3.7k), and a second and third token transfer from the router (payTo,
    fee recipient: ~8k each, cold recipient slot + Transfer log), less ~2.8k because the router's own
    balance goes 0 -> value -> 0 and earns the SSTORE refund: a floor of ~38.7k with a fee (~30.6k
    without), before any Solidity overhead (~4.2k measured). Reaching 30k needs a design change,
    e.g. fees accrued in the router and swept (-5.3k) plus stats left to the indexer (-5k)."""
    assert gas["settle"] - gas["transfer_with_authorization"] <= 30_000, gas
