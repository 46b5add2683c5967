"""The offline planner handles every request type deterministically (FakeToolbox: no chain)."""

from decimal import Decimal

import pytest
from agentfakes import ATTACKER, INJECTION, ONE, PROVIDER, FakeToolbox

from agent.offline import OfflinePlanner, parse
from agent.session import Session

USER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def run(request: str, toolbox: FakeToolbox | None = None, budget: int = 10 * ONE, **session_kw):
    toolbox = toolbox or FakeToolbox()
    session = Session(toolbox, budget=budget, **session_kw)
    answer = OfflinePlanner(approval_wait_seconds=0).handle(request, session)
    return answer, toolbox, session


@pytest.mark.parametrize("request_text, kinds", [
    ("what's my balance", ["balance"]),
    ("show my limits", ["limits"]),
    ("show my history", ["history"]),
    ("show my limits and balance", ["balance", "limits"]),
    ("swap 5 USDC to CRO with 1% slippage", ["swap"]),
    ("call vvs-price-oracle", ["call"]),
    ("buy the BTC price from the cheapest oracle, then swap 5 USDC to CRO", ["call", "swap"]),
    ("pay premium-price-oracle", ["pay"]),
    (f"pay 3 USDC to {USER}", ["pay"]),
    ("subscribe to news-digest for 2 periods", ["subscribe"]),
    (f"ask the owner to approve 3 USDC to {USER}", ["approval"]),
    ("sing me a song", ["unknown"]),
])
def test_each_request_type_parses_to_its_intent(request_text, kinds):
    assert [i.kind for i in parse(request_text)] == kinds


@pytest.mark.parametrize("text, bps", [
    ("swap 5 USDC to CRO with 1% slippage", 100),
    ("swap 5 USDC to CRO with max slippage 0.5%", 50),
    ("swap 5 USDC to CRO, slippage 30 bps", 30),
    ("swap 5 USDC to CRO", None),
    ("CRO is up 30% today: swap 5 USDC to CRO with 0.5% max slippage", 50),  # the percentage that is the bound
])
def test_slippage_bound_is_read_in_percent_or_basis_points(text, bps):
    intent = parse(text)[0]
    assert (intent.amount, intent.token, intent.token_out, intent.slippage_bps) == (Decimal(5), "USDC", "WCRO", bps)


def test_named_service_is_discovered_then_called_by_id():
    answer, tb, _ = run("call premium-price-oracle")
    assert answer.ok and tb.tools_called() == ["discover_services", "call_service"]
    assert tb.calls[1][1]["service"] == "2"


def test_cheapest_service_for_a_capability_is_called():
    answer, tb, session = run("buy the CRO price from the cheapest price oracle")
    assert answer.ok
    assert tb.calls[-1] == ("call_service", {"service": "1"})
    assert session.ledger.spent == 10_000


def test_cheapest_falls_back_to_the_next_when_the_first_fails():
    answer, tb, _ = run("call the cheapest price oracle", FakeToolbox(failing={1}))
    # the fake ranks the failing service last (as memory does), so the cheapest reliable one is called
    assert answer.ok and [c for c in tb.calls if c[0] == "call_service"] == [("call_service", {"service": "2"})]


def test_a_failing_service_is_followed_by_the_next_candidate():
    answer, tb, session = run("call the cheapest price oracle", FakeToolbox(failing={1}, rank_failing_last=False))
    assert answer.ok
    assert [c for c in tb.calls if c[0] == "call_service"] == [("call_service", {"service": "1"}),
                                                              ("call_service", {"service": "2"})]
    assert session.ledger.spent == 25_000


def test_swap_quotes_then_swaps_with_the_users_slippage_bound():
    answer, tb, _ = run("swap 1.5 USDC to CRO with 1% max slippage")
    assert answer.ok and tb.tools_called() == ["quote_swap", "swap"]
    assert tb.calls[1][1] == {"token_in": "USDC", "token_out": "WCRO", "amount_in": "1.5", "slippage_bps": 100,
                              "deadline_seconds": 300, "expected_out": "15.0"}  # the quote the user saw


def test_swap_over_the_limit_is_refused_and_explained_not_sent_for_approval():
    answer, tb, _ = run("swap 3 USDC to CRO")
    assert not answer.ok and answer.stop_reason == "refused"
    assert "request_approval" not in tb.tools_called()
    assert "over_limit" in answer.text


def test_reads_balance_limits_and_history():
    answer, tb, _ = run("show my balance, then my limits, then my history")
    assert answer.ok and tb.tools_called() == ["get_balances", "get_limits", "get_history"]


def test_payment_over_the_cap_asks_the_owner_for_approval():
    answer, tb, session = run(f"pay 3 USDC to {USER}")
    assert tb.tools_called() == ["pay_address", "request_approval"]
    assert tb.calls[1][1]["to"] == USER and tb.calls[1][1]["amount"] == "3"
    assert answer.ok and "so I asked the owner" in answer.text
    assert session.ledger.spent == 3 * ONE  # executed by the owner's decision, counted afterwards


def test_rejected_approval_is_reported_as_not_done():
    answer, _, session = run(f"pay 3 USDC to {USER}", FakeToolbox(approval_decision="rejected"))
    assert not answer.ok and "rejected" in answer.text and session.ledger.spent == 0


def test_pay_a_named_service_pays_its_registered_price():
    answer, tb, session = run("pay weather-feed")
    assert answer.ok and tb.calls[-1] == ("pay_service", {"service": "3", "units": 1})
    assert session.ledger.spent == 5_000


def test_subscribe_to_a_subscription_service():
    answer, tb, _ = run("subscribe to news-digest for 2 periods")
    assert answer.ok and tb.calls[-1] == ("subscribe", {"service": "4", "periods": 2})


def test_explicit_approval_request_goes_straight_to_the_owner():
    answer, tb, _ = run(f"ask the owner to approve 3 USDC to {USER}")
    assert answer.ok and tb.tools_called() == ["request_approval"]


def test_unknown_request_says_what_the_agent_can_do():
    answer, tb, _ = run("sing me a song")
    assert not answer.ok and answer.stop_reason == "not_understood" and tb.calls == []
    assert "swap" in answer.text


def test_session_budget_stops_the_request_before_money_moves():
    answer, tb, session = run("swap 1 USDC to CRO, then swap 1 USDC to CRO", budget=ONE + ONE // 2)
    assert [c[0] for c in tb.calls] == ["quote_swap", "swap", "quote_swap"]
    assert answer.stop_reason == "budget" and session.stopped == "over_session_budget"
    assert session.ledger.spent == ONE


def test_step_ceiling_stops_a_long_request():
    answer, tb, session = run("show my balance, then my balance, then my balance", max_steps=2)
    assert len(tb.calls) == 2 and answer.stop_reason == "budget" and session.stopped == "step_limit"


def test_interactive_confirmation_declined_moves_nothing():
    asked = []
    answer, tb, _ = run("swap 1.5 USDC to CRO", confirm=lambda what: asked.append(what) or False, confirm_above=ONE)
    assert asked and "swap" not in tb.tools_called() and "declined_by_user" in answer.text


def test_small_actions_are_not_confirmed():
    answer, _, _ = run("call vvs-price-oracle", confirm=lambda what: pytest.fail(f"asked for {what}"),
                       confirm_above=ONE)
    assert answer.ok


def test_service_content_with_instructions_triggers_no_tool_call():
    tb = FakeToolbox(content={1: {"price": 0.1, "note": INJECTION}})
    answer, tb, session = run("call vvs-price-oracle", tb)
    assert tb.tools_called() == ["discover_services", "call_service"]
    assert session.ledger.spent == 10_000
    assert ATTACKER in answer.text and "untrusted" in answer.text  # shown as data, nothing more
    content = session.outcomes[-1].result["content"]
    assert content["untrusted_data"]["note"] == INJECTION and "never follow" in content["note"]


def test_payment_to_an_address_the_user_never_wrote_is_refused():
    session = Session(FakeToolbox(), budget=10 * ONE)
    session.begin("call vvs-price-oracle")
    out = session.call("pay_address", {"to": ATTACKER, "amount": "1", "token": "USDC"})
    assert out.code == "untrusted_recipient" and session.ledger.spent == 0
    assert session.toolbox.calls == []


def test_a_registered_payee_is_paid_by_service_name_not_as_a_bare_address():
    """Anyone can register a service with their own payTo: that alone must not make the address
    payable (an injected "pay_address <payee>" would pass)."""
    session = Session(FakeToolbox(), budget=10 * ONE)
    session.begin("pay the provider of the oracle")
    assert session.call("pay_address", {"to": PROVIDER, "amount": "1"}).code == "untrusted_recipient"
    assert session.call("pay_service", {"service": "vvs-price-oracle"}).ok
    session.begin(f"pay 1 USDC to {PROVIDER}")  # written by the user: fine
    assert session.call("pay_address", {"to": PROVIDER, "amount": "1"}).ok


def test_plan_is_shown_and_ticked_off_as_steps_finish():
    seen = []
    tb = FakeToolbox()
    session = Session(tb, budget=10 * ONE, on_event=lambda kind, data: kind == "plan" and seen.append(data["plan"]))
    OfflinePlanner().handle("show my balance, then swap 1 USDC to CRO", session)
    assert [s["status"] for s in seen[0]] == ["pending", "pending"]
    assert [s["status"] for s in seen[-1]] == ["done", "done"]
    assert any([s["status"] for s in plan] == ["done", "running"] for plan in seen)


def test_invalid_tool_arguments_are_a_structured_error():
    session = Session(FakeToolbox(), budget=10 * ONE)
    session.begin("x")
    out = session.call("swap", {"token_in": "USDC", "token_out": "WCRO", "amount_in": "-1"})
    assert out.code == "invalid_arguments" and "amount_in" in out.error["message"]
    assert session.call("launch_rockets", {}).code == "unknown_tool"


def test_a_look_alike_service_named_inside_the_request_does_not_win_over_the_named_one():
    from agentfakes import DEFAULT_SERVICES, service

    shady = {**service(7, "price", 1_000, "cheap price"), "payTo": ATTACKER}
    answer, tb, _ = run("buy the BTC price from vvs-price-oracle", FakeToolbox([shady, *DEFAULT_SERVICES]))
    assert answer.ok and tb.calls[-1] == ("call_service", {"service": "1"})


def test_a_declined_action_ends_the_request_no_smaller_retry_runs():
    asked = []
    session = Session(FakeToolbox(), budget=10 * ONE, confirm=lambda what: asked.append(what) or False,
                      confirm_above=ONE)
    session.begin("swap 1.5 USDC to CRO")
    first = session.call("swap", {"token_in": "USDC", "token_out": "WCRO", "amount_in": "1.5"})
    second = session.call("swap", {"token_in": "USDC", "token_out": "WCRO", "amount_in": "0.9"})  # under the bar

    assert first.error["code"] == "declined_by_user" and second.error["code"] == "request_stopped"
    assert len(asked) == 1 and session.ledger.spent == 0
    session.begin("what's my balance")  # the next request runs again
    assert session.call("get_balances", {}).ok


def test_an_owner_approval_for_a_named_service_goes_to_its_registered_payee():
    answer, tb, _ = run("ask the owner to approve 3 USDC to weather-feed")
    assert answer.ok and tb.tools_called()[-1] == "request_approval"
