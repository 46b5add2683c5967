"""Chain-free rules: the signer's digest equals eth-account's EIP-712 encoding, signing uses
coincurve, keys never show, and wire parsing is strict."""

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings, strategies as st

from agent.signer import LocalSigner
from paygent import keys
from paygent.eip3009 import KEYS, AuthorizationKind, AuthorizationMessage, TokenDomain, digest, recover, typed_data
from paygent.localchain import test_key as local_key
from paygent.wire import v1, v2
from paygent.wire.common import WireError, decode_header, parse_model

DOMAIN = TokenDomain("Bridged USDC (Stargate)", "1", 338, "0xc01efAaF7C5C61bEbFAeb358E1161b537b8bC0e0")


def test_signing_goes_through_coincurve():
    from eth_keys.backends import CoinCurveECCBackend, get_backend

    assert isinstance(get_backend(), CoinCurveECCBackend)  # eth-keys picks coincurve up by itself
    assert isinstance(KEYS.backend, CoinCurveECCBackend)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(list(AuthorizationKind)), value=st.integers(0, 2**256 - 1),
       valid_after=st.integers(0, 2**64), window=st.integers(1, 2**32), nonce=st.binary(min_size=32, max_size=32))
def test_digest_and_signature_match_eth_account_typed_data(kind, value, valid_after, window, nonce):
    key = local_key(3)
    message = AuthorizationMessage(key.address, "0x" + "22" * 20, value, valid_after, valid_after + window, nonce)
    ours = LocalSigner(key).sign_digest(digest(DOMAIN, kind, message))
    reference = Account.sign_message(encode_typed_data(full_message=typed_data(DOMAIN, kind, message)), key.key)
    assert ours == bytes(reference.signature)
    assert recover(digest(DOMAIN, kind, message), ours) == key.address


def test_transfer_signature_does_not_recover_as_receive():
    key = local_key(3)
    signed = LocalSigner(key).authorize(DOMAIN, AuthorizationKind.TRANSFER, "0x" + "22" * 20, 10, 60, now=1000)
    assert recover(digest(DOMAIN, AuthorizationKind.RECEIVE, signed.message), signed.signature) != key.address


def test_high_s_signature_is_rejected_like_the_token_does():
    from paygent.eip3009 import SECP256K1_N

    key = local_key(3)
    signed = LocalSigner(key).authorize(DOMAIN, AuthorizationKind.TRANSFER, "0x" + "22" * 20, 10, 60, now=1000)
    r, s, v = signed.signature[:32], int.from_bytes(signed.signature[32:64], "big"), signed.signature[64]
    malleable = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # flips 27 <-> 28
    assert recover(digest(DOMAIN, signed.kind, signed.message), malleable) is None


def test_window_allows_clock_skew_and_nonces_are_random():
    signer = LocalSigner(local_key(3), clock_skew=30)
    a = signer.authorize(DOMAIN, AuthorizationKind.TRANSFER, "0x" + "22" * 20, 10, 300, now=10_000)
    b = signer.authorize(DOMAIN, AuthorizationKind.TRANSFER, "0x" + "22" * 20, 10, 300, now=10_000)
    assert (a.message.valid_after, a.message.valid_before) == (9_970, 10_300)
    assert a.message.nonce != b.message.nonce and len(a.message.nonce) == 32


def test_keys_never_show_in_reprs_or_errors(tmp_path):
    key = local_key(3)
    secret = key.key.hex()
    signer = LocalSigner(key)
    assert secret not in repr(signer) and secret.removeprefix("0x") not in repr(signer)
    with pytest.raises(keys.KeyLoadError) as err:
        keys.from_env("PAYGENT_AGENT_KEY", {"PAYGENT_AGENT_KEY": secret[:-4] + "zzzz"})
    assert secret[:20] not in str(err.value) and "PAYGENT_AGENT_KEY" in str(err.value)
    assert keys.from_env("K", {"K": secret}).address == key.address

    keystore = Account.encrypt(key.key, "pass-phrase", iterations=2)
    (tmp_path / "hot.json").write_text(json.dumps(keystore))
    env = {"APE_ACCOUNTS_hot_PASSPHRASE": "pass-phrase"}
    assert keys.from_ape_keystore("hot", env, directory=tmp_path).address == key.address
    with pytest.raises(keys.KeyLoadError) as err:
        keys.from_ape_keystore("hot", {"APE_ACCOUNTS_hot_PASSPHRASE": "wrong"}, directory=tmp_path)
    assert "wrong" not in str(err.value).replace("wrong passphrase", "")


AUTH = {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "10000", "validAfter": "0",
        "validBefore": "100", "nonce": "0x" + "33" * 32}


@pytest.mark.parametrize("field,value", [
    ("value", "-1"), ("value", str(2**256)), ("value", "1e6"), ("value", True), ("value", 1.5),
    ("from", "0x1234"), ("to", 42), ("nonce", "0x" + "33" * 31), ("validBefore", None),
])
def test_authorization_fields_are_strict(field, value):
    data = {"x402Version": 1, "scheme": "exact", "network": "cronos-testnet",
            "payload": {"signature": "0x" + "44" * 65, "authorization": {**AUTH, field: value}}}
    with pytest.raises(WireError) as err:
        parse_model(v1.PaymentPayload, data, "invalid_payment_header")
    assert err.value.reason == "invalid_payment_header" and "authorization" in err.value.detail


def test_requirements_keep_unknown_extra_keys_for_exact_echo():
    offered = {"scheme": "exact", "network": "eip155:338", "asset": "0x" + "aB" * 20, "amount": "10000",
               "payTo": "0x" + "Cd" * 20, "maxTimeoutSeconds": 300,
               "extra": {"name": "Bridged USDC (Stargate)", "version": "1", "assetTransferMethod": "eip3009"}}
    parsed = v2.PaymentRequirements.model_validate(offered)
    assert json.loads(parsed.to_json()) == offered


@pytest.mark.parametrize("header", ["%%%", "AAAA", "e30=" * 5000])
def test_undecodable_headers_name_the_problem(header):
    with pytest.raises(WireError) as err:
        parse_model(v2.PaymentPayload, decode_header(header), "invalid_payment_header")
    assert err.value.reason == "invalid_payment_header"
