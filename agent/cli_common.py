"""What the `paygent` command groups share: the context (settings, --json, lazy runtime) and error output.

Errors print one readable line plus a hint, never a traceback (PAYGENT_DEBUG=1 shows it).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from agent.settings import AgentSettings


@dataclass
class CliContext:
    settings: AgentSettings
    as_json: bool = False
    _runtime: Any = field(default=None, repr=False)

    def runtime(self) -> Any:
        from agent.runtime import build_runtime

        if self._runtime is None:
            self._runtime = build_runtime(self.settings)
        return self._runtime

    def emit(self, data: Any, text: str) -> None:
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else text)


class Amount(click.ParamType):
    """A token amount on the command line (e.g. 1.5): a finite decimal, not negative (or, with
    `positive`, above zero). Anything else is click's one-line usage error naming the option."""

    name = "amount"

    def __init__(self, positive: bool = False):
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            return value
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount (write it like 1.5)", param, ctx)
        if not amount.is_finite() or amount < 0 or (self.positive and amount == 0):
            self.fail(f"{value!r} is not a{' positive' if self.positive else 'n'} amount", param, ctx)
        return amount


def fail(message: str, hint: str = "", code: int = 1, as_json: bool | None = None) -> None:
    """One red line (and a hint) on stderr, then exit. With --json, also {"error", "hint"} on stdout."""
    if as_json is None:
        current = click.get_current_context(silent=True)
        obj = current.find_object(CliContext) if current is not None else None
        as_json = bool(obj is not None and obj.as_json)
    if as_json:
        click.echo(json.dumps({"error": message, "hint": hint or None}))
    click.secho(f"paygent: {message}", fg="red", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)
    sys.exit(code)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known failures into one line + hint."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from agent.runtime import SetupError
        from agent.tools import ToolError

        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except SetupError as exc:
            fail(str(exc), exc.hint)
        except ToolError as exc:
            fail(exc.message, exc.hint or "")
        except Exception as exc:  # noqa: BLE001 - the CLI's promise: no tracebacks
            if os.environ.get("PAYGENT_DEBUG"):
                raise
            fail(f"{type(exc).__name__}: {str(exc)[:300]}", "rerun with PAYGENT_DEBUG=1 for the traceback")

    return wrapper


pass_ctx = click.make_pass_decorator(CliContext)
