"""`paygent approvals list|approve|reject|edit` — the owner decides on requests over the agent's limits."""

from __future__ import annotations

from decimal import Decimal

import click

from agent.cli_common import Amount, CliContext, friendly, pass_ctx


def _owner(ctx: CliContext, need_key: bool = True):  # noqa: ANN202
    from agent.owner import OwnerActions
    from agent.runtime import load_key

    rt = ctx.runtime()
    key = load_key(ctx.settings, "owner", rt.network.is_local) if need_key else None
    return OwnerActions(rt.w3, rt.toolbox.wallet.address, key, ctx.settings.keeper_url), rt


@click.group("approvals")
def approvals() -> None:
    """The owner's approval queue (requests the agent made above its limits)."""


@approvals.command("list")
@click.option("--status", type=click.Choice(["pending", "executed", "rejected", "cancelled", "expired", "all"]),
              default="pending", show_default=True)
@pass_ctx
@friendly
def list_approvals(ctx: CliContext, status: str) -> None:
    """Requests, newest first (keeper API when it runs, else read from the wallet)."""
    owner, rt = _owner(ctx, need_key=False)
    rows, source = owner.list(None if status == "all" else status)
    usdc = rt.toolbox.token("USDC")
    if ctx.as_json:
        ctx.emit({"approvals": rows, "source": source}, "")
        return
    if not rows:
        click.echo(f"no {status} requests (source: {source})")
        return
    for r in rows:
        tok = rt.toolbox.token_by_address(r["token"]) or usdc
        approved = int(r.get("approvedAmount") or 0)
        edited = f" (approved {tok.text(approved)})" if approved and approved != int(r["amount"]) else ""
        click.echo(f"#{r['requestId']:<4} {r['status']:<9} {tok.text(int(r['amount'])):>14}{edited} to {r['to']}  "
                   f"agent {r['agent']}  expires {r['expiresAt']}")


@approvals.command("approve")
@click.argument("request_id", type=int)
@pass_ctx
@friendly
def approve(ctx: CliContext, request_id: int) -> None:
    """Approve and execute request REQUEST_ID for its full amount."""
    owner, _rt = _owner(ctx)
    tx = owner.approve(request_id)
    ctx.emit({"requestId": request_id, "tx": tx, "status": owner.request(request_id)["status"]},
             f"approved #{request_id} (tx {tx})")


@approvals.command("edit")
@click.argument("request_id", type=int)
@click.option("--amount", type=Amount(positive=True), required=True, help="Lower amount to approve (token units, e.g. 1.5).")
@pass_ctx
@friendly
def edit(ctx: CliContext, request_id: int, amount: Decimal) -> None:
    """Approve request REQUEST_ID for a lower AMOUNT (executes that)."""
    owner, rt = _owner(ctx)
    req = owner.request(request_id)
    tok = rt.toolbox.token_by_address(req["token"]) or rt.toolbox.token("USDC")
    tx = owner.approve(request_id, tok.atomic(amount))
    ctx.emit({"requestId": request_id, "tx": tx, "approved": str(amount)},
             f"approved #{request_id} for {tok.text(tok.atomic(amount))} (tx {tx})")


@approvals.command("reject")
@click.argument("request_id", type=int)
@pass_ctx
@friendly
def reject(ctx: CliContext, request_id: int) -> None:
    """Reject request REQUEST_ID."""
    owner, _rt = _owner(ctx)
    tx = owner.reject(request_id)
    ctx.emit({"requestId": request_id, "tx": tx}, f"rejected #{request_id} (tx {tx})")
