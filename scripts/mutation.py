"""Mutation check for the property suite: plant known bugs in the contracts, one at a time, and
require tests/contracts/test_properties.py to catch every one.

`make mutation` (or `python scripts/mutation.py [--only ID ...] [--skip-baseline] [--keep]`).

For each mutant: copy the project's contracts/, tests/ and config into a temporary directory (the
real contracts/ are never touched), apply one text substitution to one .sol file, `ape compile`
there, and run the property machine that guards that contract (HYPOTHESIS_PROFILE=mutation,
a private anvil per run). A mutant is KILLED when the suite fails. The script exits non-zero when
any mutant survives, when a mutation's search text is not found exactly once in its file (so the
list cannot silently rot as the contracts change), when a mutant does not compile, or when the
unmutated baseline does not pass. Results: a table on stdout and build/mutation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/contracts/test_properties.py"
WALLET = "test_wallet_invariants"
ROUTER = "test_registry_and_router_invariants"


@dataclass(frozen=True)
class Mutant:
    id: str
    bug: str
    file: str  # relative to contracts/
    search: str  # must occur exactly once in the file
    replace: str
    test: str  # which machine must catch it


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "limit-check-removed", "the window limit is never checked",
        "AgentWallet.sol",
        "if (int256(amount) > remaining) _revertLimitExceeded(",
        "if (false) _revertLimitExceeded(",
        WALLET,
    ),
    Mutant(
        "window-never-resets", "spend from an earlier window keeps counting forever",
        "AgentWallet.sol",
        "int256 remaining = w.windowIndex == index ? int256(w.remaining) : int256(uint256(_limits[agent][token].limit));",
        "int256 remaining = int256(w.remaining);",
        WALLET,
    ),
    Mutant(
        "window-resets-early", "the window rolls over after half a period",
        "AgentWallet.sol",
        "uint256 index = block.timestamp / period;",
        "uint256 index = block.timestamp / (period / 2 == 0 ? 1 : period / 2);",
        WALLET,
    ),
    Mutant(
        "approval-executes-twice", "an approved request stays Pending after it executed",
        "AgentWallet.sol",
        "req.status = RequestStatus.Executed;",
        "req.status = RequestStatus.Pending;",
        WALLET,
    ),
    Mutant(
        "expiry-ignored", "an expired request can still be approved",
        "AgentWallet.sol",
        "if (block.timestamp >= req.expiresAt) revert RequestHasExpired(",
        "if (false) revert RequestHasExpired(",
        WALLET,
    ),
    Mutant(
        "set-rule-not-owner-only", "anyone may change an agent's limits (onlyOwner removed from setRule)",
        "AgentWallet.sol",
        "uint96 floatCap) external onlyOwner",
        "uint96 floatCap) external",
        WALLET,
    ),
    Mutant(
        "cap-check-removed", "the per-payment cap is never checked",
        "AgentWallet.sol",
        "if (amount > w.cap) revert CapExceeded(",
        "if (false) revert CapExceeded(",
        WALLET,
    ),
    Mutant(
        "paused-agent-pays", "a paused agent may still spend",
        "AgentWallet.sol",
        "if (a.paused) revert AgentIsPaused(",
        "if (false) revert AgentIsPaused(",
        WALLET,
    ),
    Mutant(
        "fee-cap-ignored", "setFee accepts a fee above the immutable maximum",
        "PaymentRouter.sol",
        "if (newFeeBps > MAX_FEE_BPS) revert FeeTooHigh(",
        "if (false) revert FeeTooHigh(",
        ROUTER,
    ),
    Mutant(
        "inactive-service-paid", "the router pays a deactivated service",
        "PaymentRouter.sol",
        "if (!active) revert ServiceInactive(",
        "if (false) revert ServiceInactive(",
        ROUTER,
    ),
    # Beyond the required list: one planted bug for each remaining invariant family.
    Mutant(
        "window-edge-off-by-one", "the last second of a window already counts in the next one",
        "AgentWallet.sol",
        "uint256 index = block.timestamp / period;",
        "uint256 index = (block.timestamp + 1) / period;",
        WALLET,
    ),
    Mutant(
        "rule-change-forgets-spend", "setRule with the same period restarts the window (2x the limit in one window)",
        "AgentWallet.sol",
        "if (w.period == period && w.windowIndex == current) {",
        "if (false) {",
        WALLET,
    ),
    Mutant(
        "swap-output-to-agent", "swap output goes to the agent instead of the wallet",
        "AgentWallet.sol",
        "(amountIn, minOut, path, address(this), deadline)",
        "(amountIn, minOut, path, msg.sender, deadline)",
        WALLET,
    ),
    Mutant(
        "router-keeps-a-unit", "settlement forwards one unit less than value - fee (conservation broken)",
        "PaymentRouter.sol",
        "SafeTransfer.safeTransfer(t.token, t.payTo, value - t.fee);",
        "SafeTransfer.safeTransfer(t.token, t.payTo, value - t.fee - (value > t.fee ? 1 : 0));",
        ROUTER,
    ),
    Mutant(
        "anyone-edits-services", "a service can be edited by someone other than its provider",
        "ServiceRegistry.sol",
        "if (provider != caller) revert NotProvider(",
        "if (false) revert NotProvider(",
        ROUTER,
    ),
    Mutant(
        "deactivation-event-says-active", "ServiceDeactivated carries active = true (events no longer rebuild state)",
        "ServiceRegistry.sol",
        "s.payTo, s.metadataURI,\n            false\n        );",
        "s.payTo, s.metadataURI,\n            true\n        );",
        ROUTER,
    ),
    Mutant(
        "payer-max-ignored", "pay / subscribe charge above the payer's maxAmount",
        "PaymentRouter.sol",
        "if (amount > maxAmount) revert AmountAboveMax(",
        "if (false) revert AmountAboveMax(",
        ROUTER,
    ),
    Mutant(
        "payer-token-ignored", "pay / subscribe accept another token than the payer named",
        "PaymentRouter.sol",
        "if (t.token != token) revert WrongToken(",
        "if (false) revert WrongToken(",
        ROUTER,
    ),
    Mutant(
        "payer-period-ignored", "subscribe accepts another period than the payer named",
        "PaymentRouter.sol",
        "if (t.period != period) revert WrongPeriod(",
        "if (false) revert WrongPeriod(",
        ROUTER,
    ),
    Mutant(
        "authorization-nonce-reusable", "the token never marks an EIP-3009 nonce used",
        "local/FiatTokenLocal.sol",
        "        _authorizationStates[from][nonce] = true;\n        emit AuthorizationUsed(from, nonce);",
        "        emit AuthorizationUsed(from, nonce);",
        ROUTER,
    ),
)


@dataclass
class Result:
    id: str
    bug: str
    status: str  # killed | SURVIVED | NOT-FOUND | NO-COMPILE | ERROR
    seconds: float
    evidence: str


def make_workspace(keep: bool) -> Path:
    """A throwaway project: copies of what a mutant changes or the run writes, links to the rest."""
    work = Path(tempfile.mkdtemp(prefix="paygent-mutation-"))
    shutil.copytree(ROOT / "contracts", work / "contracts")
    for name in ("ape-config.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, work / name)
    (work / "tests" / "contracts").mkdir(parents=True)
    shutil.copy2(ROOT / "tests" / "conftest.py", work / "tests" / "conftest.py")
    for name in ("conftest.py", Path(SUITE).name):
        shutil.copy2(ROOT / "tests" / "contracts" / name, work / "tests" / "contracts" / name)
    for name in ("paygent", "tools"):  # read-only for the run
        (work / name).symlink_to(ROOT / name)
    if (ROOT / ".build").is_dir():  # compiled artifacts: only the mutated file and its dependents recompile
        shutil.copytree(ROOT / ".build", work / ".build")
    if keep:
        print(f"workspace: {work}")
    return work


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        APE_FOUNDRY_HOST="auto",
        HYPOTHESIS_PROFILE=os.environ.get("MUTATION_PROFILE", "mutation"),
        SOLCX_BINARY_PATH=str(ROOT / "tools" / "solcx"),
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{e.get('PATH', '')}",
    )
    return e


def ape(work: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ape"), *args], cwd=work, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def evidence(output: str) -> str:
    """The first assertion or error line of a failed run (what caught the mutant)."""
    for line in output.splitlines():
        s = line.strip()
        if s.startswith("E ") and ("Error" in s or "assert" in s or "expected" in s):
            return s[2:].strip()[:160]
    return (output.strip().splitlines() or ["(no output)"])[-1][:160]


def run_suite(work: Path, test: str | None) -> subprocess.CompletedProcess:
    args = ["test", SUITE, "-x", "-q", "-p", "no:cacheprovider"]
    if test:
        args += ["-k", test]
    return ape(work, *args, timeout=3600)


def check(mutant: Mutant, work: Path) -> Result:
    start = time.monotonic()
    source = work / "contracts" / mutant.file
    original = source.read_text()
    count = original.count(mutant.search)
    if count != 1:
        return Result(mutant.id, mutant.bug, "NOT-FOUND", 0.0, f"search text found {count} times in {mutant.file}")
    source.write_text(original.replace(mutant.search, mutant.replace))
    try:
        compiled = ape(work, "compile", timeout=1800)
        if compiled.returncode != 0:
            return Result(mutant.id, mutant.bug, "NO-COMPILE", time.monotonic() - start,
                          evidence(compiled.stdout + compiled.stderr))
        run = run_suite(work, mutant.test)
        out = run.stdout + run.stderr
        if run.returncode == 0:
            status, why = "SURVIVED", "the property suite passed"
        elif run.returncode == 1:
            status, why = "killed", evidence(out)
        else:
            status, why = "ERROR", f"ape test exit {run.returncode}: {evidence(out)}"
        return Result(mutant.id, mutant.bug, status, time.monotonic() - start, why)
    finally:
        source.write_text(original)


def table(results: list[Result]) -> str:
    rows = [("mutant", "status", "time", "caught by / reason")]
    rows += [(r.id, r.status, f"{r.seconds:.0f}s", r.evidence) for r in results]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(width[0]), row[1].ljust(width[1]), row[2].rjust(width[2]), row[3]]))
        if i == 0:
            lines.append("  ".join("-" * w for w in width) + "  " + "-" * 20)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="run only these mutant ids")
    parser.add_argument("--skip-baseline", action="store_true", help="do not first run the unmutated suite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)

    mutants = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list or not mutants:
        for m in MUTANTS:
            print(f"{m.id:<30} {m.file:<26} {m.bug}")
        return 0 if mutants or args.list else 2

    work = make_workspace(args.keep)
    results: list[Result] = []
    baseline_ok = True
    try:
        compiled = ape(work, "compile", timeout=1800)
        if compiled.returncode != 0:
            print(compiled.stdout + compiled.stderr, file=sys.stderr)
            return 2
        if not args.skip_baseline:
            print("baseline: the unmutated contracts must pass the property suite ...", flush=True)
            start = time.monotonic()
            run = run_suite(work, None)
            baseline_ok = run.returncode == 0
            print(f"baseline: {'passed' if baseline_ok else 'FAILED'} in {time.monotonic() - start:.0f}s", flush=True)
            if not baseline_ok:
                print(run.stdout[-4000:] + run.stderr[-2000:], file=sys.stderr)
        for m in mutants:
            print(f"mutant {m.id} ...", flush=True)
            results.append(check(m, work))
            print(f"  {results[-1].status} ({results[-1].seconds:.0f}s): {results[-1].evidence}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(table(results))
    killed = sum(r.status == "killed" for r in results)
    print(f"\n{killed}/{len(results)} mutants killed" + ("" if baseline_ok else "; BASELINE FAILED"))
    out = ROOT / "build" / "mutation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"baseline_passed": baseline_ok if not args.skip_baseline else None,
                               "killed": killed, "total": len(results),
                               "mutants": [asdict(r) for r in results]}, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return 0 if baseline_ok and killed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
