"""The visible todo plan: steps with a status, re-rendered whenever one changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pending", "running", "done", "failed", "skipped"]
MARKS: dict[str, str] = {"pending": "[ ]", "running": "[~]", "done": "[x]", "failed": "[!]", "skipped": "[-]"}


@dataclass
class Step:
    text: str
    tool: str | None = None
    status: Status = "pending"
    note: str = ""


@dataclass
class TodoPlan:
    steps: list[Step] = field(default_factory=list)
    listeners: list[Callable[["TodoPlan"], None]] = field(default_factory=list)
    declared: bool = False
    """A planner laid the plan out up front: tool calls tick its steps instead of adding new ones."""

    def set(self, items: list[tuple[str, str | None]]) -> None:
        self.steps = [Step(text, tool) for text, tool in items]
        self.declared = True
        self._changed()

    def clear(self) -> None:
        self.steps = []
        self.declared = False

    def add(self, text: str, tool: str | None = None) -> Step:
        step = Step(text, tool)
        self.steps.append(step)
        self._changed()
        return step

    def next_for(self, tool: str) -> Step | None:
        """The first step still open for `tool` (a planner-declared plan is ticked off in order)."""
        for step in self.steps:
            if step.status in ("pending", "running") and step.tool == tool:
                return step
        return None

    def mark(self, step: Step, status: Status, note: str = "") -> None:
        step.status = status
        step.note = note
        self._changed()

    def skip_rest(self, note: str = "") -> None:
        changed = False
        for step in self.steps:
            if step.status == "pending":
                step.status, step.note, changed = "skipped", note, True
        if changed:
            self._changed()

    def render(self) -> str:
        if not self.steps:
            return "(no plan)"
        lines = []
        for i, s in enumerate(self.steps, 1):
            note = f" — {s.note}" if s.note else ""
            lines.append(f"  {MARKS[s.status]} {i}. {s.text}{note}")
        return "\n".join(lines)

    def as_json(self) -> list[dict[str, str | None]]:
        return [{"step": s.text, "tool": s.tool, "status": s.status, "note": s.note} for s in self.steps]

    def _changed(self) -> None:
        for listener in self.listeners:
            listener(self)
