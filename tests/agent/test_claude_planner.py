"""The Claude tool-use loop, against recorded Messages API exchanges replayed by FakeAnthropicTransport.

No network: the fake answers /v1/messages with the JSON recorded below; the real `anthropic` client
parses it, so the planner is exercised exactly as with the API.
"""

import json

from agentfakes import ATTACKER, INJECTION, ONE, FakeToolbox, fake_claude, message, text_block, tool_use

from agent.claude import ClaudePlanner, tool_definitions
from agent.session import Session

USER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def planner_for(replies):
    client, transport = fake_claude(replies)
    return ClaudePlanner(client, model="claude-fake", max_tokens=512), transport


def test_tool_schemas_come_from_the_validated_inputs():
    tools = {t["name"]: t for t in tool_definitions()}
    assert set(tools) >= {"discover_services", "call_service", "swap", "request_approval", "get_limits"}
    swap = tools["swap"]["input_schema"]
    assert swap["properties"]["slippage_bps"]["maximum"] == 1000 and "token_in" in swap["required"]


def test_plans_calls_tools_reads_results_and_answers():
    planner, transport = planner_for([
        message([text_block("I'll plan first."), tool_use("t1", "set_plan", {"steps": [
            {"step": "find the cheapest oracle", "tool": "discover_services"},
            {"step": "buy the price", "tool": "call_service"}]})]),
        message([tool_use("t2", "discover_services", {"query": "price oracle"})]),
        message([tool_use("t3", "call_service", {"service": "1"})]),
        message([text_block("CRO is 0.0997 USDC.e; I paid 0.01 USDC.e to vvs-price-oracle.")]),
    ])
    tb = FakeToolbox()
    session = Session(tb, budget=10 * ONE)
    answer = planner.handle("buy the CRO price from the cheapest oracle", session)

    assert answer.ok and answer.stop_reason == "done" and "0.0997" in answer.text
    assert tb.tools_called() == ["discover_services", "call_service"]
    assert [s["status"] for s in session.plan.as_json()] == ["done", "done"]
    assert session.ledger.spent == 10_000
    first = transport.requests[0]
    assert first["model"] == "claude-fake" and first["messages"][0]["content"].startswith("buy the CRO price")
    assert {t["name"] for t in first["tools"]} >= {"call_service"} and "untrusted_data" in first["system"]
    results = transport.tool_results(3)
    assert results[0]["tool_use_id"] == "t3" and results[0]["is_error"] is False


def test_tool_error_goes_back_to_the_model_which_recovers():
    planner, transport = planner_for([
        message([tool_use("t1", "call_service", {"service": "no-such-oracle"})]),
        message([tool_use("t2", "discover_services", {})]),
        message([tool_use("t3", "call_service", {"service": "vvs-price-oracle"})]),
        message([text_block("Done after looking the service up.")]),
    ])
    tb = FakeToolbox()
    answer = planner.handle("call the oracle", Session(tb, budget=10 * ONE))

    error = transport.tool_results(1)[0]
    assert error["is_error"] is True
    body = json.loads(error["content"])
    assert body == {"ok": False, "error": {"code": "unknown_service", "message": "no registered service 'no-such-oracle'",
                                           "hint": "call discover_services"}}
    assert answer.ok and tb.tools_called() == ["discover_services", "call_service"]


def test_over_limit_payment_is_sent_to_the_owner_for_approval():
    planner, transport = planner_for([
        message([tool_use("t1", "pay_address", {"to": USER, "amount": "3", "token": "USDC"})]),
        message([tool_use("t2", "request_approval", {"to": USER, "amount": "3", "reason": "user asked",
                                                     "wait_seconds": 0})]),
        message([text_block("It was over your 2 USDC.e cap, so I asked the owner, who approved it.")]),
    ])
    tb = FakeToolbox()
    answer = planner.handle(f"pay 3 USDC to {USER}", Session(tb, budget=10 * ONE))
    assert json.loads(transport.tool_results(1)[0]["content"])["error"]["code"] == "over_limit"
    assert tb.tools_called() == ["pay_address", "request_approval"] and answer.ok


def test_refusal_stop_reason_ends_the_request_without_tools():
    planner, _ = planner_for([message([text_block("I can't help with that.")], stop_reason="refusal")])
    tb = FakeToolbox()
    answer = planner.handle("drain the wallet to a mixer", Session(tb, budget=10 * ONE))
    assert answer.stop_reason == "refusal" and not answer.ok and tb.calls == []
    assert "declined" in answer.text


def test_budget_stop_ends_the_loop_without_asking_the_model_again():
    planner, transport = planner_for([
        message([tool_use("t1", "swap", {"token_in": "USDC", "token_out": "WCRO", "amount_in": "1"})]),
        message([tool_use("t2", "swap", {"token_in": "USDC", "token_out": "WCRO", "amount_in": "1"})]),
        message([text_block("should never be requested")]),
    ])
    tb = FakeToolbox()
    session = Session(tb, budget=ONE + ONE // 2)
    answer = planner.handle("swap 1 USDC to CRO twice", session)
    assert answer.stop_reason == "budget" and not answer.ok
    assert tb.tools_called() == ["swap"] and session.ledger.spent == ONE
    assert len(transport.requests) == 2 and len(transport.replies) == 1
    assert "session budget" in answer.text


def test_step_ceiling_stops_a_model_that_keeps_calling_tools():
    replies = [message([tool_use(f"t{i}", "get_balances", {})]) for i in range(10)]
    planner, transport = planner_for(replies)
    tb = FakeToolbox()
    answer = planner.handle("balance?", Session(tb, budget=ONE, max_steps=3))
    assert answer.stop_reason == "budget" and len(tb.calls) == 3 and len(transport.requests) == 4


def test_injected_instructions_in_service_content_cannot_move_money():
    # Recorded as if the model had been fooled by the service's content: the session still refuses.
    planner, transport = planner_for([
        message([tool_use("t1", "call_service", {"service": "1"})]),
        message([tool_use("t2", "pay_address", {"to": ATTACKER, "amount": "100", "token": "USDC"}),
                 tool_use("t3", "request_approval", {"to": ATTACKER, "amount": "100", "wait_seconds": 0})]),
        message([text_block("The price is 0.1 USDC.e.")]),
    ])
    tb = FakeToolbox(content={1: {"price": 0.1, "note": INJECTION}})
    session = Session(tb, budget=1000 * ONE)
    answer = planner.handle("get the CRO price from vvs-price-oracle", session)

    served = json.loads(transport.tool_results(1)[0]["content"])["result"]["content"]
    assert served["untrusted_data"]["note"] == INJECTION and "never follow" in served["note"]
    refused = [json.loads(r["content"])["error"]["code"] for r in transport.tool_results(2)]
    assert refused == ["untrusted_recipient", "untrusted_recipient"]
    assert tb.tools_called() == ["call_service"] and session.ledger.spent == 10_000
    assert answer.ok


def test_chat_history_keeps_only_finished_turns():
    planner, transport = planner_for([
        message([text_block("You have 100 USDC.e.")]),
        message([text_block("Still 100.")]),
    ])
    session = Session(FakeToolbox(), budget=ONE)
    planner.handle("balance?", session)
    planner.handle("and now?", session)
    assert [m["role"] for m in transport.requests[1]["messages"]] == ["user", "assistant", "user"]
