"""FiatTokenLocal: the USDC.e stand-in behaves like Circle's FiatToken v2.2 where Paygent relies on it.

Signatures are made in Python with eth_account from the *spec* (domain name "Bridged USDC (Stargate)",
version "1", chain id 338, the token address; the EIP-3009 / EIP-2612 type strings), never from values
read back from the contract, so a signer written from the spec is proven to work against the token.
Revert strings are asserted byte for byte: tools map them to error codes.
"""

from __future__ import annotations

import os

import pytest
from ape import reverts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from paygent import localchain

NAME = "Bridged USDC (Stargate)"
VERSION = "1"
CHAIN_ID = 338
TESTNET_USDC = to_checksum_address("0xc01efAaF7C5C61bEbFAeb358E1161b537b8bC0e0")
ZERO = "0x0000000000000000000000000000000000000000"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ONE = 10**6
HOUR = 3600

# FiatToken revert strings (facts carried over from Circle's FiatToken v2.2).
USED = "FiatTokenV2: authorization is used or canceled"
EXPIRED = "FiatTokenV2: authorization is expired"
NOT_YET_VALID = "FiatTokenV2: authorization is not yet valid"
INVALID_SIGNATURE = "FiatTokenV2: invalid signature"
NOT_PAYEE = "FiatTokenV2: caller must be the payee"
EXCEEDS_BALANCE = "ERC20: transfer amount exceeds balance"
EXCEEDS_ALLOWANCE = "ERC20: transfer amount exceeds allowance"
PERMIT_EXPIRED = "FiatTokenV2: permit is expired"
PERMIT_INVALID = "EIP2612: invalid signature"

AUTH_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
TYPES = {
    "TransferWithAuthorization": AUTH_FIELDS,
    "ReceiveWithAuthorization": AUTH_FIELDS,
    "CancelAuthorization": [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}
TYPE_STRINGS = {
    "TransferWithAuthorization": "TransferWithAuthorization(address from,address to,uint256 value,"
    "uint256 validAfter,uint256 validBefore,bytes32 nonce)",
    "ReceiveWithAuthorization": "ReceiveWithAuthorization(address from,address to,uint256 value,"
    "uint256 validAfter,uint256 validBefore,bytes32 nonce)",
    "CancelAuthorization": "CancelAuthorization(address authorizer,bytes32 nonce)",
    "Permit": "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)",
}


# ------------------------------------------------------------------------------------------------
# Helpers: a signer written from the spec


def domain(verifying_contract, *, name=NAME, version=VERSION, chain_id=CHAIN_ID) -> dict:
    return {"name": name, "version": version, "chainId": chain_id, "verifyingContract": str(verifying_contract)}


def sign(key, primary: str, message: dict, *, at, **domain_overrides):
    """Sign `message` of EIP-712 type `primary` for the token at `at` (domain from the spec)."""
    full = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: TYPES[primary],
        },
        "primaryType": primary,
        "domain": domain(at, **domain_overrides),
        "message": message,
    }
    return Account.sign_message(encode_typed_data(full_message=full), key.key)


def vrs(signed) -> tuple[int, bytes, bytes]:
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def packed(v: int, r: int, s: int) -> bytes:
    """65-byte r || s || v, the `bytes signature` form."""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def high_s_twin(signed) -> tuple[int, int, int]:
    """The malleable twin (v flipped, s -> n - s): ecrecover accepts it, EIP-2 forbids it."""
    return (55 - signed.v), signed.r, SECP256K1_N - signed.s


def new_nonce() -> bytes:
    return os.urandom(32)


class Auth:
    """An EIP-3009 authorization and its signature, with the argument lists for both overloads."""

    def __init__(self, token, key, primary="TransferWithAuthorization", *, to, value, valid_after=0,
                 valid_before=2**48, nonce=None, signer=None, at=None, **domain_overrides):
        self.frm = key.address
        self.to = str(to)
        self.value = value
        self.valid_after = valid_after
        self.valid_before = valid_before
        self.nonce = nonce if nonce is not None else new_nonce()
        message = {"from": self.frm, "to": self.to, "value": value, "validAfter": valid_after,
                   "validBefore": valid_before, "nonce": self.nonce}
        self.signed = sign(signer or key, primary, message, at=at or token.address, **domain_overrides)

    def fields(self):
        return [self.frm, self.to, self.value, self.valid_after, self.valid_before, self.nonce]

    def args(self, form: str):
        if form == "vrs":
            return [*self.fields(), *vrs(self.signed)]
        return [*self.fields(), packed(self.signed.v, self.signed.r, self.signed.s)]


FORMS = ["vrs", "bytes"]


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def keys(accounts):
    """eth_account keys of the ape test accounts (ape's test mnemonic, default HD path)."""
    result = {}
    for i in range(5):
        key = localchain.test_key(i)
        assert key.address == accounts[i].address, "ape's test mnemonic / HD path changed"
        result[key.address] = key
    return result


@pytest.fixture
def payer_key(keys, payer):
    return keys[payer.address]


@pytest.fixture
def funded(usdc, owner, payer):
    """The payer holds 100 USDC.e."""
    usdc.mint(payer, 100 * ONE, sender=owner)
    return usdc


@pytest.fixture
def now(chain):
    """The timestamp the next transaction will be mined at (fixed by setting it explicitly)."""
    t = chain.pending_timestamp + 10
    chain.pending_timestamp = t
    return t


def separator(name, version, chain_id, address) -> bytes:
    typehash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    return keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                         [typehash, keccak(text=name), keccak(text=version), chain_id, str(address)]))


# ------------------------------------------------------------------------------------------------
# Metadata, domain, initialisation


def test_metadata_is_usdc_e(usdc, owner):
    assert usdc.name() == NAME
    assert usdc.symbol() == "USDC.e"
    assert usdc.decimals() == 6
    assert usdc.version() == VERSION
    assert usdc.owner() == owner
    assert usdc.totalSupply() == 0


@pytest.mark.parametrize("primary", list(TYPE_STRINGS))
def test_typehashes_are_the_eip_3009_and_2612_type_strings(usdc, primary):
    getter = {
        "TransferWithAuthorization": usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
        "ReceiveWithAuthorization": usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
        "CancelAuthorization": usdc.CANCEL_AUTHORIZATION_TYPEHASH,
        "Permit": usdc.PERMIT_TYPEHASH,
    }[primary]
    assert bytes(getter()) == keccak(text=TYPE_STRINGS[primary])


def test_domain_separator_is_name_version_chain_id_and_address(usdc, chain):
    assert chain.chain_id == CHAIN_ID
    expected = separator(NAME, VERSION, CHAIN_ID, usdc.address)
    assert bytes(usdc.DOMAIN_SEPARATOR()) == expected
    # ... and it is what eth_account hashes for the spec's domain.
    signable = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "CancelAuthorization": TYPES["CancelAuthorization"]},
        "primaryType": "CancelAuthorization",
        "domain": domain(usdc.address),
        "message": {"authorizer": ZERO, "nonce": b"\0" * 32},
    })
    assert signable.header == expected


def test_eip712_domain_describes_the_signing_domain(usdc):
    d = usdc.eip712Domain()
    assert bytes(d.fields) == b"\x0f"  # name, version, chainId, verifyingContract
    assert (d.name_, d.version_, d.chainId, d.verifyingContract) == (NAME, VERSION, CHAIN_ID, usdc.address)
    assert bytes(d.salt) == b"\0" * 32
    assert list(d.extensions) == []


def test_initialize_sets_metadata_and_emits_initialized(project, owner, stranger):
    token = owner.deploy(project.FiatTokenLocal)
    receipt = token.initialize("Some Dollar", "SD", 2, stranger, sender=owner)
    assert receipt.events == [token.Initialized("Some Dollar", "SD", 2, stranger)]
    assert (token.name(), token.symbol(), token.decimals(), token.owner()) == ("Some Dollar", "SD", 2, stranger)
    assert bytes(token.DOMAIN_SEPARATOR()) == separator("Some Dollar", VERSION, CHAIN_ID, token.address)


def test_initialize_twice_reverts(usdc, owner, stranger):
    with reverts("FiatToken: contract is already initialized"):
        usdc.initialize("Other", "O", 18, stranger, sender=stranger)
    with reverts("FiatToken: contract is already initialized"):
        usdc.initialize(NAME, "USDC.e", 6, owner, sender=owner)
    assert usdc.owner() == owner


def test_initialize_rejects_zero_owner(project, owner):
    token = owner.deploy(project.FiatTokenLocal)
    with reverts("FiatToken: new owner is the zero address"):
        token.initialize(NAME, "USDC.e", 6, ZERO, sender=owner)


def test_copy_placed_at_testnet_address_signs_for_that_address(project, chain, owner, payer, keys, stranger):
    template = owner.deploy(project.FiatTokenLocal)
    template.initialize(NAME, "USDC.e", 6, owner, sender=owner)
    code = chain.provider.get_code(template.address)
    chain.provider.make_request("anvil_setCode", [TESTNET_USDC, "0x" + bytes(code).hex()])
    placed = project.FiatTokenLocal.at(TESTNET_USDC)

    # Storage did not travel with the code: the copy starts uninitialised and is set up in place.
    assert placed.owner() == ZERO
    placed.initialize(NAME, "USDC.e", 6, owner, sender=owner)
    assert bytes(placed.DOMAIN_SEPARATOR()) == separator(NAME, VERSION, CHAIN_ID, TESTNET_USDC)
    assert placed.DOMAIN_SEPARATOR() != template.DOMAIN_SEPARATOR()
    assert placed.eip712Domain().verifyingContract == TESTNET_USDC

    placed.mint(payer, 10 * ONE, sender=owner)
    key = keys[payer.address]
    # A signature bound to the template's address does not move funds at the placed copy ...
    wrong = Auth(placed, key, to=stranger, value=ONE, at=template.address)
    with reverts(INVALID_SIGNATURE):
        placed.transferWithAuthorization(*wrong.args("vrs"), sender=stranger)
    # ... one bound to the testnet address does.
    auth = Auth(placed, key, to=stranger, value=ONE)
    receipt = placed.transferWithAuthorization(*auth.args("vrs"), sender=stranger)
    assert receipt.events == [placed.AuthorizationUsed(payer, auth.nonce), placed.Transfer(payer, stranger, ONE)]
    assert placed.balanceOf(stranger) == ONE


# ------------------------------------------------------------------------------------------------
# ERC-20


def test_owner_mints_new_supply_with_a_transfer_from_zero(usdc, owner, payer):
    receipt = usdc.mint(payer, 5 * ONE, sender=owner)
    assert receipt.events == [usdc.Transfer(ZERO, payer, 5 * ONE)]
    assert usdc.balanceOf(payer) == 5 * ONE
    assert usdc.totalSupply() == 5 * ONE


@pytest.mark.parametrize(
    ("who", "to", "amount", "message"),
    [
        ("stranger", "payer", ONE, "FiatToken: caller is not a minter"),
        ("payer", "payer", ONE, "FiatToken: caller is not a minter"),
        ("owner", "zero", ONE, "FiatToken: mint to the zero address"),
        ("owner", "payer", 0, "FiatToken: mint amount not greater than 0"),
    ],
)
def test_mint_reverts_unless_owner_mints_a_positive_amount_to_an_account(usdc, owner, payer, stranger, who, to,
                                                                         amount, message):
    roles = {"owner": owner, "payer": payer, "stranger": stranger, "zero": ZERO}
    with reverts(message):
        usdc.mint(roles[to], amount, sender=roles[who])
    assert usdc.totalSupply() == 0


def test_transfer_moves_balance_and_emits_transfer(funded, payer, stranger):
    receipt = funded.transfer(stranger, 30 * ONE, sender=payer)
    assert receipt.events == [funded.Transfer(payer, stranger, 30 * ONE)]
    assert receipt.return_value is True
    assert funded.balanceOf(payer) == 70 * ONE
    assert funded.balanceOf(stranger) == 30 * ONE
    assert funded.totalSupply() == 100 * ONE


def test_transfer_of_whole_balance_succeeds_one_more_unit_reverts(funded, payer, stranger):
    with reverts(EXCEEDS_BALANCE):
        funded.transfer(stranger, 100 * ONE + 1, sender=payer)
    funded.transfer(stranger, 100 * ONE, sender=payer)
    assert funded.balanceOf(payer) == 0


def test_transfer_to_zero_address_reverts(funded, payer):
    with reverts("ERC20: transfer to the zero address"):
        funded.transfer(ZERO, ONE, sender=payer)


def test_approve_sets_allowance_and_emits_approval(usdc, payer, stranger):
    receipt = usdc.approve(stranger, 7 * ONE, sender=payer)
    assert receipt.events == [usdc.Approval(payer, stranger, 7 * ONE)]
    assert usdc.allowance(payer, stranger) == 7 * ONE
    usdc.approve(stranger, 0, sender=payer)
    assert usdc.allowance(payer, stranger) == 0


def test_approve_zero_spender_reverts(usdc, payer):
    with reverts("ERC20: approve to the zero address"):
        usdc.approve(ZERO, ONE, sender=payer)


def test_transfer_from_spends_allowance(funded, payer, stranger, owner):
    funded.approve(stranger, 10 * ONE, sender=payer)
    receipt = funded.transferFrom(payer, owner, 4 * ONE, sender=stranger)
    assert receipt.events == [funded.Transfer(payer, owner, 4 * ONE)]
    assert funded.allowance(payer, stranger) == 6 * ONE
    assert funded.balanceOf(owner) == 4 * ONE


def test_transfer_from_above_allowance_reverts(funded, payer, stranger, owner):
    funded.approve(stranger, ONE, sender=payer)
    with reverts(EXCEEDS_ALLOWANCE):
        funded.transferFrom(payer, owner, ONE + 1, sender=stranger)


def test_transfer_from_above_balance_reverts(funded, payer, stranger, owner):
    funded.approve(stranger, 1000 * ONE, sender=payer)
    with reverts(EXCEEDS_BALANCE):
        funded.transferFrom(payer, owner, 100 * ONE + 1, sender=stranger)


def test_maximum_allowance_is_still_spent_like_fiat_token(funded, payer, stranger, owner):
    funded.approve(stranger, 2**256 - 1, sender=payer)
    funded.transferFrom(payer, owner, ONE, sender=stranger)
    assert funded.allowance(payer, stranger) == 2**256 - 1 - ONE


# ------------------------------------------------------------------------------------------------
# EIP-2612 permit


def permit_signature(token, key, spender, value, deadline, nonce=None, signer=None):
    message = {"owner": key.address, "spender": str(spender), "value": value,
               "nonce": token.nonces(key.address) if nonce is None else nonce, "deadline": deadline}
    return sign(signer or key, "Permit", message, at=token.address)


@pytest.mark.parametrize("form", FORMS)
def test_permit_sets_allowance_from_a_signature_and_bumps_the_nonce(usdc, payer, payer_key, stranger, owner, now,
                                                                    form):
    signed = permit_signature(usdc, payer_key, stranger, 9 * ONE, now + HOUR)
    sig = vrs(signed) if form == "vrs" else [packed(signed.v, signed.r, signed.s)]
    receipt = usdc.permit(payer, stranger, 9 * ONE, now + HOUR, *sig, sender=owner)
    assert receipt.events == [usdc.Approval(payer, stranger, 9 * ONE)]
    assert usdc.allowance(payer, stranger) == 9 * ONE
    assert usdc.nonces(payer) == 1
    # The same signature cannot be used again: it was made for nonce 0.
    with reverts(PERMIT_INVALID):
        usdc.permit(payer, stranger, 9 * ONE, now + HOUR, *sig, sender=owner)


def test_permit_is_valid_at_its_deadline_and_expired_one_second_later(usdc, chain, payer, payer_key, stranger, now):
    first = permit_signature(usdc, payer_key, stranger, ONE, now)
    usdc.permit(payer, stranger, ONE, now, *vrs(first), sender=stranger)  # mined at exactly `now`
    assert chain.blocks.head.timestamp == now
    second = permit_signature(usdc, payer_key, stranger, 2 * ONE, now)
    chain.pending_timestamp = now + 1
    with reverts(PERMIT_EXPIRED):
        usdc.permit(payer, stranger, 2 * ONE, now, *vrs(second), sender=stranger)
    assert usdc.allowance(payer, stranger) == ONE


def test_permit_signed_by_someone_else_reverts(usdc, payer, keys, stranger, now):
    forged = permit_signature(usdc, keys[stranger.address], stranger, ONE, now + HOUR, nonce=0)
    with reverts(PERMIT_INVALID):
        usdc.permit(payer, stranger, ONE, now + HOUR, *vrs(forged), sender=stranger)
    assert usdc.nonces(payer) == 0


def test_permit_for_a_tampered_value_reverts(usdc, payer, payer_key, stranger, now):
    signed = permit_signature(usdc, payer_key, stranger, ONE, now + HOUR)
    with reverts(PERMIT_INVALID):
        usdc.permit(payer, stranger, ONE + 1, now + HOUR, *vrs(signed), sender=stranger)


# ------------------------------------------------------------------------------------------------
# EIP-3009 transferWithAuthorization / receiveWithAuthorization


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization_is_relayed_by_anyone_and_used_once(funded, payer, payer_key, stranger, owner,
                                                                        form):
    auth = Auth(funded, payer_key, to=owner, value=3 * ONE)
    assert funded.authorizationState(payer, auth.nonce) is False
    receipt = funded.transferWithAuthorization(*auth.args(form), sender=stranger)
    assert receipt.events == [funded.AuthorizationUsed(payer, auth.nonce), funded.Transfer(payer, owner, 3 * ONE)]
    assert funded.balanceOf(owner) == 3 * ONE
    assert funded.balanceOf(payer) == 97 * ONE
    assert funded.authorizationState(payer, auth.nonce) is True
    for other_form in FORMS:
        with reverts(USED):
            funded.transferWithAuthorization(*auth.args(other_form), sender=stranger)


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization_is_submitted_by_the_payee_and_used_once(funded, payer, payer_key, owner, form):
    auth = Auth(funded, payer_key, "ReceiveWithAuthorization", to=owner, value=2 * ONE)
    receipt = funded.receiveWithAuthorization(*auth.args(form), sender=owner)
    assert receipt.events == [funded.AuthorizationUsed(payer, auth.nonce), funded.Transfer(payer, owner, 2 * ONE)]
    assert funded.balanceOf(owner) == 2 * ONE
    assert funded.authorizationState(payer, auth.nonce) is True
    with reverts(USED):
        funded.receiveWithAuthorization(*auth.args(form), sender=owner)


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization_from_anyone_but_the_payee_reverts(funded, payer, payer_key, owner, stranger,
                                                                      form):
    auth = Auth(funded, payer_key, "ReceiveWithAuthorization", to=owner, value=ONE)
    for caller in (stranger, payer):
        with reverts(NOT_PAYEE):
            funded.receiveWithAuthorization(*auth.args(form), sender=caller)
    assert funded.authorizationState(payer, auth.nonce) is False


@pytest.mark.parametrize("method", ["transferWithAuthorization", "receiveWithAuthorization"])
def test_authorization_is_not_yet_valid_at_exactly_valid_after_and_valid_one_second_later(
    funded, chain, payer, payer_key, owner, now, method
):
    primary = "TransferWithAuthorization" if method.startswith("transfer") else "ReceiveWithAuthorization"
    auth = Auth(funded, payer_key, primary, to=owner, value=ONE, valid_after=now, valid_before=now + HOUR)
    with reverts(NOT_YET_VALID):
        getattr(funded, method)(*auth.args("vrs"), sender=owner)  # mined at exactly validAfter
    chain.pending_timestamp = now + 1
    getattr(funded, method)(*auth.args("vrs"), sender=owner)
    assert chain.blocks.head.timestamp == now + 1
    assert funded.balanceOf(owner) == ONE


@pytest.mark.parametrize("method", ["transferWithAuthorization", "receiveWithAuthorization"])
def test_authorization_is_valid_one_second_before_valid_before_and_expired_at_it(
    funded, chain, payer, payer_key, owner, now, method
):
    primary = "TransferWithAuthorization" if method.startswith("transfer") else "ReceiveWithAuthorization"
    last = Auth(funded, payer_key, primary, to=owner, value=ONE, valid_before=now + 1)
    getattr(funded, method)(*last.args("vrs"), sender=owner)  # mined at validBefore - 1
    assert chain.blocks.head.timestamp == now
    late = Auth(funded, payer_key, primary, to=owner, value=ONE, valid_before=now + 1)
    chain.pending_timestamp = now + 1
    with reverts(EXPIRED):
        getattr(funded, method)(*late.args("vrs"), sender=owner)  # mined at exactly validBefore
    assert funded.authorizationState(payer, late.nonce) is False
    assert funded.balanceOf(owner) == ONE


def test_authorization_above_balance_reverts_and_leaves_the_nonce_unused(funded, payer, payer_key, owner):
    auth = Auth(funded, payer_key, to=owner, value=100 * ONE + 1)
    with reverts(EXCEEDS_BALANCE):
        funded.transferWithAuthorization(*auth.args("vrs"), sender=owner)
    assert funded.authorizationState(payer, auth.nonce) is False


def test_a_failed_authorization_can_be_settled_once_funds_arrive(funded, owner, payer, payer_key, stranger):
    auth = Auth(funded, payer_key, to=stranger, value=150 * ONE)
    with reverts(EXCEEDS_BALANCE):
        funded.transferWithAuthorization(*auth.args("bytes"), sender=stranger)
    funded.mint(payer, 50 * ONE, sender=owner)
    funded.transferWithAuthorization(*auth.args("bytes"), sender=stranger)
    assert funded.balanceOf(stranger) == 150 * ONE


def _tampered(case, token, key, keys, owner, stranger):
    """(arguments for transferWithAuthorization, description) for each kind of bad signature."""
    if case == "wrong signer":
        auth = Auth(token, key, to=owner, value=ONE, signer=keys[stranger.address])
        return auth.args("vrs")
    if case == "tampered value":
        args = Auth(token, key, to=owner, value=ONE).args("vrs")
        args[2] = 2 * ONE
        return args
    if case == "tampered recipient":
        args = Auth(token, key, to=owner, value=ONE).args("vrs")
        args[1] = stranger.address
        return args
    if case == "tampered validBefore":
        args = Auth(token, key, to=owner, value=ONE).args("vrs")
        args[4] = args[4] + 1
        return args
    if case == "high-s twin":
        auth = Auth(token, key, to=owner, value=ONE)
        v, r, s = high_s_twin(auth.signed)
        return [*auth.fields(), v, r.to_bytes(32, "big"), s.to_bytes(32, "big")]
    if case == "high-s twin, bytes":
        auth = Auth(token, key, to=owner, value=ONE)
        return [*auth.fields(), packed(*high_s_twin(auth.signed))]
    if case == "receive type signed":
        return Auth(token, key, "ReceiveWithAuthorization", to=owner, value=ONE).args("vrs")
    if case == "other chain id":
        return Auth(token, key, to=owner, value=ONE, chain_id=25).args("vrs")
    if case == "other domain name":
        return Auth(token, key, to=owner, value=ONE, name="USD Coin").args("vrs")
    if case == "other version":
        return Auth(token, key, to=owner, value=ONE, version="2").args("vrs")
    if case == "bad v":
        auth = Auth(token, key, to=owner, value=ONE)
        _, r, s = vrs(auth.signed)
        return [*auth.fields(), 29, r, s]
    if case == "64-byte signature":
        auth = Auth(token, key, to=owner, value=ONE)
        return [*auth.fields(), packed(auth.signed.v, auth.signed.r, auth.signed.s)[:64]]
    if case == "zero signature":
        auth = Auth(token, key, to=owner, value=ONE)
        return [*auth.fields(), 27, b"\0" * 32, b"\0" * 32]
    raise AssertionError(case)


BAD_SIGNATURES = ["wrong signer", "tampered value", "tampered recipient", "tampered validBefore", "high-s twin",
                  "high-s twin, bytes", "receive type signed", "other chain id", "other domain name",
                  "other version", "bad v", "64-byte signature", "zero signature"]


@pytest.mark.parametrize("case", BAD_SIGNATURES)
def test_transfer_with_a_bad_signature_reverts_invalid_signature(funded, payer, payer_key, keys, owner, stranger,
                                                                 case):
    args = _tampered(case, funded, payer_key, keys, owner, stranger)
    with reverts(INVALID_SIGNATURE):
        funded.transferWithAuthorization(*args, sender=stranger)
    assert funded.authorizationState(payer, args[5]) is False
    assert funded.balanceOf(payer) == 100 * ONE


def test_high_s_twin_recovers_the_payer_yet_is_refused():
    """Guards the test above: the twin is a genuine ecrecover-valid signature of the same digest."""
    key = localchain.test_key(3)
    signable = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "CancelAuthorization":
                  TYPES["CancelAuthorization"]},
        "primaryType": "CancelAuthorization",
        "domain": {"name": NAME},
        "message": {"authorizer": key.address, "nonce": b"\1" * 32},
    })
    signed = Account.sign_message(signable, key.key)
    v, r, s = high_s_twin(signed)
    assert s > SECP256K1_N // 2
    assert Account.recover_message(signable, vrs=(v, r, s)) == key.address


def test_receive_with_a_transfer_type_signature_reverts_invalid_signature(funded, payer, payer_key, owner):
    auth = Auth(funded, payer_key, "TransferWithAuthorization", to=owner, value=ONE)
    with reverts(INVALID_SIGNATURE):
        funded.receiveWithAuthorization(*auth.args("bytes"), sender=owner)


def test_timing_is_checked_before_reuse_and_reuse_before_the_signature(funded, chain, payer, payer_key, owner, now):
    """FiatToken's order of checks, which decides which string a tool sees when several apply."""
    used = Auth(funded, payer_key, to=owner, value=ONE)
    funded.transferWithAuthorization(*used.args("vrs"), sender=owner)
    # Reused nonce, signed by the wrong key, and not yet valid: timing wins.
    stale = Auth(funded, payer_key, to=owner, value=ONE, nonce=used.nonce, valid_after=now + HOUR)
    with reverts(NOT_YET_VALID):
        funded.transferWithAuthorization(*stale.args("vrs")[:6], 27, b"\0" * 32, b"\0" * 32, sender=owner)
    # Reused nonce and bad signature: reuse wins.
    again = Auth(funded, payer_key, to=owner, value=ONE, nonce=used.nonce)
    with reverts(USED):
        funded.transferWithAuthorization(*again.args("vrs")[:6], 27, b"\0" * 32, b"\0" * 32, sender=owner)


# ------------------------------------------------------------------------------------------------
# EIP-3009 cancelAuthorization


def cancel_signature(token, key, nonce, signer=None):
    return sign(signer or key, "CancelAuthorization", {"authorizer": key.address, "nonce": nonce}, at=token.address)


@pytest.mark.parametrize("form", FORMS)
def test_canceled_authorization_never_executes(funded, payer, payer_key, owner, stranger, form):
    auth = Auth(funded, payer_key, to=owner, value=ONE)
    receive = Auth(funded, payer_key, "ReceiveWithAuthorization", to=owner, value=ONE, nonce=auth.nonce)
    signed = cancel_signature(funded, payer_key, auth.nonce)
    sig = vrs(signed) if form == "vrs" else [packed(signed.v, signed.r, signed.s)]
    receipt = funded.cancelAuthorization(payer, auth.nonce, *sig, sender=stranger)
    assert receipt.events == [funded.AuthorizationCanceled(payer, auth.nonce)]
    assert funded.authorizationState(payer, auth.nonce) is True
    with reverts(USED):
        funded.transferWithAuthorization(*auth.args("vrs"), sender=stranger)
    with reverts(USED):
        funded.receiveWithAuthorization(*receive.args("bytes"), sender=owner)
    with reverts(USED):
        funded.cancelAuthorization(payer, auth.nonce, *sig, sender=stranger)
    assert funded.balanceOf(owner) == 0


def test_cancel_of_a_used_authorization_reverts(funded, payer, payer_key, owner):
    auth = Auth(funded, payer_key, to=owner, value=ONE)
    funded.transferWithAuthorization(*auth.args("vrs"), sender=owner)
    with reverts(USED):
        funded.cancelAuthorization(payer, auth.nonce, *vrs(cancel_signature(funded, payer_key, auth.nonce)),
                                   sender=payer)


@pytest.mark.parametrize("form", FORMS)
def test_cancel_signed_by_someone_else_reverts(funded, payer, payer_key, keys, stranger, form):
    nonce = new_nonce()
    signed = cancel_signature(funded, payer_key, nonce, signer=keys[stranger.address])
    sig = vrs(signed) if form == "vrs" else [packed(signed.v, signed.r, signed.s)]
    with reverts(INVALID_SIGNATURE):
        funded.cancelAuthorization(payer, nonce, *sig, sender=stranger)
    assert funded.authorizationState(payer, nonce) is False


def test_cancel_high_s_twin_reverts(funded, payer, payer_key):
    nonce = new_nonce()
    v, r, s = high_s_twin(cancel_signature(funded, payer_key, nonce))
    with reverts(INVALID_SIGNATURE):
        funded.cancelAuthorization(payer, nonce, v, r.to_bytes(32, "big"), s.to_bytes(32, "big"), sender=payer)


def test_nonces_are_per_authorizer(funded, owner, payer, payer_key, keys, stranger):
    """The same nonce used by one payer stays free for another."""
    funded.mint(stranger, 10 * ONE, sender=owner)
    nonce = new_nonce()
    funded.transferWithAuthorization(*Auth(funded, payer_key, to=owner, value=ONE, nonce=nonce).args("vrs"),
                                     sender=owner)
    assert funded.authorizationState(stranger, nonce) is False
    funded.transferWithAuthorization(
        *Auth(funded, keys[stranger.address], to=owner, value=ONE, nonce=nonce).args("vrs"), sender=owner
    )
    assert funded.balanceOf(owner) == 2 * ONE


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.integers(min_value=-3, max_value=3), before=st.integers(min_value=-3, max_value=3))
def test_authorization_executes_iff_valid_after_lt_now_lt_valid_before(funded, chain, payer, payer_key, owner,
                                                                       after, before):
    """Hypothesis twin of the two boundary tests: validAfter = now + after, validBefore = now + before."""
    now = chain.blocks.head.timestamp + 1
    chain.pending_timestamp = now
    auth = Auth(funded, payer_key, to=owner, value=1, valid_after=now + after, valid_before=now + before)
    if after < 0 < before:
        funded.transferWithAuthorization(*auth.args("vrs"), sender=owner)
        assert chain.blocks.head.timestamp == now
        assert funded.authorizationState(payer, auth.nonce) is True
    else:
        with reverts(NOT_YET_VALID if after >= 0 else EXPIRED):
            funded.transferWithAuthorization(*auth.args("vrs"), sender=owner)
        assert funded.authorizationState(payer, auth.nonce) is False
