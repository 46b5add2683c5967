"""`python -m bench` (`make bench`): run every benchmark in turn; each writes build/bench/<name>.json."""

import importlib
import sys

MODULES = ("gas", "x402", "keeper", "agent")


def main() -> int:
    failed = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"\n[bench.{name}] not built yet: skipped")
            continue
        print(f"\n=== bench.{name} ===", flush=True)
        try:
            module.main()
        except Exception as exc:  # noqa: BLE001 - report and run the others
            print(f"[bench.{name}] FAILED: {exc!r}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
