"""`paygent` — the command line.

  paygent agent "buy the CRO price from the cheapest oracle, then swap 2 USDC to CRO"
  paygent chat                                  interactive; asks before large actions
  paygent wallet status|limits|history
  paygent services list|show
  paygent approvals list|approve|reject|edit    (the owner)
  paygent keeper run|status|...                 (the keeper daemon, when installed)

`--network local|cronos-testnet`, `--json` for machine-readable output. With ANTHROPIC_API_KEY set
the agent plans with Claude, otherwise with the deterministic offline planner (`--offline` forces it).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import click

from agent.cli_approvals import approvals
from agent.cli_common import Amount, CliContext, fail, friendly, pass_ctx
from agent.cli_services import services
from agent.cli_wallet import wallet


@click.group()
@click.option("--network", default=None, help="local (default) or cronos-testnet.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--offline", is_flag=True, help="Use the offline planner even when ANTHROPIC_API_KEY is set.")
@click.option("--budget", type=Amount(), default=None, help="Session budget in USDC.e (default PAYGENT_SESSION_BUDGET).")
@click.pass_context
def main(ctx: click.Context, network: str | None, as_json: bool, offline: bool, budget: Decimal | None) -> None:
    """Paygent: an AI agent that pays for services and trades on Cronos inside its owner's on-chain limits."""
    from pydantic import ValidationError

    from agent.settings import AgentSettings

    overrides: dict[str, Any] = {}
    if network:
        overrides["network"] = network
    if offline:
        overrides["offline"] = True
    if budget is not None:
        overrides["session_budget"] = budget
    try:
        settings = AgentSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"PAYGENT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"bad settings: {problems}", "check the PAYGENT_* environment variables", as_json=as_json)
    ctx.obj = CliContext(settings, as_json)


def _printer(ctx: CliContext):  # noqa: ANN202
    def on_event(kind: str, data: dict[str, Any]) -> None:
        if ctx.as_json:
            return
        if kind == "plan" and not any(step["status"] == "running" for step in data["plan"]):
            click.secho("plan:\n" + data["text"], fg="cyan", err=True)
        elif kind == "plan":
            return
        elif kind == "call":
            args = ", ".join(f"{k}={v}" for k, v in data["args"].items())
            click.secho(f"  -> {data['tool']}({args})", dim=True, err=True)
        elif kind == "result" and not data["ok"]:
            click.secho(f"  <- {data['tool']}: {data['error']['code']}: {data['error']['message']}", fg="yellow", err=True)
    return on_event


def _confirm(interactive: bool, yes: bool):  # noqa: ANN202
    if yes:
        return None
    if interactive:
        return lambda what: click.confirm(f"  allow {what}?", default=False, err=True)

    def refuse(what: str) -> bool:
        click.echo(f"  not confirmed (no terminal to ask): {what}; pass --yes to allow large actions", err=True)
        return False
    return refuse


def _run(ctx: CliContext, request: str, session: Any, planner: Any) -> bool:
    answer = planner.handle(request, session)
    data = {"request": request, "answer": answer.text, "ok": answer.ok, "stop_reason": answer.stop_reason,
            "planner": planner.name, "plan": session.plan.as_json(),
            "tool_calls": [{"tool": o.tool, "args": o.args, "ok": o.ok, "error": o.error, "spent": o.spent}
                           for o in answer.outcomes],
            "session_spent": session.ledger.spent, "session_budget": session.ledger.budget}
    if ctx.as_json:
        click.echo(__import__("json").dumps(data, indent=2, default=str))
    else:
        click.echo(answer.text)
    return answer.ok


@main.command("agent")
@click.argument("request", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Allow large actions without asking.")
@pass_ctx
@friendly
def agent_command(ctx: CliContext, request: tuple[str, ...], yes: bool) -> None:
    """Carry out one REQUEST in plain language."""
    from agent.runtime import make_planner, make_session

    rt = ctx.runtime()
    session = make_session(rt, confirm=_confirm(sys.stdin.isatty(), yes), on_event=_printer(ctx))
    planner = make_planner(ctx.settings)
    ok = _run(ctx, " ".join(request), session, planner)
    rt.close()
    sys.exit(0 if ok else 1)


@main.command("chat")
@click.option("--yes", is_flag=True, help="Allow large actions without asking.")
@pass_ctx
@friendly
def chat(ctx: CliContext, yes: bool) -> None:
    """Talk to the agent; it asks before large actions. Ctrl-D or 'quit' ends."""
    from agent.runtime import make_planner, make_session

    rt = ctx.runtime()
    session = make_session(rt, confirm=_confirm(True, yes), on_event=_printer(ctx))
    planner = make_planner(ctx.settings)
    # With --json, stdout carries only the answers (one JSON object each); the talk goes to stderr.
    click.echo(f"paygent chat — planner: {planner.name}, network: {rt.network.name}, "
               f"session budget {ctx.settings.session_budget} USDC.e. 'quit' to leave.", err=ctx.as_json)
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False, err=ctx.as_json)
        except (EOFError, click.Abort):
            break
        if line.strip().lower() in ("quit", "exit", "q"):
            break
        if line.strip():
            _run(ctx, line, session, planner)
    rt.close()


main.add_command(wallet)
main.add_command(services)
main.add_command(approvals)

try:
    from keeper.cli import keeper as _keeper_group
except ImportError as _exc:  # the keeper is optional for the agent
    _missing = getattr(_exc, "name", None) or str(_exc)

    @main.command("keeper", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def _keeper_missing() -> None:
        """The keeper daemon (not installed in this build)."""
        fail(f"the keeper is not available in this installation ({_missing} cannot be imported)",
             "install the full project (`make install`) to run `paygent keeper`")
else:
    main.add_command(_keeper_group)


if __name__ == "__main__":
    main()
