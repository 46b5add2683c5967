"""x402 through the PaymentRouter, on the full local deployment: an authorization made out to the
router is a ReceiveWithAuthorization whose nonce names its service; the facilitator settles it
through router.settleAuthorization, which pays the registered payTo minus the router fee.
"""

import pytest

from agent.signer import LocalSigner
from keeper.facilitator import Facilitator, Payment, Web3Backend
from keeper.intents import IntentStore
from paygent.eip3009 import AuthorizationKind, DomainReader, service_nonce
from paygent.networks import LOCAL
from paygent.wire import v2
from paygent.wire.exact import Extra

PAYER = 3


@pytest.fixture
def setup(stack, chain, owner, payer, relayer_key):
    w3 = chain.provider.web3
    stack.usdc.mint(payer, 10 * 10**6, sender=owner)
    backend = Web3Backend(w3, relayer_key, router=stack.router.address, registry=stack.registry.address,
                          poll_latency=0.01)
    facilitator = Facilitator(backend, IntentStore(), LOCAL, frozenset({stack.usdc.address}), receipt_timeout=10)
    service_id = stack.service_ids["vvs-price-oracle"]
    price = stack.registry.getService(service_id).price
    domain = DomainReader(w3).domain(stack.usdc.address)
    requirements = v2.PaymentRequirements(
        scheme="exact", network="eip155:338", asset=stack.usdc.address, amount=str(price),
        pay_to=stack.router.address, max_timeout_seconds=300,
        extra=Extra(name=domain.name, version=domain.version, service_id=service_id))
    return facilitator, requirements, domain, service_id, price


def payment(requirements, domain, chain, nonce: bytes) -> Payment:
    from paygent.localchain import test_key

    signer = LocalSigner(test_key(PAYER))
    signed = signer.authorize(domain, AuthorizationKind.RECEIVE, requirements.pay_to, int(requirements.amount),
                              300, now=chain.pending_timestamp, nonce=nonce)
    payload = v2.PaymentPayload.model_validate({
        "x402Version": 2, "payload": signed.payload().model_dump(mode="json", by_alias=True),
        "accepted": requirements.model_dump(mode="json", by_alias=True, exclude_none=True)})
    return Payment.from_v2(payload, requirements)


def test_router_payment_settles_once_and_pays_the_registered_pay_to(setup, stack, chain, payer, provider):
    facilitator, requirements, domain, service_id, price = setup
    p = payment(requirements, domain, chain, service_nonce(service_id))
    before = {who: stack.usdc.balanceOf(who) for who in (payer, provider)}
    assert facilitator.verify(p).is_valid
    result = facilitator.settle(p)
    assert result.success, result
    fee = price * stack.router.feeBps() // 10_000
    assert stack.usdc.balanceOf(payer) == before[payer] - price
    assert stack.usdc.balanceOf(provider) == before[provider] + price - fee
    assert tuple(stack.router.serviceStats(service_id))[:2] == (price, 1)
    again = facilitator.settle(p)  # the same authorization again: same answer, no second transfer
    assert stack.usdc.balanceOf(payer) == before[payer] - price
    assert again.transaction == result.transaction


def test_router_payment_whose_nonce_names_another_service_is_refused_and_moves_nothing(setup, stack, chain, payer):
    facilitator, requirements, domain, service_id, _price = setup
    other = stack.service_ids["premium-price-oracle"]
    p = payment(requirements, domain, chain, service_nonce(other))
    before = stack.usdc.balanceOf(payer)
    verdict = facilitator.verify(p)
    assert not verdict.is_valid and verdict.reason == "nonce_not_bound_to_service"
    result = facilitator.settle(p)
    assert not result.success and result.reason == "nonce_not_bound_to_service"
    assert stack.usdc.balanceOf(payer) == before


def test_router_payment_with_a_random_nonce_is_refused(setup, chain):
    facilitator, requirements, domain, _service_id, _price = setup
    p = payment(requirements, domain, chain, b"\x42" * 32)
    assert facilitator.verify(p).reason == "nonce_not_bound_to_service"


def test_a_router_payment_sent_around_the_router_is_not_taken_as_settled(setup, stack, chain, payer, monkeypatch):
    """The payer spends the service-bound nonce on a plain TransferWithAuthorization to the router's
    address: the same Transfer as a settlement, but the service was never paid (no PaymentMade)."""
    from keeper.intents import Status
    from paygent.localchain import test_key

    facilitator, requirements, domain, service_id, price = setup
    w3 = chain.provider.web3
    nonce = service_nonce(service_id)
    p = payment(requirements, domain, chain, nonce)
    facilitator.receipt_timeout = 0.2
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        assert facilitator.settle(p).status is Status.PENDING
        intent = facilitator.store.get(p.key)
        w3.provider.make_request("anvil_dropTransaction", [intent.tx_hash])
        around = LocalSigner(test_key(PAYER)).authorize(domain, AuthorizationKind.TRANSFER, stack.router.address,
                                                        price, 300, now=chain.pending_timestamp, nonce=nonce)
        m, sig = around.message, around.signature
        data = stack.usdc.transferWithAuthorization.encode_input(m.from_, m.to, m.value, m.valid_after,
                                                                 m.valid_before, m.nonce, sig[64], sig[:32], sig[32:64])
        w3.eth.send_transaction({"from": w3.eth.accounts[9], "to": stack.usdc.address, "data": bytes(data),
                                 "gas": 200_000})
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    monkeypatch.setattr("keeper.facilitator.USE_LOOKUP_GRACE", 0.0)

    closed = facilitator.reconcile(intent, timeout=10)
    for _ in range(2):
        if closed.status is not Status.PENDING:
            break
        closed = facilitator.reconcile(facilitator.store.get(p.key), timeout=10)

    assert closed.status is Status.FAILED and closed.error == "invalid_exact_evm_nonce_already_used"
    assert tuple(stack.router.serviceStats(service_id))[1] == 0  # the service was never paid
