"""`paygent keeper ...` — one click group; agent/cli.py adds it with `main.add_command(keeper)`.

  paygent keeper run [--config keeper.toml]      the daemon (also `python -m keeper`)
  paygent keeper status                          the store's cursor and row counts
  paygent keeper add-renewal FILE                store a subscriber's pre-signed renewal (JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from keeper.settings import ConfigError, load


def _settings(config: Path | None):
    try:
        return load(config)
    except ConfigError as exc:
        click.echo(f"paygent keeper: {exc}", err=True)
        sys.exit(2)


@click.group("keeper")
def keeper() -> None:
    """The keeper daemon: indexer, x402 facilitator, jobs, operator API."""


@keeper.command("run")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="TOML settings file (keys as the PAYGENT_* variables without the prefix, lower-case).")
def run_command(config: Path | None) -> None:
    """Run the keeper until SIGTERM / Ctrl-C."""
    from keeper.app import run, setup_logging

    settings = _settings(config)
    setup_logging(settings.log_level, settings.log_json)
    sys.exit(run(settings))


@keeper.command("status")
@click.option("--config", type=click.Path(path_type=Path), default=None)
def status_command(config: Path | None) -> None:
    """Print the indexer cursor and how many rows the store holds (no chain needed)."""
    from keeper import db as dbapi

    settings = _settings(config)
    target = settings.database
    if not target.is_postgres and not target.path.exists():
        click.echo(f"no keeper store at {target} yet")
        return
    try:
        db = dbapi.connect(target, readonly=True)
        cursor = db.execute("SELECT chain_id, block_number, block_hash FROM cursor").fetchall()
        out: dict = {"store": str(target), "cursor": [dict(zip(("chainId", "block", "hash"), c)) for c in cursor]}
        for table in ("services", "payments", "subscriptions", "approvals", "agents", "renewals"):
            out[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    except dbapi.ERRORS as exc:
        click.echo(f"paygent keeper: cannot read the keeper store {target}: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(out, indent=2))


@keeper.command("add-renewal")
@click.argument("file", type=click.File())
@click.option("--config", type=click.Path(path_type=Path), default=None)
def add_renewal_command(file, config: Path | None) -> None:
    """Store a pre-signed subscription renewal.

    FILE is JSON: {"serviceId", "from", "token", "value", "validAfter", "validBefore", "nonce",
    "signature"} — an EIP-3009 ReceiveWithAuthorization made out to the PaymentRouter, whose nonce
    names the service in its top 64 bits (paygent.eip3009.service_nonce), as the router requires.
    """
    from paygent import manifest as manifests
    from paygent.eip3009 import nonce_service
    from keeper.store import Store, StoreError

    settings = _settings(config)
    data = json.load(file)
    try:
        named = nonce_service(bytes.fromhex(str(data["nonce"]).removeprefix("0x")))
    except (KeyError, ValueError) as exc:
        raise click.ClickException(f"renewal has no valid nonce: {exc}") from None
    if named != int(data.get("serviceId", 0)):
        raise click.ClickException(
            f"the renewal's nonce names service {named}, not {data.get('serviceId')}: the router would refuse it "
            "(sign it with nonce = serviceId << 192 | random)")
    try:
        m = manifests.require(settings.net.name, settings.deployments_dir)
        store = Store(settings.database, m.chain_id)
        added = store.add_renewal(int(data["serviceId"]), data["from"], data.get("token") or m.address("USDC"),
                                  data["nonce"], int(data["value"]), int(data["validAfter"]),
                                  int(data["validBefore"]), data["signature"])
    except (KeyError, ValueError, manifests.ManifestError) as exc:
        click.echo(f"paygent keeper: bad renewal: {exc}", err=True)
        sys.exit(2)
    except StoreError as exc:
        click.echo(f"paygent keeper: {exc}", err=True)
        sys.exit(2)
    click.echo("stored" if added else "already stored")


def main() -> None:
    keeper(prog_name="python -m keeper")
