"""The `Planner` role: turns one plain-language request into tool calls through a `Session`.

Two implementations: `agent.offline.OfflinePlanner` (deterministic, no network) and
`agent.claude.ClaudePlanner` (the Claude Messages API tool-use loop). Both go through the same
session, so budgets, recipient checks, confirmations, the plan and the log are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agent.session import Session, ToolOutcome


@dataclass
class Answer:
    text: str
    ok: bool
    stop_reason: str
    """done | not_understood | refused | refusal (the model declined) | budget | max_rounds | error"""
    outcomes: list[ToolOutcome] = field(default_factory=list)


class Planner(Protocol):
    name: str

    def handle(self, request: str, session: Session) -> Answer:
        """Plan and carry out `request`; every tool call goes through `session.call`."""
        ...
