"""`python -m keeper run` as a real process: API, facilitator mounted, bad config refused, SIGTERM."""

import signal
import subprocess
import sys
import time

import httpx
import pytest

from chainkit import keeper_env, spawn_keeper, wait_for_cursor, wait_for_health
from paygent.artifacts import PROJECT_ROOT
from paygent.localchain import LocalChain, free_port, test_key as dev_key


@pytest.fixture
def chain_port(chain):
    return chain.port


def test_daemon_serves_api_and_facilitator_and_stops_on_sigterm(stack, tmp_path):
    stack.spam(5, 1)
    port = free_port()
    env = keeper_env(stack, tmp_path / "data", port=port, facilitator="true", jobs="true", log_level="INFO",
                     relayer_key="0x" + dev_key(3).key.hex().removeprefix("0x"))
    proc = spawn_keeper(env, tmp_path / "keeper.log")
    try:
        wait_for_cursor(tmp_path / "data" / "keeper.sqlite", stack.w3.eth.block_number, proc=proc)
        base = f"http://127.0.0.1:{port}"
        health = wait_for_health(base)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        services = httpx.get(f"{base}/services", params={"active": "true"}).json()["services"]
        assert [s["name"] for s in services] == ["spam-even"]  # the spammer's service after its one update
        assert httpx.get(f"{base}/payments", params={"limit": 2}).json()["payments"][0]["paymentId"] == 5
        supported = httpx.get(f"{base}/supported").json()
        assert any(k["network"] == "eip155:338" for k in supported["kinds"])
        assert "keeper_job_runs" in httpx.get(f"{base}/metrics").text
    finally:
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0 and time.monotonic() - began < 10
    assert '"keeper stopped"' in (tmp_path / "keeper.log").read_text()


@pytest.mark.parametrize("variable, value, says", [
    ("PAYGENT_DATABASE_URL", "mysql://db/keeper", "PAYGENT_DATABASE_URL"),
    ("PAYGENT_NETWORK", "moonnet", "unknown network"),
    ("PAYGENT_CONFIRMATIONS", "many", "PAYGENT_CONFIRMATIONS"),
    ("PAYGENT_DATA_DIR", "/proc/keeper", "cannot"),
])
def test_bad_configuration_stops_at_start_with_a_reason(stack, tmp_path, variable, value, says):
    env = keeper_env(stack, tmp_path / "data")
    env[variable] = value
    done = subprocess.run([sys.executable, "-m", "keeper", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert says in done.stderr


def started_against_a_dead_rpc(stack, tmp_path):
    """A keeper whose RPC (a proxy port) is down when it starts: it runs, reports degraded, waits."""
    from chainkit import TcpProxy

    proxy_port = free_port()
    env = keeper_env(stack, tmp_path / "data", leader_interval=0.2)
    env["PAYGENT_RPC_URL"] = f"http://127.0.0.1:{proxy_port}"
    proc = spawn_keeper(env, tmp_path / "keeper.log")
    health = wait_for_health(f"http://127.0.0.1:{env['PAYGENT_PORT']}", timeout=30, proc=proc)
    assert health.json()["status"] != "ok"
    return proc, proxy_port, TcpProxy


def test_a_keeper_started_while_its_rpc_was_down_refuses_another_chain_behind_it(stack, tmp_path):
    from chainkit import cursor_of

    stack.spam(3, 1)
    proc, proxy_port, TcpProxy = started_against_a_dead_rpc(stack, tmp_path)
    # Chain id 338 too, but another genesis (anvil's genesis is its start second: an explicit one
    # keeps it apart from the deployment's chain however fast this test runs).
    with LocalChain(extra_args=["--timestamp", "1000000000"]) as other:
        proxy = TcpProxy(other.port, port=proxy_port).start()
        try:
            code = proc.wait(30)
        finally:
            proxy.stop()
            if proc.poll() is None:
                proc.kill()
    assert code == 2  # a configuration error: not restarted by the systemd unit
    assert "another chain" in (tmp_path / "keeper.log").read_text()
    assert cursor_of(tmp_path / "data" / "keeper.sqlite") == -1  # nothing was indexed from it


def test_a_keeper_started_while_its_rpc_was_down_indexes_once_the_chain_answers(stack, chain_port, tmp_path):
    stack.spam(3, 1)
    proc, proxy_port, TcpProxy = started_against_a_dead_rpc(stack, tmp_path)
    proxy = TcpProxy(chain_port, port=proxy_port).start()
    try:
        wait_for_cursor(tmp_path / "data" / "keeper.sqlite", stack.w3.eth.block_number, proc=proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proxy.stop()
        if proc.poll() is None:
            proc.kill()
