"""`python -m keeper run` as a real process: API, facilitator mounted, bad config refused, SIGTERM."""

import signal
import subprocess
import sys
import time

import httpx
import pytest

from chainkit import deploy_stack, keeper_env, local_chain, spawn_keeper, wait_for_cursor
from paygent.artifacts import PROJECT_ROOT
from paygent.localchain import free_port, test_key as dev_key


@pytest.fixture
def stack(tmp_path):
    with local_chain() as chain:
        yield deploy_stack(chain.url, tmp_path / "deployments")


def test_daemon_serves_api_and_facilitator_and_stops_on_sigterm(stack, tmp_path):
    stack.spam(5, 1)
    port = free_port()
    env = keeper_env(stack, tmp_path / "data", port=port, facilitator="true", jobs="true", log_level="INFO",
                     relayer_key="0x" + dev_key(3).key.hex().removeprefix("0x"))
    proc = spawn_keeper(env, tmp_path / "keeper.log")
    try:
        wait_for_cursor(tmp_path / "data" / "keeper.sqlite", stack.w3.eth.block_number, proc=proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
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
