"""The JSONL log of every tool call: one JSON object per line, with its cost and timings.

Arguments are logged as validated (they never contain keys); results are shortened.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

MAX_RESULT_CHARS = 2_000


class ToolLog:
    """Appends to `path` (created on first write). `path=None` keeps nothing (tests, benchmarks)."""

    def __init__(self, path: Path | None, session_id: str):
        self.path = path
        self.session_id = session_id
        self._fh = None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = {"ts": round(time.time(), 3), "session": self.session_id, **record}
        if "result" in line:
            text = json.dumps(line["result"], default=str)
            if len(text) > MAX_RESULT_CHARS:
                line["result"] = text[:MAX_RESULT_CHARS] + "..."
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(json.dumps(line, default=str) + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
