"""`make demo` — the whole of Paygent on a private local chain, in one command, offline.

1. starts a private anvil (chain id 338; port 8545 if free, else a free one);
2. deploys the local stack with ape (Cronos stand-ins, VVS AMM, registry, router, demo services,
   demo AgentWallet: agent = test account 1, 5 USDC.e a day, 2 per payment, 1 float) — manifest in
   a demo-private directory (.paygent/demo/), so a stale manifest never interferes;
3. starts the keeper (indexer + x402 facilitator + operator API) and the demo paid price service;
4. runs the agent (offline planner; `--claude` uses Claude when ANTHROPIC_API_KEY is set) through a
   scripted scenario: limits, discover + pay via x402, swap, a payment over the cap that the owner
   approves, a swap over the day's limit that is refused, history;
5. prints a final table and the spend against the limit, and stops everything it started
   (also on Ctrl-C or an error).

A piece that is missing or fails to start is named, and the steps that need it are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paygent.artifacts import ARTIFACTS, PROJECT_ROOT

DEMO_DIR = PROJECT_ROOT / ".paygent" / "demo"
RELAYER_INDEX = 7  # the keeper's gas-paying test account (local chain only)


def say(text: str = "", *, quiet: bool = False) -> None:
    if not quiet:
        print(text, flush=True)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@dataclass
class Piece:
    name: str
    ok: bool
    detail: str
    process: subprocess.Popen | None = None


@dataclass
class StepRecord:
    title: str
    request: str
    tools: list[str] = field(default_factory=list)
    spent: int = 0
    ok: bool = False
    stop: str = ""
    expected: bool = True
    note: str = ""


@dataclass
class DemoResult:
    exit_code: int
    wall_s: float
    scenario_s: float
    tool_calls: int
    overhead_ms: list[float]
    steps: list[StepRecord]


class Demo:
    def __init__(self, quiet: bool = False, use_claude: bool = False, directory: Path = DEMO_DIR):
        self.quiet = quiet
        self.use_claude = use_claude
        self.dir = directory
        self.chain: Any = None
        self.pieces: dict[str, Piece] = {}
        self.url = ""
        self.manifest: Any = None

    def log(self, text: str = "") -> None:
        say(text, quiet=self.quiet)

    # --- infrastructure ---------------------------------------------------------------------------

    def start_chain(self) -> None:
        from paygent.localchain import DEFAULT_PORT, LocalChain, free_port

        port = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
        self.chain = LocalChain(port=port, log_path=self.dir / "anvil.log").start()
        self.url = self.chain.url
        # ape pays anvil's default 1 gwei priority fee on a node it did not start, and the deploy seeds a
        self.log(f"  chain     anvil, chain id 338, {self.url}" + ("" if port == DEFAULT_PORT else " (8545 was busy)"))

    def deploy(self) -> None:
        os.environ["APE_FOUNDRY_HOST"] = self.url
        from ape import accounts, networks
        from ape.logging import logger as ape_logger

        ape_logger.set_level("ERROR")

        from paygent.deployment import deploy
        from paygent.networks import LOCAL

        with networks.ethereum.local.use_provider("foundry", provider_settings={"host": self.url}):
            test_accounts = accounts.test_accounts
            result = deploy(LOCAL, test_accounts[0], directory=self.dir / "deployments", accounts=test_accounts,
                            log=lambda _m: None)
        self.manifest = result.manifest
        m = self.manifest
        self.log(f"  deployed  registry {m.address('ServiceRegistry')}, router {m.address('PaymentRouter')}, "
                 f"wallet {m.address('AgentWallet')}")
        self.log(f"            agent {m.demo['agent']} (test account 1): 5 USDC.e/day, 2 per payment, float 1")

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_")}
        env.update({"PAYGENT_NETWORK": "local", "PAYGENT_RPC_URL": self.url,
                    "PAYGENT_DEPLOYMENTS_DIR": str(self.dir / "deployments"), "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    def start_keeper(self) -> None:
        from paygent.localchain import free_port, test_key

        try:
            import keeper.app  # noqa: F401 - only checks the keeper is installed
        except ImportError as exc:
            self.pieces["keeper"] = Piece("keeper", False, f"not available ({exc.name} missing)")
            return
        port = 8403 if port_free(8403) else free_port()
        relayer = "0x" + bytes(test_key(RELAYER_INDEX).key).hex()  # public test key; never printed
        env = self._env(PAYGENT_PORT=str(port), PAYGENT_HOST="127.0.0.1", PAYGENT_DATA_DIR=str(self.dir / "keeper"),
                        PAYGENT_RELAYER_KEY=relayer, PAYGENT_POLL_INTERVAL="0.2", PAYGENT_JOB_INTERVAL="5",
                        PAYGENT_LOG_JSON="true")
        out = open(self.dir / "keeper.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "keeper", "run"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=PROJECT_ROOT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        if wait_http(f"{url}/healthz", 30, proc) and wait_http(f"{url}/supported", 5, proc):
            self.pieces["keeper"] = Piece("keeper", True, url, proc)
            self.log(f"  keeper    {url} (indexer, x402 facilitator, operator API)")
        else:
            stop_process(proc)
            self.pieces["keeper"] = Piece("keeper", False, f"did not start (see {self.dir / 'keeper.log'})")
            self.log(f"  keeper    NOT RUNNING: {self.pieces['keeper'].detail}")

    def start_service(self) -> None:
        keeper = self.pieces.get("keeper")
        port = int(self.manifest.demo.get("service_port", 8402))
        if keeper is None or not keeper.ok:
            self.pieces["service"] = Piece("service", False, "needs the keeper's x402 facilitator")
            self.log("  service   NOT STARTED: it needs the keeper's x402 facilitator")
            return
        if not port_free(port):
            old = port
            port = self.move_service_endpoints(port)
            self.log(f"  service   port {old} is busy: the provider moved its registered endpoints to port {port}")
        env = self._env(PAYGENT_PORT=str(port), PAYGENT_HOST="127.0.0.1", PAYGENT_FACILITATOR_URL=keeper.detail,
                        PAYGENT_SERVED_LOG=str(self.dir / "service" / "served.sqlite"))
        out = open(self.dir / "service.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "paygent.demo_service"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        if wait_http(f"{url}/healthz", 30, proc):
            self.pieces["service"] = Piece("service", True, url, proc)
            self.log(f"  service   {url}/price (0.01 USDC.e), /premium-price (0.025 USDC.e), behind the x402 paywall")
        else:
            stop_process(proc)
            self.pieces["service"] = Piece("service", False, f"did not start (see {self.dir / 'service.log'})")
            self.log(f"  service   NOT RUNNING: {self.pieces['service'].detail}")

    def move_service_endpoints(self, old_port: int) -> int:
        """The provider (test account 2) updates its ServiceRegistry entries to a free port — the registry
        is the source of truth for endpoints, so the agent and the keeper follow it."""
        from web3 import Web3

        from paygent.artifacts import abi
        from paygent.localchain import free_port, test_key

        port = free_port()
        w3 = Web3(Web3.HTTPProvider(self.url))
        provider = test_key(2)
        registry = w3.eth.contract(address=self.manifest.address("ServiceRegistry"), abi=abi("ServiceRegistry"))
        for key, sid in self.manifest.demo.items():
            if not key.startswith("service:"):
                continue
            s = registry.functions.getService(int(sid)).call()
            pay_to, price, token, model, _active, period, _prov, name, endpoint, metadata = s[:10]
            fn = registry.functions.update(int(sid), name, endpoint.replace(f":{old_port}/", f":{port}/"), model,
                                           token, price, period, pay_to, metadata)
            tx = fn.build_transaction({"from": provider.address, "nonce": w3.eth.get_transaction_count(provider.address),
                                       "chainId": 338, "gasPrice": w3.eth.gas_price})
            signed = provider.sign_transaction(tx)
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
        return port

    def stop(self) -> None:
        for piece in self.pieces.values():
            if piece.process is not None:
                stop_process(piece.process)
                piece.process = None
        if self.chain is not None:
            self.chain.stop()
            self.chain = None

    # --- the scenario -----------------------------------------------------------------------------

    def scenario(self) -> list[tuple[str, str, str | None, bool]]:
        """(title, request, the piece it needs, whether it should succeed)."""
        provider = self.manifest.demo["provider"]
        return [
            ("limits", "show my limits and balance", None, True),
            ("discover + x402", "buy the CRO price from the cheapest price oracle", "service", True),
            ("swap", "swap 2 USDC to CRO with 1% max slippage", None, True),
            ("over the cap -> owner", f"pay 3 USDC to {provider} for the data bundle", None, True),
            ("swap", "swap 2 USDC to CRO", None, True),
            ("over the day's limit", "swap 1.5 USDC to CRO with 0.5% slippage", None, False),
            ("history", "show my history", None, True),
        ]

    def run_agent(self) -> tuple[list[StepRecord], Any]:
        from agent.owner import OwnerActions
        from agent.runtime import build_runtime, load_key, make_planner, make_session
        from agent.settings import AgentSettings

        keeper = self.pieces.get("keeper")
        settings = AgentSettings(network="local", rpc_url=self.url, deployments_dir=self.dir / "deployments",
                                 keeper_url=keeper.detail if keeper and keeper.ok else "http://127.0.0.1:9",
                                 data_dir=self.dir / "agent", offline=not self.use_claude, approval_wait_seconds=60,
                                 approval_poll_seconds=0.2, agent_key=None, agent_account=None)
        runtime = build_runtime(settings)
        session = make_session(runtime, on_event=self._on_event)
        planner = make_planner(settings)
        from web3 import Web3

        owner_w3 = Web3(Web3.HTTPProvider(self.url))  # its own connection: the owner is not the agent
        owner = OwnerActions(owner_w3, runtime.manifest.address("AgentWallet"), load_key(settings, "owner", True),
                             settings.keeper_url)
        owner_thread = OwnerBot(owner, self.log)
        owner_thread.start()
        records = []
        try:
            for title, request, needs, expected in self.scenario():
                if needs and not self.pieces.get(needs, Piece(needs, False, "")).ok:
                    self.log(f"\n>>> {request}\n    SKIPPED: the {needs} is not running "
                             f"({self.pieces.get(needs, Piece(needs, False, 'missing')).detail})")
                    records.append(StepRecord(title, request, ok=False, stop="skipped", expected=False,
                                              note=f"needs the {needs}"))
                    continue
                self.log(f"\n>>> {request}")
                before = len(session.outcomes)
                answer = planner.handle(request, session)
                calls = session.outcomes[before:]
                self.log("  plan:\n" + session.plan.render())
                self.log("  answer: " + answer.text.replace("\n", "\n          "))
                records.append(StepRecord(title, request, [o.tool for o in calls], sum(o.spent for o in calls),
                                          answer.ok, answer.stop_reason, expected))
        finally:
            owner_thread.stop()
        return records, (runtime, session)

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "call":
            args = ", ".join(f"{k}={v}" for k, v in data["args"].items())
            self.log(f"  -> {data['tool']}({args})")
        elif kind == "result" and not data["ok"]:
            self.log(f"  <- {data['tool']}: {data['error']['code']} — {data['error']['message']}")
        elif kind == "result":
            summary = (data.get("result") or {}).get("summary", "ok")
            self.log(f"  <- {data['tool']}: {str(summary).splitlines()[0]}")


class OwnerBot(threading.Thread):
    """Plays the wallet owner in the demo: approves pending requests a moment after they appear."""

    def __init__(self, owner: Any, log: Any):
        super().__init__(name="demo-owner", daemon=True)
        self.owner = owner
        self.log = log
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.3):
            try:
                count = int(self.owner.wallet.functions.requestCount().call())
                for rid in range(1, count + 1):
                    req = self.owner.request(rid)
                    if req["status"] == "pending":
                        self.log(f"  [owner] request #{rid}: {req['amount'] / 10**6:g} USDC.e to {req['to']} "
                                 f"— approving (as `paygent approvals approve {rid}`)")
                        self.owner.approve(rid)
            except Exception as exc:  # noqa: BLE001 - the demo's owner must not kill the demo
                self.log(f"  [owner] error: {exc}")

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(12)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    cells = [headers, *rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(width[j]) for j, c in enumerate(r)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def run(quiet: bool = False, use_claude: bool = False, directory: Path = DEMO_DIR) -> DemoResult:
    began = time.monotonic()
    demo = Demo(quiet=quiet, use_claude=use_claude, directory=directory)
    if not ARTIFACTS.exists():
        print("paygent demo: the contracts are not compiled — run `make demo` (it compiles) or `ape compile`",
              file=sys.stderr)
        return DemoResult(2, 0, 0, 0, [], [])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    exit_code = 0
    records: list[StepRecord] = []
    scenario_s = 0.0
    session = None
    try:
        demo.log("Paygent demo — private local chain, no network needed\n")
        demo.log("Starting:")
        demo.start_chain()
        demo.deploy()
        demo.start_keeper()
        demo.start_service()
        missing = [p for p in demo.pieces.values() if not p.ok]
        if missing:
            demo.log("\nMISSING: " + "; ".join(f"{p.name}: {p.detail}" for p in missing)
                     + " — the steps that need them are skipped.")
        demo.log("\nScenario (agent: " + ("Claude" if use_claude else "offline planner") + "):")
        started = time.monotonic()
        records, (runtime, session) = demo.run_agent()
        scenario_s = time.monotonic() - started
        demo.log("\n" + summary(records, runtime, session))
        unexpected = [r for r in records if r.stop != "skipped" and r.ok != r.expected]
        if unexpected:
            demo.log("\nUNEXPECTED: " + "; ".join(f"{r.title} ({r.stop})" for r in unexpected))
            exit_code = 1
        runtime.close()
    except KeyboardInterrupt:
        print("\npaygent demo: interrupted — stopping everything it started", file=sys.stderr)
        exit_code = 130
    except Exception as exc:  # noqa: BLE001 - one readable line, then clean up
        print(f"\npaygent demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  logs: {directory}", file=sys.stderr)
        exit_code = 1
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, previous)
    wall = time.monotonic() - began
    shown = directory.relative_to(PROJECT_ROOT) if directory.is_relative_to(PROJECT_ROOT) else directory
    demo.log(f"\nStopped the chain, keeper and service. Logs: {shown} "
             f"(tools.jsonl = every tool call). Wall time {wall:.1f}s.")
    overhead = session.overhead_ms() if session is not None else []
    return DemoResult(exit_code, wall, scenario_s, len(overhead), overhead, records)


def summary(records: list[StepRecord], runtime: Any, session: Any) -> str:
    from agent.session import usdc_text

    rows = []
    for i, r in enumerate(records, 1):
        outcome = "skipped" if r.stop == "skipped" else ("ok" if r.ok else r.stop or "refused")
        rows.append((str(i), r.title, r.request[:52], str(len(r.tools)), usdc_text(r.spent), outcome))
    out = ["Summary", table(rows, ("#", "step", "request", "tools", "spent", "result"))]
    limits = runtime.toolbox.get_limits(__import__("agent.tools", fromlist=["GetLimits"]).GetLimits())
    out.append("")
    out.append(f"On-chain window (USDC.e): spent {limits['spent']} of {limits['limit']} "
               f"(cap {limits['cap']} per payment; available now {limits['available']})")
    out.append(f"Session: spent {usdc_text(session.ledger.spent)} of the {usdc_text(session.ledger.budget)} budget "
               f"(owner-approved payments are counted here but not in the on-chain window)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paygent.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--claude", action="store_true", help="use Claude when ANTHROPIC_API_KEY is set")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    return run(quiet=args.quiet, use_claude=args.claude).exit_code


if __name__ == "__main__":
    raise SystemExit(main())
