"""The `paygent` CLI against the real local stack: readable output, --json, one-line errors with a hint."""

import json

import pytest
from click.testing import CliRunner

from agent.cli import main
from paygent import manifest as manifests

USER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


@pytest.fixture
def env(stack, chain, tmp_path):
    manifests.save(stack.manifest, tmp_path / "deployments")
    return {"PAYGENT_RPC_URL": chain.provider.web3.provider.endpoint_uri,
            "PAYGENT_DEPLOYMENTS_DIR": str(tmp_path / "deployments"), "PAYGENT_DATA_DIR": str(tmp_path / "agent"),
            "PAYGENT_KEEPER_URL": "http://127.0.0.1:9", "PAYGENT_APPROVAL_WAIT_SECONDS": "0",
            "ANTHROPIC_API_KEY": "", "PAYGENT_OFFLINE": "true"}


def invoke(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_wallet_status_and_json_limits(env):
    out = invoke(env, "wallet", "status")
    assert out.exit_code == 0 and "100 USDC.e" in out.output and "available now 2" in out.output
    limits = json.loads(invoke(env, "--json", "wallet", "limits").output)
    assert (limits["limit"], limits["cap"]) == ("5", "2")


def test_services_list_reads_the_registry_when_the_keeper_is_down(env):
    out = invoke(env, "services", "list")
    assert "vvs-price-oracle" in out.output and "source: chain" in out.output


def test_agent_request_over_the_cap_queues_an_approval_the_owner_edits(env, stack):
    out = invoke(env, "--json", "agent", "--yes", f"pay 3 USDC to {USER}")
    data = json.loads(out.output)
    assert [c["tool"] for c in data["tool_calls"]] == ["pay_address", "request_approval"]
    assert "waiting for the owner" in data["answer"]
    assert "#1" in invoke(env, "approvals", "list").output
    assert invoke(env, "approvals", "edit", "1", "--amount", "2.5").exit_code == 0
    assert stack.usdc.balanceOf(USER) == 2_500_000


def test_errors_are_one_line_with_a_hint(env):
    out = CliRunner().invoke(main, ["--network", "mars", "wallet", "status"], env=env)
    assert out.exit_code == 1
    assert "unknown network 'mars'" in out.output and "hint:" in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("args, option", [
    (["--budget", "abc", "wallet", "status"], "--budget"),
    (["--budget", "-1", "wallet", "status"], "--budget"),
    (["services", "list", "--max-price", "abc"], "--max-price"),
    (["approvals", "edit", "1", "--amount", "1,5"], "--amount"),
    (["approvals", "edit", "1", "--amount", "0"], "--amount"),
])
def test_a_bad_amount_is_a_usage_error_naming_its_option(env, args, option):
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 2 and f"Invalid value for '{option}'" in out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)


def test_with_json_a_failure_is_a_json_object_on_stdout(env):
    down = {**env, "PAYGENT_RPC_URL": "http://127.0.0.1:9"}
    out = CliRunner(mix_stderr=False).invoke(main, ["--json", "wallet", "status"], env=down)
    assert out.exit_code == 1
    error = json.loads(out.stdout)
    assert "cannot reach" in error["error"] and error["hint"]
    assert "paygent:" in out.stderr  # the readable line still goes to stderr


def test_json_chat_writes_only_json_to_stdout(env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # The real command with piped input (click's test runner would echo the input into stdout).
    out = subprocess.run([str(Path(sys.executable).with_name("paygent")), "--json", "chat"], input="what is my balance\nquit\n",
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    decoder, text, answers = json.JSONDecoder(), out.stdout.strip(), []
    while text:
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    assert len(answers) == 1 and "answer" in answers[0]
    assert "paygent chat" in out.stderr


def test_a_wallet_that_is_not_an_address_is_a_settings_error(env):
    out = CliRunner().invoke(main, ["wallet", "status"], env={**env, "PAYGENT_WALLET": "0x1234"})
    assert out.exit_code == 1 and "PAYGENT_WALLET" in out.output and "Traceback" not in out.output
