"""Benchmarks: each module has `main() -> dict`, prints a table and writes build/bench/<name>.json."""

import json
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[1] / "build" / "bench"


def write_json(name: str, data: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def print_table(title: str, rows: list[tuple], headers: tuple) -> None:
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in r) for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(width[j]) if j else c.ljust(width[j]) for j, c in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in width))
