"""ServiceRegistry: ids, provider-only edits, well-formed entries, and events that rebuild the registry.

Invariants 9 (ids unique, only their provider edits) and 10 (replaying events reproduces state) of
DESIGN.md, rule by rule; the stateful twin is RegistryRouterMachine in test_properties.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from custom_errors import fails, view_fails
from ape import chain
from eth_utils import keccak

ZERO = "0x0000000000000000000000000000000000000000"
PER_CALL, METERED, SUBSCRIPTION = range(3)
DAY = 86_400
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1
EVENTS = ("ServiceRegistered", "ServiceUpdated", "ServiceDeactivated", "ServiceReactivated")

# Entry fields in the order getService returns them (the storage packing order).
FIELDS = ("payTo", "price", "token", "model", "active", "period", "provider", "name", "endpoint", "metadataURI")


def emitted(receipt: Any, contract: Any) -> list[tuple[str, dict]]:
    """Every event `contract` emitted in `receipt`, in order, with all its arguments."""
    return [(log.event_name, dict(log.event_arguments)) for log in receipt.events
            if log.contract_address == contract.address]


def as_dict(service: Any) -> dict:
    return {f: getattr(service, f) for f in FIELDS}


@pytest.fixture
def registry(project, owner):
    return owner.deploy(project.ServiceRegistry)


@pytest.fixture
def terms(provider, usdc) -> dict:
    """A well-formed per-call service owned by `provider`."""
    return dict(name="BTC price oracle", endpoint="https://oracle.example/btc", model=PER_CALL, token=usdc.address,
                price=10_000, period=0, payTo=provider.address, metadataURI="ipfs://oracle-btc")


def register(registry, sender, t: dict):
    return registry.register(t["name"], t["endpoint"], t["model"], t["token"], t["price"], t["period"], t["payTo"],
                             t["metadataURI"], sender=sender)


def update(registry, sender, sid: int, t: dict):
    return registry.update(sid, t["name"], t["endpoint"], t["model"], t["token"], t["price"], t["period"], t["payTo"],
                           t["metadataURI"], sender=sender)


def event_args(sid: int, provider: str, t: dict, active: bool) -> dict:
    return {"serviceId": sid, "provider": provider, "name": t["name"], "endpoint": t["endpoint"], "model": t["model"],
            "token": t["token"], "price": t["price"], "period": t["period"], "payTo": t["payTo"],
            "metadataURI": t["metadataURI"], "active": active}


def entry(provider: str, t: dict, active: bool) -> dict:
    return {**{f: t[f] for f in FIELDS if f in t}, "provider": provider, "active": active}


# ------------------------------------------------------------------------------------------------
# register


def test_register_numbers_services_from_one_and_stores_every_field(registry, provider, stranger, terms):
    assert registry.serviceCount() == 0
    receipt = register(registry, provider, terms)
    assert receipt.return_value == 1
    assert emitted(receipt, registry) == [("ServiceRegistered", event_args(1, provider.address, terms, True))]
    assert as_dict(registry.getService(1)) == entry(provider.address, terms, True)
    assert registry.serviceCount() == 1

    # Same terms again, and another provider: fresh ids, never reused.
    assert register(registry, provider, terms).return_value == 2
    assert register(registry, stranger, terms).return_value == 3
    assert registry.serviceCount() == 3
    assert registry.getService(3).provider == stranger.address


@pytest.mark.parametrize("model, period", [(PER_CALL, 0), (METERED, 0), (SUBSCRIPTION, 1), (SUBSCRIPTION, DAY),
                                           (SUBSCRIPTION, UINT64_MAX)])
def test_register_accepts_every_model_with_its_period(registry, provider, terms, model, period):
    t = {**terms, "model": model, "period": period}
    receipt = register(registry, provider, t)
    assert emitted(receipt, registry) == [("ServiceRegistered", event_args(1, provider.address, t, True))]
    assert as_dict(registry.getService(1)) == entry(provider.address, t, True)


def test_register_accepts_native_cro_extreme_price_and_empty_optional_strings(registry, provider, terms):
    t = {**terms, "token": ZERO, "price": UINT96_MAX, "endpoint": "", "metadataURI": ""}
    receipt = register(registry, provider, t)
    assert emitted(receipt, registry) == [("ServiceRegistered", event_args(1, provider.address, t, True))]
    assert as_dict(registry.getService(1)) == entry(provider.address, t, True)


MALFORMED = [
    ({"name": ""}, "EmptyName", {}),
    ({"payTo": ZERO}, "InvalidPayTo", {}),
    ({"price": 0}, "InvalidPrice", {}),
    ({"model": PER_CALL, "period": 60}, "InvalidPeriod", {"model": PER_CALL, "period": 60}),
    ({"model": METERED, "period": 1}, "InvalidPeriod", {"model": METERED, "period": 1}),
    ({"model": SUBSCRIPTION, "period": 0}, "InvalidPeriod", {"model": SUBSCRIPTION, "period": 0}),
    # Several rules broken: the first in the order name, payTo, price, period is reported.
    ({"name": "", "payTo": ZERO, "price": 0}, "EmptyName", {}),
    ({"payTo": ZERO, "price": 0, "period": 5}, "InvalidPayTo", {}),
    ({"price": 0, "period": 5}, "InvalidPrice", {}),
]


@pytest.mark.parametrize("change, error, inputs", MALFORMED)
def test_register_refuses_malformed_entries(registry, provider, terms, change, error, inputs):
    with fails(error, **inputs):
        register(registry, provider, {**terms, **change})
    assert registry.serviceCount() == 0


# ------------------------------------------------------------------------------------------------
# update


def test_update_replaces_terms_and_keeps_provider_and_active(registry, provider, terms, accounts, wcro):
    register(registry, provider, terms)
    new = dict(name="BTC oracle v2", endpoint="https://oracle.example/v2", model=SUBSCRIPTION, token=wcro.address,
               price=3 * 10**6, period=DAY, payTo=accounts[9].address, metadataURI="ipfs://v2")
    receipt = update(registry, provider, 1, new)
    assert emitted(receipt, registry) == [("ServiceUpdated", event_args(1, provider.address, new, True))]
    assert as_dict(registry.getService(1)) == entry(provider.address, new, True)
    assert registry.serviceCount() == 1


def test_update_of_an_inactive_service_leaves_it_inactive(registry, provider, terms):
    register(registry, provider, terms)
    registry.deactivate(1, sender=provider)
    new = {**terms, "price": 20_000}
    receipt = update(registry, provider, 1, new)
    assert emitted(receipt, registry) == [("ServiceUpdated", event_args(1, provider.address, new, False))]
    assert as_dict(registry.getService(1)) == entry(provider.address, new, False)


def test_only_the_provider_updates(registry, provider, stranger, owner, terms):
    register(registry, provider, terms)
    for intruder in (stranger, owner):
        with fails("NotProvider", serviceId=1, caller=intruder.address, provider=provider.address):
            update(registry, intruder, 1, {**terms, "payTo": intruder.address})
    assert as_dict(registry.getService(1)) == entry(provider.address, terms, True)


@pytest.mark.parametrize("sid", [0, 2, 2**256 - 1])
def test_update_of_an_unknown_service_reverts(registry, provider, terms, sid):
    register(registry, provider, terms)
    with fails("UnknownService", serviceId=sid):
        update(registry, provider, sid, terms)


@pytest.mark.parametrize("change, error, inputs", MALFORMED)
def test_update_validates_like_register(registry, provider, terms, change, error, inputs):
    register(registry, provider, terms)
    with fails(error, **inputs):
        update(registry, provider, 1, {**terms, **change})
    assert as_dict(registry.getService(1)) == entry(provider.address, terms, True)


def test_provider_check_comes_before_validation(registry, provider, stranger, terms):
    register(registry, provider, terms)
    with fails("NotProvider", serviceId=1, caller=stranger.address, provider=provider.address):
        update(registry, stranger, 1, {**terms, "name": ""})


# ------------------------------------------------------------------------------------------------
# deactivate / reactivate


def test_deactivate_and_reactivate_flip_active_and_emit_the_whole_entry(registry, provider, terms):
    register(registry, provider, terms)
    receipt = registry.deactivate(1, sender=provider)
    assert emitted(receipt, registry) == [("ServiceDeactivated", event_args(1, provider.address, terms, False))]
    assert registry.getService(1).active is False
    assert registry.paymentTerms(1)[0] is False

    receipt = registry.reactivate(1, sender=provider)
    assert emitted(receipt, registry) == [("ServiceReactivated", event_args(1, provider.address, terms, True))]
    assert as_dict(registry.getService(1)) == entry(provider.address, terms, True)


def test_deactivate_twice_and_reactivate_an_active_service_revert(registry, provider, terms):
    register(registry, provider, terms)
    with fails("AlreadyActive", serviceId=1):
        registry.reactivate(1, sender=provider)
    registry.deactivate(1, sender=provider)
    with fails("AlreadyInactive", serviceId=1):
        registry.deactivate(1, sender=provider)


def test_only_the_provider_deactivates_or_reactivates(registry, provider, stranger, terms):
    register(registry, provider, terms)
    with fails("NotProvider", serviceId=1, caller=stranger.address, provider=provider.address):
        registry.deactivate(1, sender=stranger)
    registry.deactivate(1, sender=provider)
    with fails("NotProvider", serviceId=1, caller=stranger.address, provider=provider.address):
        registry.reactivate(1, sender=stranger)
    assert registry.getService(1).active is False


@pytest.mark.parametrize("fn", ["deactivate", "reactivate"])
def test_deactivate_or_reactivate_an_unknown_service_reverts(registry, provider, terms, fn):
    register(registry, provider, terms)
    with fails("UnknownService", serviceId=7):
        getattr(registry, fn)(7, sender=provider)


# ------------------------------------------------------------------------------------------------
# views


def test_payment_terms_are_the_fields_a_payment_checks(registry, provider, terms):
    t = {**terms, "model": SUBSCRIPTION, "period": DAY, "price": 123}
    register(registry, provider, t)
    assert tuple(registry.paymentTerms(1)) == (True, SUBSCRIPTION, t["token"], 123, DAY, t["payTo"])


@pytest.mark.parametrize("view", ["getService", "paymentTerms"])
def test_views_of_an_unknown_service_revert(registry, provider, terms, view):
    for sid in (0, 1):
        assert view_fails(registry, view, sid) == ("UnknownService", {"serviceId": sid})
    register(registry, provider, terms)
    getattr(registry, view)(1)
    assert view_fails(registry, view, 2) == ("UnknownService", {"serviceId": 2})
    assert view_fails(registry, view, 2**256 - 1) == ("UnknownService", {"serviceId": 2**256 - 1})


def test_storage_layout_matches_the_comment(registry, provider, terms):
    """paymentTerms reads exactly two slots: payTo|price and token|model|active|period."""
    t = {**terms, "model": SUBSCRIPTION, "period": 0x1122334455667788, "price": 0xABCDEF}
    register(registry, provider, t)
    base = int.from_bytes(keccak((1).to_bytes(32, "big") + (1).to_bytes(32, "big")), "big")

    def slot(k: int) -> int:
        return int.from_bytes(chain.provider.get_storage(registry.address, base + k), "big")

    assert int.from_bytes(chain.provider.get_storage(registry.address, 0), "big") == 1  # serviceCount
    assert slot(0) == int(t["payTo"], 16) | (t["price"] << 160)
    assert slot(1) == int(t["token"], 16) | (SUBSCRIPTION << 160) | (1 << 168) | (t["period"] << 176)
    assert slot(2) == int(provider.address, 16)


# ------------------------------------------------------------------------------------------------
# replay (invariant 10)


def replay(registry, start: int) -> dict[int, dict]:
    """Rebuild the registry from its four events alone, in log order."""
    head = chain.blocks.head.number
    logs = [log for name in EVENTS for log in getattr(registry, name).range(start, head + 1)]
    logs.sort(key=lambda log: (log.block_number, log.log_index))
    rebuilt: dict[int, dict] = {}
    for log in logs:
        e = dict(log.event_arguments)
        sid = e.pop("serviceId")
        if log.event_name == "ServiceRegistered":
            assert sid not in rebuilt and sid == len(rebuilt) + 1, "ids are 1, 2, 3, ... and never reused"
        else:
            assert rebuilt[sid]["provider"] == e["provider"], "only the provider edits a service"
        rebuilt[sid] = e
    return rebuilt


def test_replaying_the_four_events_rebuilds_every_service(registry, provider, stranger, terms, accounts, wcro):
    start = chain.blocks.head.number  # the registry's deployment block
    other = {**terms, "name": "weather", "model": METERED, "price": 7, "payTo": accounts[9].address}
    register(registry, provider, terms)  # 1
    register(registry, stranger, other)  # 2
    register(registry, provider, {**terms, "model": SUBSCRIPTION, "period": DAY})  # 3
    update(registry, provider, 1, {**terms, "price": 11_000, "endpoint": "https://oracle.example/v2"})
    registry.deactivate(2, sender=stranger)
    update(registry, stranger, 2, {**other, "token": wcro.address, "metadataURI": "ipfs://w2"})
    registry.deactivate(1, sender=provider)
    registry.reactivate(1, sender=provider)
    registry.deactivate(3, sender=provider)
    update(registry, provider, 1, {**terms, "name": "oracle (final)", "price": 12_345})
    # Reverted calls leave no events behind.
    with fails("NotProvider", serviceId=1, caller=stranger.address, provider=provider.address):
        registry.deactivate(1, sender=stranger)

    rebuilt = replay(registry, start)
    assert sorted(rebuilt) == list(range(1, registry.serviceCount() + 1)) == [1, 2, 3]
    for sid, fields in rebuilt.items():
        assert fields == as_dict(registry.getService(sid)), sid
    assert [rebuilt[s]["active"] for s in (1, 2, 3)] == [True, False, False]
    assert rebuilt[1]["name"] == "oracle (final)" and rebuilt[2]["token"] == wcro.address
