"""`python -m bench.keeper`: the keeper's indexing rate against the raw eth_getLogs rate, same run.

A private anvil gets >= 50,000 genuine ServiceRegistry / PaymentRouter events (the test-only
contracts/test/EventSpammer.sol calls the real router and registry many times per transaction).
Then, alternately (best of two each):
  raw      eth_getLogs over the whole range in the keeper's block-range steps + JSON decoding
           (the same HTTP client the keeper uses) — the ceiling for any indexer on this node;
  keeper   the real Indexer into a fresh SQLite store: fetch, verify block hashes, decode, write
           rows + projections + cursor per batch.
ratio = keeper / raw. RSS is sampled while the keeper indexes and reported at 20/50/100 % of the
events (flat = bounded batches). Writes build/bench/keeper.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import print_table, write_json
from paygent.artifacts import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests" / "keeper"))

EVENTS = int(os.environ.get("BENCH_KEEPER_EVENTS", "50000"))
PER_TX = 2_500
UPDATES_PER_TX = 100  # ServiceUpdated events carry strings: the slow (eth_abi) decoding path
RANGE = 2             # blocks per eth_getLogs call (~5,000 logs), both for raw and keeper


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def generate(stack, events: int) -> int:
    made = 0
    while made < events:
        pays = min(PER_TX - UPDATES_PER_TX, events - made)
        stack.spam(pays, UPDATES_PER_TX)
        made += pays + UPDATES_PER_TX
    return made


def raw_rate(stack, start: int, head: int) -> tuple[float, int]:
    from keeper.indexer import Rpc

    rpc = Rpc(stack.url, timeout=60)
    addresses = sorted(stack.manifest.address(n).lower() for n in ("ServiceRegistry", "PaymentRouter", "AgentWallet")
                       if n in stack.manifest.contracts)
    count = 0
    began = time.perf_counter()
    for lo in range(start, head + 1, RANGE):
        logs = rpc.call("eth_getLogs", [{"fromBlock": hex(lo), "toBlock": hex(min(head, lo + RANGE - 1)),
                                         "address": addresses}])
        count += len(logs)
    seconds = time.perf_counter() - began
    rpc.close()
    return count / seconds, count


def keeper_rate(stack, start: int, head: int, directory: Path) -> tuple[float, int, list[tuple[int, float]]]:
    from keeper.indexer import Indexer, IndexerConfig, Rpc, Source, contracts_from_manifest, default_decoder
    from keeper.store import Store

    store = Store(directory / f"bench-{time.monotonic_ns()}.sqlite", stack.manifest.chain_id)
    contracts = contracts_from_manifest(stack.manifest)
    decoder = default_decoder()
    indexer = Indexer(lambda: Source(Rpc(stack.url, timeout=60), contracts, decoder), store,
                      IndexerConfig(start_block=start, max_range=RANGE, min_range=1, max_logs=6_000,
                                    poll_interval=0.01))
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((indexer.health.events, rss_mb()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    thread = threading.Thread(target=indexer.run, daemon=True)
    began = time.perf_counter()
    sampler.start()
    thread.start()
    while (indexer.health.indexed or 0) < head:
        time.sleep(0.01)  # polling wakes need the GIL: poll gently (<1% of a run)
    seconds = time.perf_counter() - began
    indexer.stop.set()
    thread.join(10)
    done.set()
    sampler.join(1)
    events = indexer.health.events
    store.close()
    return events / seconds, events, samples


def main() -> dict:
    from chainkit import deploy_stack, local_chain

    with tempfile.TemporaryDirectory() as tmp, local_chain() as chain:
        directory = Path(tmp)
        stack = deploy_stack(chain.url, directory / "deployments", spam_funds=10**18)
        began = time.perf_counter()
        generate(stack, EVENTS)
        gen_seconds = time.perf_counter() - began
        start, head = stack.manifest.deployment_block, stack.w3.eth.block_number
        baseline = rss_mb()
        raws, keepers, all_samples = [], [], []
        for _ in range(2):
            rate, raw_events = raw_rate(stack, start, head)
            raws.append(rate)
            rate, events, samples = keeper_rate(stack, start, head, directory)
            keepers.append(rate)
            all_samples = samples
        raw, indexed = max(raws), max(keepers)
        assert events == raw_events, f"keeper stored {events} events, the node has {raw_events}"

        def rss_at(share: float) -> float:
            goal = share * events
            return next((r for n, r in all_samples if n >= goal), all_samples[-1][1] if all_samples else 0.0)

        checkpoints = {f"{int(s * 100)}%": round(rss_at(s), 1) for s in (0.2, 0.5, 1.0)}
        peak = max((r for _n, r in all_samples), default=baseline)
        result = {
            "events": events, "raw_getlogs_per_s": round(raw), "indexed_per_s": round(indexed),
            "ratio": round(indexed / raw, 3), "rss_mb": round(peak, 1), "rss_baseline_mb": round(baseline, 1),
            "rss_mb_at": checkpoints, "blocks": head - start + 1, "getlogs_range_blocks": RANGE,
            "generate_seconds": round(gen_seconds, 1), "runs": {"raw": [round(r) for r in raws],
                                                                "keeper": [round(k) for k in keepers]},
        }
    path = write_json("keeper", result)
    print_table(f"keeper indexing ({events} events over {result['blocks']} blocks; best of 2)", [
        ("raw eth_getLogs + JSON", f"{result['raw_getlogs_per_s']:,}/s", ""),
        ("keeper fetch+decode+store", f"{result['indexed_per_s']:,}/s", f"ratio {result['ratio']} (target >= 0.7)"),
        ("RSS before indexing", f"{result['rss_baseline_mb']} MB", ""),
        *[(f"RSS at {k} of events", f"{v} MB", "") for k, v in checkpoints.items()],
    ], ("measure", "value", "note"))
    print(f"\nwritten: {path}")
    return result


if __name__ == "__main__":
    main()
