"""`paygent services list|show` — registered services (keeper API, or the registry on chain)."""

from __future__ import annotations

from decimal import Decimal

import click

from agent.cli_common import Amount, CliContext, friendly, pass_ctx
from agent.tools import DiscoverServices


@click.group("services")
def services() -> None:
    """Services registered in the ServiceRegistry."""


@services.command("list")
@click.option("--query", default=None, help="Words to match in name/description.")
@click.option("--max-price", type=Amount(), default=None, help="Highest price per call (USDC.e).")
@click.option("--model", type=click.Choice(["per-call", "metered", "subscription"]), default=None)
@pass_ctx
@friendly
def list_services(ctx: CliContext, query: str | None, max_price: Decimal | None, model: str | None) -> None:
    """Active services, cheapest and most reliable first."""
    out = ctx.runtime().toolbox.discover_services(DiscoverServices(query=query, max_price=max_price, model=model))
    if ctx.as_json:
        ctx.emit(out, "")
        return
    if not out["services"]:
        click.echo("no matching active service")
        return
    click.echo(f"{'id':>3}  {'name':<24} {'price':>10}  {'model':<12} endpoint   (source: {out['source']})")
    for s in out["services"]:
        mem = s.get("memory")
        seen = f"  [{mem['successes']}/{mem['calls']} ok]" if mem else ""
        click.echo(f"{s['id']:>3}  {s['name']:<24} {s['price'] + ' ' + s['token']:>10}  {s['model']:<12} "
                   f"{s['endpoint']}{seen}")


@services.command("show")
@click.argument("service")
@pass_ctx
@friendly
def show(ctx: CliContext, service: str) -> None:
    """One service by name or id."""
    tb = ctx.runtime().toolbox
    svc = tb.service(service)
    tok = tb._token_for(svc)
    rec = tb.memory.get(svc["id"]) if tb.memory is not None else None
    data = {**svc, "price_human": tok.human(svc["price"]), "token_symbol": tok.symbol,
            "memory": rec.__dict__ if rec else None}
    lines = [f"#{svc['id']} {svc['name']} ({'active' if svc['active'] else 'INACTIVE'})",
             f"  price     {tok.text(svc['price'])} ({svc['model']}" + (f", period {svc['period']}s)" if svc['period'] else ")"),
             f"  endpoint  {svc['endpoint']}", f"  payTo     {svc['payTo']}", f"  about     {svc['description']}"]
    if rec:
        lines.append(f"  memory    {rec.successes}/{rec.calls} calls ok, ~{rec.avg_latency_ms:.0f} ms")
    ctx.emit(data, "\n".join(lines))
