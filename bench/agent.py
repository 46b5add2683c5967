"""`python -m bench.agent`: the demo scenario's wall time and the agent's own time per tool call.

Runs the full demo (private chain, deploy, keeper, paid service, offline planner scenario) quietly
and reports, per tool call, the time spent outside chain RPCs and HTTP (measured by timing every
JSON-RPC and HTTP round trip): planning, validation, session checks, ABI encoding, signing, log and
memory writes. A second, chain-free pass runs the same planner and session over a zero-latency toolbox
so the pure planning + bookkeeping cost is visible on its own. Target: < 5 ms per tool call.
Writes build/bench/agent.json.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import print_table, write_json

TARGET_MS = 5.0


class NullToolbox:
    """A zero-latency toolbox for the chain-free pass: answers every tool instantly (no I/O at all)."""

    def io_seconds(self) -> float:
        return 0.0

    def known_payees(self) -> set[str]:
        return set()

    def cost(self, name: str, args: Any) -> Any:
        from agent.tools import Cost

        return Cost(0, name)

    def discover_services(self, args: Any) -> dict[str, Any]:
        return {"services": [{"id": 1, "name": "vvs-price-oracle", "price": "0.01", "description": "price oracle",
                              "model": "per-call", "active": True}], "summary": "1 service"}

    def __getattr__(self, name: str) -> Any:
        return lambda args: {"summary": name, "_spent": 0}


def planner_only(rounds: int = 200) -> float:
    from agent.offline import OfflinePlanner
    from agent.records import ToolLog
    from agent.session import Session

    requests = ["show my limits and balance", "buy the CRO price from the cheapest price oracle",
                "swap 2 USDC to CRO with 1% max slippage", "show my history"]
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(NullToolbox(), budget=10**12, max_steps=10**6)  # type: ignore[arg-type]
        session.log = ToolLog(Path(tmp) / "tools.jsonl", "bench")
        planner = OfflinePlanner()
        started = time.perf_counter()
        for _ in range(rounds):
            for request in requests:
                planner.handle(request, session)
        elapsed = time.perf_counter() - started
        session.log.close()
    return elapsed * 1000 / len(session.outcomes)


def main() -> dict[str, Any]:
    from paygent.demo import run

    with tempfile.TemporaryDirectory(prefix="paygent-bench-agent-") as tmp:
        result = run(quiet=True, directory=Path(tmp) / "demo")
    if result.exit_code != 0:
        raise RuntimeError(f"the demo scenario failed (exit {result.exit_code})")
    overhead = result.overhead_ms
    mean = statistics.fmean(overhead) if overhead else 0.0
    pure = planner_only()
    data = {
        "demo_wall_s": round(result.wall_s, 2),
        "scenario_wall_s": round(result.scenario_s, 2),
        "tool_calls": result.tool_calls,
        "overhead_ms_per_tool_call": round(mean, 3),
        "overhead_ms_p50": round(statistics.median(overhead), 3) if overhead else 0.0,
        "overhead_ms_max": round(max(overhead), 3) if overhead else 0.0,
        "planner_session_only_ms_per_tool_call": round(pure, 4),
        "target_ms": TARGET_MS,
        "meets_target": mean < TARGET_MS,
    }
    write_json("agent", data)
    print_table("agent (offline planner, demo scenario)", [
        ("demo wall time (chain + deploy + keeper + service + scenario)", f"{data['demo_wall_s']} s"),
        ("scenario wall time", f"{data['scenario_wall_s']} s"),
        ("tool calls", data["tool_calls"]),
        ("agent overhead per tool call (mean, excl. chain/HTTP)", f"{data['overhead_ms_per_tool_call']} ms"),
        ("  p50 / max", f"{data['overhead_ms_p50']} / {data['overhead_ms_max']} ms"),
        ("planner + session only (no I/O, per call)", f"{data['planner_session_only_ms_per_tool_call']} ms"),
        ("target", f"< {TARGET_MS} ms: {'met' if data['meets_target'] else 'NOT met'}"),
    ], ("metric", "value"))
    return data


if __name__ == "__main__":
    main()
