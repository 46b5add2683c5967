"""Wiring: settings -> network, manifest, keys, web3, toolbox, session and planner.

Used by the CLI, the demo and the benchmark, so all three run the same agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agent.settings import ONE_USDC, AgentSettings


class SetupError(RuntimeError):
    """The agent cannot start; `hint` says what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def atomic_usdc(amount: Decimal) -> int:
    return int(amount * ONE_USDC)


def load_key(settings: AgentSettings, role: str, is_local: bool) -> Any:
    """The agent's or the owner's key: ape account alias, else PAYGENT_<ROLE>_KEY, else (local chain
    only) ape's public test account (agent: 1, owner: 0)."""
    from paygent import keys

    alias = getattr(settings, f"{role}_account")
    secret = getattr(settings, f"{role}_key")
    try:
        if alias:
            return keys.from_ape_keystore(alias)
        if secret is not None:
            variable = f"PAYGENT_{role.upper()}_KEY"
            return keys.from_env(variable, {variable: secret.get_secret_value()})
    except keys.KeyLoadError as exc:
        raise SetupError(f"{role} key: {exc}", f"check PAYGENT_{role.upper()}_KEY / PAYGENT_{role.upper()}_ACCOUNT") from None
    if is_local:
        from paygent.localchain import test_key

        return test_key(1 if role == "agent" else 0)
    raise SetupError(f"no {role} key configured for a real network",
                     f"set PAYGENT_{role.upper()}_ACCOUNT=<ape alias> (+ APE_ACCOUNTS_<alias>_PASSPHRASE) "
                     f"or PAYGENT_{role.upper()}_KEY")


@dataclass
class Runtime:
    settings: AgentSettings
    network: Any
    manifest: Any
    w3: Any
    toolbox: Any
    memory: Any
    io: Any

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
        self.toolbox.http.close()


def build_runtime(settings: AgentSettings, *, http: Any = None, memory: bool = True) -> Runtime:
    from paygent import manifest as manifests
    from paygent.artifacts import ArtifactsMissingError
    from paygent.networks import UnknownNetworkError, get_network

    from agent.chain import ChainToolbox, IoClock, timed_web3
    from agent.memory import Memory

    try:
        network = get_network(settings.network)
    except UnknownNetworkError as exc:
        raise SetupError(str(exc), "use --network local or --network cronos-testnet") from None
    try:
        manifest = manifests.require(network.name, settings.deployments_dir)
    except manifests.ManifestError as exc:
        raise SetupError(str(exc), "local: `make chain` then `ape run deploy` (the demo uses a private chain of its own); other networks: `ape run deploy --network ...`") from None
    io = IoClock()
    url = settings.rpc_url or network.rpc_url
    w3 = timed_web3(url, io)
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # noqa: BLE001 - any connection failure
        raise SetupError(f"cannot reach the {network.name} chain at {url} ({type(exc).__name__})",
                         "start it (`make chain`) or set PAYGENT_RPC_URL") from None
    if chain_id != manifest.chain_id:
        raise SetupError(f"{url} is chain {chain_id}, the {network.name} manifest is for chain {manifest.chain_id}",
                         "check --network / PAYGENT_RPC_URL")
    genesis = w3.eth.get_block(0)["hash"].hex()
    if genesis.removeprefix("0x") != manifest.genesis_hash.removeprefix("0x"):
        raise SetupError(f"the chain at {url} is not the one the {network.name} manifest was deployed on",
                         "the local chain was restarted: run `make demo` or `ape run deploy` again")
    account = load_key(settings, "agent", network.is_local)
    mem = Memory(settings.memory_path if memory else None, chain_id)
    try:
        toolbox = ChainToolbox(w3, manifest, network, account, wallet=settings.wallet, keeper_url=settings.keeper_url,
                               http=http, memory=mem, io=io, max_price_per_call=settings.max_price_per_call,
                               float_topup=settings.float_topup, approval_wait_seconds=settings.approval_wait_seconds,
                               approval_poll_seconds=settings.approval_poll_seconds)
        toolbox.warm_up()
    except (ArtifactsMissingError, manifests.ManifestError) as exc:
        raise SetupError(str(exc), "run `make compile` / deploy first") from None
    return Runtime(settings, network, manifest, w3, toolbox, mem, io)


def make_session(runtime: Runtime, *, confirm: Callable[[str], bool] | None = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None, log: bool = True) -> Any:
    from agent.records import ToolLog
    from agent.session import Session

    s = runtime.settings
    session = Session(runtime.toolbox, budget=atomic_usdc(s.session_budget), max_steps=s.max_steps, confirm=confirm,
                      confirm_above=atomic_usdc(s.confirm_above), on_event=on_event)
    session.log = ToolLog(s.log_path if log else None, session.session_id)
    return session


def make_planner(settings: AgentSettings, *, client: Any = None) -> Any:
    """Claude when an API key is set (and not --offline), otherwise the offline planner."""
    if settings.use_claude or client is not None:
        from agent.claude import ClaudePlanner, make_client

        if client is None:
            assert settings.anthropic_api_key is not None
            client = make_client(settings.anthropic_api_key.get_secret_value())
        return ClaudePlanner(client, settings.model, settings.max_tokens, max_rounds=settings.max_steps + 4)
    from agent.offline import OfflinePlanner

    return OfflinePlanner(settings.default_slippage_bps, settings.swap_deadline_seconds)
