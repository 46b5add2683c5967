"""Facilitator rules on anvil with the real token stand-in: each invalid payment gets its reason
and moves nothing; one authorization moves money once, however often or concurrently it is settled."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from agent.signer import LocalSigner
from keeper.facilitator import Payment, Web3Backend
from keeper.intents import Status
from paygent.eip3009 import AuthorizationKind, AuthorizationMessage, DomainReader, digest
from paygent.localchain import test_key as local_key
from paygent.wire import v2
from paygent.wire.exact import Extra

PRICE = 10_000


@pytest.fixture
def domain(w3, funded_usdc):
    return DomainReader(w3).domain(funded_usdc.address)


@pytest.fixture
def requirements(funded_usdc, provider, domain):
    return v2.PaymentRequirements(scheme="exact", network="eip155:338", asset=funded_usdc.address,
                                  amount=str(PRICE), pay_to=provider.address, max_timeout_seconds=300,
                                  extra=Extra(name=domain.name, version=domain.version))


@pytest.fixture
def sign(payer_key, domain, chain):
    """sign(**overrides) -> v2 PaymentPayload for `requirements`, times from the chain."""

    def make(requirements, *, key=None, to=None, value=None, valid_after=None, valid_before=None,
             accepted=None, signed_value=None, nonce=None):
        signer = LocalSigner(key or payer_key)
        now = chain.pending_timestamp
        message = AuthorizationMessage(
            from_=signer.address, to=to or requirements.pay_to,
            value=int(requirements.amount) if value is None else value,
            valid_after=now - 60 if valid_after is None else valid_after,
            valid_before=now + 300 if valid_before is None else valid_before,
            nonce=nonce or bytes.fromhex("ab" * 32) if nonce else __import__("secrets").token_bytes(32))
        signed_message = message if signed_value is None else AuthorizationMessage(
            message.from_, message.to, signed_value, message.valid_after, message.valid_before, message.nonce)
        signature = signer.sign_digest(digest(domain, AuthorizationKind.TRANSFER, signed_message))
        payload = {"signature": "0x" + signature.hex(), "authorization": {
            "from": message.from_, "to": message.to, "value": str(message.value),
            "validAfter": str(message.valid_after), "validBefore": str(message.valid_before),
            "nonce": "0x" + message.nonce.hex()}}
        return v2.PaymentPayload.model_validate({
            "x402Version": 2, "payload": payload,
            "accepted": (accepted or requirements).model_dump(mode="json", by_alias=True, exclude_none=True)})

    return make


@pytest.fixture
def api(facilitator_app):
    return TestClient(facilitator_app)


def settle_body(payload, requirements):
    return {"x402Version": 2, "paymentPayload": payload.model_dump(mode="json", by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(mode="json", by_alias=True, exclude_none=True)}


def test_valid_payment_verifies_and_settles_exactly_the_price(api, sign, requirements, funded_usdc, payer, provider):
    payload = sign(requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)

    verdict = api.post("/verify", json=settle_body(payload, requirements)).json()
    assert verdict == {"isValid": True, "payer": payer.address}
    assert (funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)) == before  # verify moves nothing

    result = api.post("/settle", json=settle_body(payload, requirements)).json()
    assert result["success"] is True and result["status"] == "settled" and result["transaction"].startswith("0x")
    assert result["paymentId"] == payload.payload.authorization.nonce
    assert funded_usdc.balanceOf(payer) == before[0] - PRICE
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE
    status = api.get(f"/payments/{result['paymentId']}").json()
    assert status["status"] == "settled" and status["txHash"] == result["transaction"]
    assert status["value"] == str(PRICE)


def _other_requirements(requirements, **changes):
    return requirements.model_copy(update=changes)


CASES = {
    "underpaid": (dict(value=PRICE - 1), "invalid_exact_evm_payload_authorization_value_mismatch"),
    "overpaid": (dict(value=PRICE + 1), "invalid_exact_evm_payload_authorization_value_mismatch"),
    "wrong_recipient": (dict(to="0x" + "11" * 20), "invalid_exact_evm_payload_recipient_mismatch"),
    "not_yet_valid": (dict(valid_after="future"), "invalid_exact_evm_payload_authorization_valid_after"),
    "already_expired": (dict(valid_before="past"), "invalid_exact_evm_payload_authorization_valid_before"),
    "expires_too_soon": (dict(valid_before="soon"), "invalid_exact_evm_payload_authorization_valid_before"),
    "bad_signature": (dict(key="stranger"), "invalid_exact_evm_payload_signature"),
    "signed_other_value": (dict(signed_value=1), "invalid_exact_evm_payload_signature"),
    "wrong_network_in_payload": (dict(accepted_network="eip155:25"), "network_mismatch"),
    "unserved_network": (dict(requirements_network="eip155:25"), "unsupported_network"),
    "unsupported_scheme": (dict(requirements_scheme="upto"), "unsupported_scheme"),
    "wrong_asset_in_payload": (dict(accepted_asset="0x" + "22" * 20), "asset_mismatch"),
    "unsettled_asset": (dict(requirements_asset="0x" + "22" * 20), "unsupported_asset"),
    "wrong_token_name": (dict(extra_name="USD Coin"), "invalid_exact_evm_token_name_mismatch"),
    "insufficient_funds": (dict(key="unfunded"), "invalid_exact_evm_insufficient_balance"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_payment_gets_its_reason_and_moves_nothing(case, api, sign, requirements, funded_usdc, payer,
                                                           provider, chain):
    changes, reason = CASES[case]
    now = chain.pending_timestamp
    kwargs = {}
    reqs = requirements
    for name, value in changes.items():
        if name == "valid_after":
            kwargs["valid_after"] = now + 3600
        elif name == "valid_before":
            kwargs["valid_before"] = {"past": now - 10, "soon": now + 2}[value]
        elif name == "key":
            if value == "stranger":  # signed by someone else in the name of the payer
                kwargs["key"] = None
                kwargs["_forge"] = True
            else:
                kwargs["key"] = local_key(9)
        elif name.startswith("accepted_"):
            field = name.split("_", 1)[1]
            kwargs["accepted"] = _other_requirements(requirements, **{field: value})
        elif name.startswith("requirements_"):
            field = name.split("_", 1)[1]
            reqs = _other_requirements(requirements, **{field: value})
            kwargs.setdefault("accepted", reqs)
        elif name == "extra_name":
            reqs = _other_requirements(requirements, extra=Extra(name=value, version="1"))
            kwargs["accepted"] = reqs
        else:
            kwargs[name] = value
    forge = kwargs.pop("_forge", False)
    payload = sign(reqs, **kwargs)
    if forge:  # the payer's authorization, signed by another key
        forged = sign(reqs, key=local_key(8))
        auth = payload.payload.authorization
        payload = payload.model_copy(update={"payload": payload.payload.model_copy(
            update={"signature": forged.payload.signature, "authorization": auth})})
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)

    verdict = api.post("/verify", json=settle_body(payload, reqs)).json()
    result = api.post("/settle", json=settle_body(payload, reqs)).json()

    assert verdict["isValid"] is False and verdict["invalidReason"] == reason
    assert result["success"] is False and result["errorReason"] == reason and result["transaction"] == ""
    assert (funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)) == before


def test_authorization_expires_as_the_chain_moves(api, sign, requirements, funded_usdc, provider, chain):
    payload = sign(requirements, valid_before=chain.pending_timestamp + 60)
    before = funded_usdc.balanceOf(provider)
    chain.mine(timestamp=chain.pending_timestamp + 120)

    result = api.post("/settle", json=settle_body(payload, requirements)).json()

    assert result["errorReason"] == "invalid_exact_evm_payload_authorization_valid_before"
    assert funded_usdc.balanceOf(provider) == before


def test_settling_twice_moves_money_once_and_answers_the_same(api, sign, requirements, funded_usdc, payer):
    payload = sign(requirements)
    before = funded_usdc.balanceOf(payer)

    first = api.post("/settle", json=settle_body(payload, requirements)).json()
    second = api.post("/settle", json=settle_body(payload, requirements)).json()

    assert first["success"] and second["success"] and first["transaction"] == second["transaction"]
    assert funded_usdc.balanceOf(payer) == before - PRICE


def test_authorization_bound_to_another_request_is_refused(api, sign, requirements, funded_usdc, payer):
    payload = sign(requirements)
    api.post("/settle", json=settle_body(payload, requirements))
    other = requirements.model_copy(update={"max_timeout_seconds": 60})  # another seller request

    result = api.post("/settle", json=settle_body(payload.model_copy(update={"accepted": other}), other)).json()

    assert result["success"] is False and result["errorReason"] == "invalid_exact_evm_nonce_already_used"
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - PRICE


def test_twenty_concurrent_settles_of_one_authorization_move_funds_once(facilitator, sign, requirements,
                                                                        funded_usdc, payer, provider, w3):
    payload = sign(requirements)
    payment = Payment.from_v2(payload, requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)
    block_before = w3.eth.block_number

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _i: facilitator.settle(payment), range(20)))

    assert {r.status for r in results} == {Status.SETTLED}
    assert len({r.transaction for r in results}) == 1
    assert funded_usdc.balanceOf(payer) == before[0] - PRICE
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE
    assert w3.eth.block_number == block_before + 1  # exactly one transaction was sent


class FlakyBackend(Web3Backend):
    """The receipt wait times out (the RPC hiccups after broadcast)."""

    flaky = True

    def wait(self, tx_hash, timeout):
        if self.flaky and timeout > 0:
            raise TimeoutError("rpc timeout")
        return super().wait(tx_hash, timeout)


def test_rpc_timeout_answers_pending_and_is_reconciled_from_the_chain(w3, relayer_key, funded_usdc, sign,
                                                                      requirements, payer, facilitator):
    from keeper.facilitator import create_app

    facilitator.backend = FlakyBackend(w3, relayer_key)
    api = TestClient(create_app(facilitator))
    payload = sign(requirements)

    result = api.post("/settle", json=settle_body(payload, requirements)).json()
    assert result["success"] is False and result["status"] == "pending"
    assert result["errorReason"] == "settlement_pending"

    # The client polls the status endpoint; it closes the intent once the receipt is on chain (the
    # node may need a moment to index it), never by guessing.
    for _ in range(100):
        status = api.get(f"/payments/{result['paymentId']}").json()
        if status["status"] != "pending":
            break
        time.sleep(0.05)
    assert status["status"] == "settled" and status["txHash"] == result["transaction"]
    again = api.post("/settle", json=settle_body(payload, requirements)).json()
    assert again["success"] is True and again["transaction"] == result["transaction"]
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - PRICE


def test_unknown_payment_id_is_404_and_bad_id_is_400(api):
    assert api.get("/payments/0x" + "00" * 32).status_code == 404
    assert api.get("/payments/nope").status_code == 400


def test_supported_lists_exact_network_ids(api, relayer_key):
    body = api.get("/supported").json()
    assert {(k["x402Version"], k["network"]) for k in body["kinds"]} == {(1, "cronos-testnet"), (2, "eip155:338")}
    assert body["signers"] == {"eip155:*": [relayer_key.address]}
    assert api.get("/v2/x402/supported").json()["kinds"] == [
        {"x402Version": 1, "scheme": "exact", "network": "cronos-testnet"}]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"x402Version": 3}', b'{"x402Version": 2}',
    b'{"x402Version": 2, "paymentPayload": {"x402Version": 2, "payload": {}, "accepted": {}}, '
    b'"paymentRequirements": {}}',
    b"{" + b'"a": 1,' * 20000 + b'"x402Version": 2}',
])
def test_malformed_facilitator_request_is_400_with_a_reason(api, body):
    reply = api.post("/settle", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["invalidReason"] == "invalid_payload"


class ManualMining:
    """Anvil without automine for the body of a `with`: sent transactions wait in the pool."""

    def __init__(self, w3):
        self.w3 = w3

    def rpc(self, method, *params):
        reply = self.w3.provider.make_request(method, list(params))
        assert "error" not in reply, reply
        return reply.get("result")

    def __enter__(self):
        self.rpc("evm_setAutomine", False)
        return self

    def __exit__(self, *exc):
        self.rpc("evm_setAutomine", True)


def stranded_settlement(w3, facilitator, relayer_key, payment, *, take_nonce: bool):
    """Settle while nothing is mined, so the answer is pending; then the node forgets the
    transaction (`anvil_dropTransaction`, as a restarted or evicting node does) and, with
    `take_nonce`, another transaction of the same relayer key is mined under its nonce (a second
    keeper, a hand-sent transaction). Returns the pending intent."""
    facilitator.receipt_timeout = 0.2
    with ManualMining(w3) as mining:
        result = facilitator.settle(payment)
        assert result.status is Status.PENDING
        intent = facilitator.store.get(payment.key)
        nonce = w3.eth.get_transaction(intent.tx_hash)["nonce"]
        mining.rpc("anvil_dropTransaction", intent.tx_hash)
        if take_nonce:
            other = relayer_key.sign_transaction({"to": relayer_key.address, "value": 0, "gas": 21_000, "nonce": nonce,
                                                  "gasPrice": w3.eth.gas_price, "chainId": w3.eth.chain_id})
            w3.eth.send_raw_transaction(other.raw_transaction)
        mining.rpc("evm_mine")
    assert w3.eth.get_transaction_count(relayer_key.address) == nonce + (1 if take_nonce else 0)
    return intent


def test_a_dropped_settlement_is_sent_again_unchanged_while_its_nonce_is_free(w3, facilitator, relayer_key, sign,
                                                                               requirements, funded_usdc, payer,
                                                                               provider):
    payment = Payment.from_v2(sign(requirements), requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=False)
    assert funded_usdc.balanceOf(provider) == before[1]  # nothing mined yet

    closed = facilitator.reconcile(intent, timeout=10)

    assert closed.status is Status.SETTLED and closed.tx_hash == intent.tx_hash  # the same transaction
    assert funded_usdc.balanceOf(payer) == before[0] - PRICE
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE


def test_a_settlement_whose_relayer_nonce_went_elsewhere_is_sent_again_and_pays_once(w3, facilitator, relayer_key,
                                                                                    sign, requirements, funded_usdc,
                                                                                    payer, provider):
    payment = Payment.from_v2(sign(requirements), requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=True)

    closed = facilitator.reconcile(intent, timeout=10)

    assert closed.status is Status.SETTLED and closed.tx_hash != intent.tx_hash
    assert w3.eth.get_transaction_receipt(closed.tx_hash)["status"] == 1
    assert funded_usdc.balanceOf(payer) == before[0] - PRICE
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE
    again = facilitator.settle(payment)  # the client retries: the settled intent answers, nothing is sent
    assert again.status is Status.SETTLED and again.transaction == closed.tx_hash
    assert facilitator.reconcile(closed) == closed
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE


def test_a_superseded_settlement_that_expired_meanwhile_fails_and_moves_nothing(w3, chain, facilitator, relayer_key,
                                                                                sign, requirements, funded_usdc,
                                                                                payer, provider):
    payment = Payment.from_v2(sign(requirements), requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=True)
    w3.provider.make_request("evm_increaseTime", [400])  # past validBefore (now + 300)
    w3.provider.make_request("evm_mine", [])

    closed = facilitator.reconcile(intent, timeout=10)

    assert closed.status is Status.FAILED
    assert closed.error == "invalid_exact_evm_payload_authorization_valid_before"
    assert (funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)) == before


def test_a_transaction_is_swapped_only_for_the_one_it_replaces(tmp_path):
    from keeper.intents import Intent, IntentKey, IntentStore

    store = IntentStore(tmp_path / "intents.sqlite")
    key = IntentKey.of("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 32)
    store.claim(Intent(key=key, request_hash="0x" + "44" * 32, kind="transfer", payee="0x" + "55" * 20, value=1,
                       network="eip155:338", service_id=None, status=Status.PENDING))
    assert store.record_tx(key, "0xaa", "0x01")

    assert not store.replace_tx(key, "0xbb", "0xcc", "0x02")  # not the transaction it holds
    assert store.replace_tx(key, "0xaa", "0xcc", "0x02")
    assert (store.get(key).tx_hash, store.get(key).raw_tx) == ("0xcc", "0x02")
    store.finish(key, Status.SETTLED)
    assert not store.replace_tx(key, "0xcc", "0xdd", "0x03")  # a closed intent keeps its transaction


def test_reconcile_never_fails_an_intent_whose_transaction_was_stored_after_it_looked(facilitator, funded_usdc,
                                                                                      payer):
    from keeper.facilitator import reconcile_intent
    from keeper.intents import Intent, IntentKey

    key = IntentKey.of(funded_usdc.address, payer.address, "0x" + "5a" * 32)
    facilitator.store.claim(Intent(key=key, request_hash="0x" + "44" * 32, kind="transfer", payee=payer.address,
                                   value=PRICE, network="eip155:338", service_id=None, status=Status.PENDING))
    seen = facilitator.store.get(key)  # the reconciler reads: claimed, not signed yet ...
    assert facilitator.store.record_tx(key, "0x" + "ab" * 32, "0x01")  # ... the settle stores its transaction

    closed = reconcile_intent(facilitator.backend, facilitator.store, seen, unsigned_grace=0)

    assert closed.status is Status.PENDING and closed.tx_hash == "0x" + "ab" * 32  # not "not broadcast"


def test_a_service_id_beyond_64_bits_is_refused_as_malformed(api, sign, requirements, funded_usdc, payer):
    """The router binds an authorization to its service through the nonce's top 64 bits."""
    body = settle_body(sign(requirements), requirements)
    for holder in (body["paymentRequirements"], body["paymentPayload"]["accepted"]):
        holder["extra"]["serviceId"] = 2**64

    reply = api.post("/settle", json=body)

    assert reply.status_code == 400 and reply.json()["invalidReason"] == "invalid_payload"
    assert funded_usdc.balanceOf(payer) == 100 * 10**6


def test_a_body_longer_than_it_may_be_is_refused_unread(api):
    reply = api.post("/settle", content=b" " * (64 * 1024 + 1), headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "at most" in reply.json()["invalidMessage"]


def test_a_body_nested_too_deeply_is_400_not_a_crash(api, python_recursion_limit):
    reply = api.post("/settle", content=b"[" * 5000, headers={"content-type": "application/json"})

    assert reply.status_code == 400 and reply.json()["invalidReason"] == "invalid_payload"


def test_a_settlement_front_run_by_another_relayer_is_settled_by_that_transaction(w3, facilitator, relayer_key,
                                                                                  sign, requirements, funded_usdc,
                                                                                  payer, provider):
    """A mempool watcher copies the signed authorization and gets it mined first: the money moved
    exactly as signed, so the payment is settled (by their transaction), not failed."""
    from keeper.facilitator import Web3Backend
    from paygent.localchain import test_key as key_of

    payment = Payment.from_v2(sign(requirements), requirements)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=False)  # ours: dropped, unmined
    watcher = Web3Backend(w3, key_of(8))  # another relayer sends the very same call first
    theirs = watcher.resend(intent.raw_tx, lambda _h, _raw: True)
    assert w3.eth.wait_for_transaction_receipt(theirs)["status"] == 1
    w3.eth.send_raw_transaction(intent.raw_tx)  # ours arrives later and reverts: authorization used
    assert w3.eth.wait_for_transaction_receipt(intent.tx_hash)["status"] == 0

    closed = facilitator.reconcile(intent, timeout=10)

    assert closed.status is Status.SETTLED and closed.tx_hash == theirs
    assert funded_usdc.balanceOf(payer) == before[0] - PRICE
    assert funded_usdc.balanceOf(provider) == before[1] + PRICE


def test_a_cancelled_authorization_fails_as_used_not_settled(w3, facilitator, relayer_key, sign, requirements,
                                                             funded_usdc, payer, payer_key, domain, monkeypatch):
    from eth_hash.auto import keccak

    payment = Payment.from_v2(sign(requirements), requirements)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=False)
    nonce = bytes.fromhex(payment.nonce[2:])
    typehash = keccak(b"CancelAuthorization(address authorizer,bytes32 nonce)")  # EIP-3009
    struct = keccak(typehash + bytes(12) + bytes.fromhex(payer.address[2:]) + nonce)
    signature = LocalSigner(payer_key).sign_digest(keccak(b"\x19\x01" + domain.separator + struct))
    funded_usdc.cancelAuthorization(payer.address, nonce, signature[64], signature[:32], signature[32:64],
                                    sender=payer)
    w3.eth.send_raw_transaction(intent.raw_tx)
    assert w3.eth.wait_for_transaction_receipt(intent.tx_hash)["status"] == 0

    # Used, but not by a transaction that paid as signed: pending for a grace period (a lagging
    # node's logs), then failed as used.
    assert facilitator.reconcile(intent, timeout=10).status is Status.PENDING
    monkeypatch.setattr("keeper.facilitator.USE_LOOKUP_GRACE", 0.0)
    closed = facilitator.reconcile(facilitator.store.get(intent.key), timeout=10)

    assert closed.status is Status.FAILED and closed.error == "invalid_exact_evm_nonce_already_used"
    assert funded_usdc.balanceOf(payer) == 100 * 10**6


def test_a_nonce_the_payer_spent_on_another_authorization_is_not_taken_as_payment(w3, facilitator, relayer_key,
                                                                                  sign, requirements, funded_usdc,
                                                                                  payer, provider, accounts,
                                                                                  monkeypatch):
    """The payer signs our payment and, under the same nonce, a transfer to themselves that they get
    mined first: the nonce is used, but not by this authorization — failed, never settled."""
    payload = sign(requirements)
    payment = Payment.from_v2(payload, requirements)
    nonce = bytes.fromhex(payment.nonce[2:])
    decoy = sign(requirements, to=payer.address, value=0, nonce=nonce).payload
    before = funded_usdc.balanceOf(provider)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=False)
    a, sig = decoy.authorization, bytes.fromhex(decoy.signature[2:])
    funded_usdc.transferWithAuthorization(a.from_, a.to, int(a.value), int(a.valid_after), int(a.valid_before),
                                          nonce, sig[64], sig[:32], sig[32:64], sender=accounts[9])
    w3.eth.send_raw_transaction(intent.raw_tx)
    assert w3.eth.wait_for_transaction_receipt(intent.tx_hash)["status"] == 0
    monkeypatch.setattr("keeper.facilitator.USE_LOOKUP_GRACE", 0.0)

    closed = facilitator.reconcile(intent, timeout=10)

    assert closed.status is Status.FAILED and closed.error == "invalid_exact_evm_nonce_already_used"
    assert funded_usdc.balanceOf(provider) == before  # nothing was paid


def test_a_lookup_that_fails_leaves_the_payment_pending_not_failed(w3, facilitator, relayer_key, sign, requirements,
                                                                  funded_usdc, provider, monkeypatch):
    from keeper.facilitator import Web3Backend
    from paygent.localchain import test_key as key_of

    payment = Payment.from_v2(sign(requirements), requirements)
    intent = stranded_settlement(w3, facilitator, relayer_key, payment, take_nonce=False)
    theirs = Web3Backend(w3, key_of(8)).resend(intent.raw_tx, lambda _h, _raw: True)
    w3.eth.send_raw_transaction(intent.raw_tx)
    assert w3.eth.wait_for_transaction_receipt(intent.tx_hash)["status"] == 0

    def refused(*_args):
        raise ValueError("query returned more than 10000 results")  # what public RPCs answer

    with monkeypatch.context() as patch:
        patch.setattr(facilitator.backend, "authorization_use", refused)
        assert facilitator.reconcile(intent).status is Status.PENDING  # unknown: not decided
    closed = facilitator.reconcile(facilitator.store.get(intent.key))
    assert closed.status is Status.SETTLED and closed.tx_hash == theirs


def test_one_decoy_and_one_real_payment_in_one_transaction_pay_only_the_real_one(w3, facilitator, relayer_key,
                                                                                 sign, requirements, funded_usdc,
                                                                                 payer, provider, project, owner,
                                                                                 monkeypatch):
    """The payer front-runs two of our settlements with one multicall: under nonce N1 a transfer to
    themselves, under N2 the real payment. N2 is paid; N1 is not, though a Transfer to the seller of
    the same value sits in the same transaction."""
    multicall = owner.deploy(project.Multicall3)
    first = Payment.from_v2(sign(requirements), requirements)
    second = Payment.from_v2(sign(requirements), requirements)
    n1, n2 = (bytes.fromhex(p.nonce[2:]) for p in (first, second))
    decoy = sign(requirements, to=payer.address, value=0, nonce=n1).payload
    stuck = [stranded_settlement(w3, facilitator, relayer_key, p, take_nonce=False) for p in (first, second)]
    before = funded_usdc.balanceOf(provider)

    def call(payload, nonce):
        a, sig = payload.authorization, bytes.fromhex(payload.signature[2:])
        return (funded_usdc.address, bytes(funded_usdc.transferWithAuthorization.encode_input(
            a.from_, a.to, int(a.value), int(a.valid_after), int(a.valid_before), nonce, sig[64], sig[:32],
            sig[32:64])))

    real = second.payload  # the genuine authorization of the second payment
    multicall.aggregate([call(decoy, n1), call(real, n2)], sender=owner)
    monkeypatch.setattr("keeper.facilitator.USE_LOOKUP_GRACE", 0.0)

    # Our two stranded transactions share a relayer nonce (each was dropped): reconcile sends one
    # again (it reverts: used), and the other once its nonce is gone (it would revert: used).
    for _ in range(3):
        results = [facilitator.reconcile(facilitator.store.get(i.key), timeout=5) for i in stuck]
        if all(r.status is not Status.PENDING for r in results):
            break

    assert [r.status for r in results] == [Status.FAILED, Status.SETTLED]
    assert funded_usdc.balanceOf(provider) == before + PRICE
