"""Start and stop the local chain: the project's anvil (tools/anvil), chain id 338.

`python -m paygent.localchain start|stop|status` keeps one anvil running in the background for the
demo and `ape run deploy` (pid and log under `.paygent/`). `LocalChain` runs a private anvil on a free
port for tests and benchmarks, and stops it on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from paygent.artifacts import PROJECT_ROOT

ANVIL = PROJECT_ROOT / "tools" / "anvil"
STATE_DIR = PROJECT_ROOT / ".paygent"
DEFAULT_PORT = 8545
TEST_MNEMONIC = "test test test test test test test test test test test junk"


class LocalChainError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rpc(url: str, method: str, params: list | None = None, timeout: float = 5.0):
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout)
    body = reply.json()
    if "error" in body:
        raise LocalChainError(f"{method}: {body['error']}")
    return body["result"]


def is_up(url: str) -> bool:
    try:
        rpc(url, "eth_chainId", timeout=1.0)
        return True
    except (httpx.HTTPError, LocalChainError, ValueError):
        return False


class LocalChain:
    """A private anvil (chain id 338, ape's test mnemonic, 10 funded accounts) on a free port."""

    def __init__(self, port: int | None = None, block_time: float | None = None, extra_args: list[str] | None = None,
                 log_path: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.block_time = block_time
        self.extra_args = extra_args or []
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if not ANVIL.exists():
            raise LocalChainError(f"{ANVIL} missing: run `make install`")
        cmd = [str(ANVIL), "--port", str(self.port), "--mnemonic", TEST_MNEMONIC, "--accounts", "10",
               "--balance", "1000000", "--hardfork", "paris", "--gas-price", "0", "--base-fee", "0"]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        return cmd + self.extra_args

    def start(self, timeout: float = 20.0) -> "LocalChain":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalChainError(f"anvil exited with code {self.process.returncode} (port {self.port} busy?)")
            if is_up(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise LocalChainError(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalChain":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the background chain for the demo and `ape run deploy` -------------------------------------

PID_FILE = STATE_DIR / "anvil.pid"
LOG_FILE = STATE_DIR / "anvil.log"


def start_background(port: int = DEFAULT_PORT) -> str:
    """Start the shared local chain unless one already answers on the port. Returns its URL."""
    url = f"http://127.0.0.1:{port}"
    if is_up(url):
        return url
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    chain = LocalChain(port=port, log_path=LOG_FILE)
    chain.start()
    assert chain.process is not None
    PID_FILE.write_text(str(chain.process.pid))
    chain.process = None  # keep it running after we exit
    return url


def stop_background() -> bool:
    if not PID_FILE.exists():
        return False
    pid = int(PID_FILE.read_text().strip() or 0)
    PID_FILE.unlink(missing_ok=True)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    command = args[0] if args else "status"
    if command == "start":
        print(f"local chain (chain id 338) at {start_background()}")
    elif command == "stop":
        print("stopped" if stop_background() else "no local chain was running")
    elif command == "status":
        url = f"http://127.0.0.1:{DEFAULT_PORT}"
        print(f"{url}: {'up' if is_up(url) else 'down'}")
    else:
        print("usage: python -m paygent.localchain start|stop|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def test_key(index: int):
    """The local chain's funded account `index` (ape's test mnemonic) as an eth_account LocalAccount.

    Local chains only: these keys are public knowledge and must never hold real funds.
    """
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
