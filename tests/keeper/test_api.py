"""Operator API over a store filled with known events (no chain): filters, paging, 400 reasons."""

import pytest
from starlette.testclient import TestClient

from keeper.api import Telemetry, create_app
from keeper.indexer import Health
from keeper.store import Cursor, Store
from keeper_logs import AGENT, PAYER, USDC, WALLET, payment_log, service_log, wallet_log

OTHER_TOKEN = "0x" + "dd" * 20


@pytest.fixture
def client():
    store = Store(":memory:", 338)
    logs = [service_log(5, 0, service_id=1, price=10_000), service_log(5, 1, service_id=2, price=25_000),
            service_log(5, 2, service_id=3, price=5_000, active=False)]
    logs += [payment_log(6, i, i + 1, service_id=1 + i % 2) for i in range(5)]
    logs += [wallet_log(7, 0, "AgentAdded", agent=AGENT),
             wallet_log(7, 1, "RuleSet", agent=AGENT, token=USDC, limit=5_000_000, cap=2_000_000, period=86_400,
                        floatCap=1_000_000),
             wallet_log(7, 2, "Paid", agent=AGENT, token=USDC, to=PAYER, amount=1_500_000, ref="0x00",
                        remainingInWindow=3_500_000, windowIndex=(1_000 + 7) // 86_400),
             wallet_log(7, 3, "RequestProposed", requestId=1, agent=AGENT, token=USDC, to=PAYER, amount=9_000_000,
                        ref="0x00", expiresAt=2_000)]
    store.commit_batch(logs, {5: ("0x5", 1_005), 6: ("0x6", 1_006), 7: ("0x7", 1_007)}, Cursor(7, "0x7"))
    health = Health(head=7, indexed=7, rpc_ok=True)
    return TestClient(create_app(store, health, Telemetry(health)))


def test_services_filter_by_price_and_active(client):
    body = client.get("/services", params={"max_price": 10_000, "active": "true"}).json()
    assert [s["id"] for s in body["services"]] == [1]
    assert body["services"][0]["model"] == "per-call" and body["services"][0]["price"] == "10000"
    cheapest_first = client.get("/services").json()["services"]
    assert [s["id"] for s in cheapest_first] == [3, 1, 2]
    assert client.get("/services", params={"token": OTHER_TOKEN}).json()["services"] == []


@pytest.mark.parametrize("params, parameter", [
    ({"model": "auction"}, "model"), ({"max_price": "cheap"}, "max_price"), ({"max_price": "-1"}, "max_price"),
    ({"token": "0x12"}, "token"), ({"active": "maybe"}, "active"), ({"limit": "0"}, "limit"),
])
def test_bad_service_filters_get_400_with_the_parameter(client, params, parameter):
    reply = client.get("/services", params=params)
    assert reply.status_code == 400
    assert reply.json()["parameter"] == parameter and reply.json()["reason"]


def test_service_detail_has_history_and_unknown_is_404(client):
    body = client.get("/services/1").json()
    assert body["name"] == "oracle" and [h["event"] for h in body["history"]] == ["ServiceRegistered"]
    assert client.get("/services/99").status_code == 404
    assert client.get("/services/abc").status_code == 400


def test_payments_page_newest_first_with_a_cursor(client):
    first = client.get("/payments", params={"limit": 2}).json()
    assert [p["paymentId"] for p in first["payments"]] == [5, 4]
    second = client.get("/payments", params={"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [p["paymentId"] for p in second["payments"]] == [3, 2]
    last = client.get("/payments", params={"limit": 2, "cursor": second["nextCursor"]}).json()
    assert [p["paymentId"] for p in last["payments"]] == [1] and last["nextCursor"] is None
    by_service = client.get("/payments", params={"service": 2, "payer": PAYER}).json()["payments"]
    assert [p["paymentId"] for p in by_service] == [4, 2]
    assert client.get("/payments", params={"since": 1_007}).json()["payments"] == []
    assert client.get("/payments", params={"since": "yesterday"}).status_code == 400
    assert client.get("/payments", params={"since": 10, "until": 5}).status_code == 400


def test_stats_sum_the_payments(client):
    body = client.get("/stats/services/1").json()
    assert body == {"serviceId": 1, "token": body["token"], "volume": "30000", "fees": "300", "payments": 3,
                    "lastPaidAt": 1_006, "payers": 1}


def test_approvals_by_status(client):
    assert [a["requestId"] for a in client.get("/approvals", params={"status": "pending"}).json()["approvals"]] == [1]
    assert client.get("/approvals", params={"status": "executed"}).json()["approvals"] == []
    assert client.get("/approvals", params={"status": "open"}).status_code == 400


def test_agent_spend_against_its_limit(client):
    body = client.get(f"/agents/{WALLET}/{AGENT}/spend", params={"token": USDC}).json()
    (usdc,) = body["spend"]
    assert body["active"] is True
    assert (usdc["limit"], usdc["spent"], usdc["available"]) == ("5000000", "1500000", "2000000")
    assert client.get(f"/agents/{WALLET}/{PAYER}/spend").status_code == 404
    assert client.get(f"/agents/nope/{AGENT}/spend").status_code == 400


def test_health_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    text = client.get("/metrics").text
    assert "keeper_indexed_block 7.0" in text and "keeper_settlements" in text


@pytest.mark.parametrize("path, params, parameter", [
    ("/services/99999999999999999999", {}, "service_id"),
    ("/stats/services/99999999999999999999", {}, "service_id"),
    ("/payments", {"service": str(2**64)}, "service"),
    ("/payments", {"cursor": str(2**63)}, "cursor"),
    ("/payments", {"since": str(2**70)}, "since"),
    ("/services", {"offset": str(10**20)}, "offset"),
    ("/services", {"provider": "0x-" + "22" * 19 + "2"}, "provider"),
    ("/payments", {"servic": "2"}, "servic"),  # a misspelt filter must not answer with everything
    ("/services/1", {"verbose": "1"}, "verbose"),
])
def test_out_of_range_and_unknown_parameters_get_400_not_500(client, path, params, parameter):
    reply = client.get(path, params=params)
    assert reply.status_code == 400 and reply.json()["parameter"] == parameter


def test_a_repeated_parameter_is_refused(client):
    reply = client.get("/payments?service=1&service=2")
    assert reply.status_code == 400 and reply.json()["parameter"] == "service"


def test_health_reads_the_store_itself(tmp_path):
    path = tmp_path / "k.sqlite"
    store = Store(path, 338)
    store.set_cursor(Cursor(1, "0x1"))
    health = Health(head=1, indexed=1, rpc_ok=True)
    client = TestClient(create_app(store, health, Telemetry(health)))
    assert client.get("/healthz").json()["status"] == "ok"

    path.unlink()  # the store file is gone (an operator's mistake, a broken disk)
    for leftover in tmp_path.glob("k.sqlite-*"):
        leftover.unlink()

    reply = client.get("/healthz")
    assert reply.status_code == 503 and reply.json()["database"] != "ok"
    assert not path.exists()  # and no empty store was created in its place


def test_metrics_say_unknown_rather_than_zero_and_report_the_database(tmp_path):
    path = tmp_path / "k.sqlite"
    store = Store(path, 338)
    store.set_cursor(Cursor(1, "0x1"))
    health = Health()  # nothing seen yet
    client = TestClient(create_app(store, health, Telemetry(health)))
    text = client.get("/metrics").text
    assert "keeper_lag_blocks NaN" in text and "keeper_head_block NaN" in text
    assert "keeper_database_up 1.0" in text

    path.unlink()
    for leftover in tmp_path.glob("k.sqlite-*"):
        leftover.unlink()
    assert "keeper_database_up 0.0" in client.get("/metrics").text
