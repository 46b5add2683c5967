"""Keeper settings: environment variables (prefix PAYGENT_), then an optional TOML file, then defaults.

With no configuration at all the keeper runs against the local chain: RPC http://127.0.0.1:8545,
manifest deployments/local.json, SQLite under .paygent/keeper/. PAYGENT_DATABASE_URL=postgresql://...
switches the store and the settlement intents to PostgreSQL (several keepers, one leader). Nothing else in the keeper reads the
environment (keys are loaded through paygent.keys from the variables named here).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)

from keeper import db as dbapi
from paygent.networks import Network, get_network

CONFIG_ENV = "PAYGENT_KEEPER_CONFIG"
"""Environment variable naming the optional TOML settings file (or pass `--config`)."""


class ConfigError(ValueError):
    """The configuration cannot work; the message says which setting and why."""


class KeeperSettings(BaseSettings):
    """Settings of `paygent keeper run`. Environment variables win over the file, the file over defaults."""

    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore", validate_default=True)

    # --- chain --------------------------------------------------------------------------------
    network: str = "local"
    """Paygent network name: local, cronos-testnet, cronos-mainnet."""
    rpc_url: str | None = None
    """JSON-RPC endpoint; default the network's (local: http://127.0.0.1:8545)."""
    deployments_dir: Path | None = None
    """Directory of deployment manifests (default ./deployments of the project)."""
    wallets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra AgentWallet addresses to index, besides the manifest's (comma-separated in the env)."""
    start_block: int | None = None
    """Index from this block instead of the manifest's deployment block (only for a fresh store)."""
    confirmations: int | None = Field(default=None, ge=0)
    """Blocks a log must be buried under before it is indexed (default: 0 locally, 5 elsewhere).
    Reorgs are detected and rewound in any case; this only makes them rarer."""
    reorg_window: int = Field(default=512, ge=8)
    """How many recent block hashes are kept to find the fork point of a reorg."""
    min_block_range: int = Field(default=1, ge=1)
    """eth_getLogs never asks for fewer blocks than this (a single block that is still refused is retried)."""
    max_block_range: int = Field(default=5_000, ge=1)
    """eth_getLogs range bounds: the range halves on "too many results"/timeouts and grows on success."""
    max_logs_per_batch: int = Field(default=10_000, ge=100)
    """Soft cap on logs handled per batch: above it the next range shrinks (bounded memory)."""
    poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between head polls when caught up."""
    rpc_timeout: float = Field(default=10.0, gt=0)
    """Seconds before an RPC call counts as failed (and the range shrinks or the call is retried)."""
    max_backoff: float = Field(default=30.0, gt=0)
    """Longest wait between retries while the RPC is down."""

    # --- store --------------------------------------------------------------------------------
    data_dir: Path = Path(".paygent/keeper")
    """Where the SQLite store (keeper.sqlite) and the facilitator's intents (intents.sqlite) live."""
    database_url: SecretStr | None = None
    """Default: SQLite at <data_dir>/keeper.sqlite, one keeper per file (always the leader).
    sqlite:///path/to/file.sqlite: another SQLite file.
    postgresql://user:password@host:port/database (or postgres://, libpq query parameters such as
    ?sslmode=require allowed): the store AND the settlement intents in PostgreSQL. Several keepers may
    share one database; a session advisory lock elects the leader, which alone indexes, runs jobs and
    settles. The password is never printed (messages and logs show ***)."""
    leader_interval: float = Field(default=2.0, gt=0, le=60)
    """PostgreSQL: seconds between leader-lock attempts (and the leader's check that it still holds it).
    A follower takes over within about this long after the leader's database session ends."""

    # --- HTTP ---------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Address the HTTP server (operator API, facilitator, metrics) listens on."""
    port: int = Field(default=8403, ge=0, le=65535)
    """Port of the HTTP server (0 picks a free one)."""
    facilitator: bool = True
    """Mount the x402 facilitator at the root (/verify, /settle, ...; needs a relayer key; skipped with a
    warning without one)."""

    # --- keys (never logged) -------------------------------------------------------------------
    relayer_key: SecretStr | None = None
    """Hex private key that pays gas for settlements, expiries and renewals (unattended runs)."""
    relayer_account: str | None = None
    """Or: alias of an ape account; passphrase in APE_ACCOUNTS_<alias>_PASSPHRASE."""
    agent_key: SecretStr | None = None
    """Hex private key of an agent hot key; enables the float top-up job for it."""
    agent_account: str | None = None
    """Or: alias of an ape account for the agent hot key."""

    # --- jobs ---------------------------------------------------------------------------------
    jobs: bool = True
    """Run the scheduled jobs (top-ups, expiry, renewals, alerts)."""
    topup_threshold: int = Field(default=200_000, ge=0)
    """Top the agent's hot key up when its token balance falls below this (atomic units)."""
    topup_token: str | None = None
    """Token of the float (default: the manifest's USDC)."""
    renew_before: int = Field(default=3_600, ge=0)
    """Renew a pre-authorized subscription this many seconds before it expires."""
    near_limit_ratio: float = Field(default=0.8, gt=0, le=1)
    """Alert when an agent has spent this share of its window's limit."""
    low_balance: int = Field(default=1_000_000, ge=0)
    """Alert when a wallet's balance of a ruled token falls below this (atomic units)."""
    alert_webhook: AnyHttpUrl | None = None
    """POST alerts as JSON to this URL as well as logging them."""
    job_interval: float = Field(default=30.0, gt=0)
    """Seconds between runs of each periodic job."""

    # --- logs ---------------------------------------------------------------------------------
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    log_json: bool = True
    """JSON lines on stderr (one object per line); false for plain text."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @field_validator("wallets", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, not {value!r}")
        return level

    @model_validator(mode="after")
    def _ranges(self) -> "KeeperSettings":
        if self.min_block_range > self.max_block_range:
            raise ValueError(f"min_block_range ({self.min_block_range}) > max_block_range ({self.max_block_range})")
        return self

    # --- derived ------------------------------------------------------------------------------

    @property
    def net(self) -> Network:
        return get_network(self.network)

    @property
    def rpc(self) -> str:
        return self.rpc_url or self.net.rpc_url

    @property
    def depth(self) -> int:
        if self.confirmations is not None:
            return self.confirmations
        return 0 if self.net.is_local else 5

    @property
    def database(self) -> dbapi.Target:
        """Where the store lives (SQLite file or PostgreSQL URL). Raises ConfigError for a bad URL."""
        url = self.database_url.get_secret_value().strip() if self.database_url else ""
        if not url:
            return dbapi.Target("sqlite", str(self.data_dir / "keeper.sqlite"))
        if "://" not in url:
            raise ConfigError("PAYGENT_DATABASE_URL must look like sqlite:///path/keeper.sqlite or "
                              "postgresql://user:password@host:port/database")
        try:
            return dbapi.parse(url)
        except ValueError as exc:
            raise ConfigError(f"PAYGENT_DATABASE_URL: {exc}") from None

    @property
    def intents_database(self) -> dbapi.Target:
        """Where the facilitator's settlement intents live: <data_dir>/intents.sqlite next to a SQLite
        store, the same database as the store on PostgreSQL."""
        store = self.database
        return store if store.is_postgres else dbapi.Target("sqlite", str(self.data_dir / "intents.sqlite"))


def _check_file_keys(path: Path) -> None:
    """A TOML settings file may hold only the settings' own names (as in the environment, without
    the PAYGENT_ prefix, any case): a misspelt or nested key is an error, not silently ignored."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not TOML: {exc}") from None
    known = set(KeeperSettings.model_fields)
    unknown = sorted(k if not isinstance(v, dict) else f"[{k}]" for k, v in data.items()
                     if isinstance(v, dict) or k.lower() not in known)
    if unknown:
        close = [difflib.get_close_matches(k.strip("[]").lower().replace("-", "_"), known, n=1) for k in unknown]
        hints = ", ".join(f"{k} (did you mean {c[0]}?)" if c else k for k, c in zip(unknown, close))
        raise ConfigError(f"unknown setting(s) in {path}: {hints}; names are the PAYGENT_* variables' without "
                          "the prefix, e.g. rpc_url = \"http://...\", at the top level")


def load(config: Path | None = None, **overrides: Any) -> KeeperSettings:
    """Settings from the environment and the TOML file (`config` or $PAYGENT_KEEPER_CONFIG).

    Raises ConfigError with every problem in one message.
    """
    from pydantic import ValidationError

    from paygent.networks import UnknownNetworkError

    if config is not None:
        if not config.is_file():
            raise ConfigError(f"settings file {config} " + ("is not a file" if config.exists() else "does not exist"))
        os.environ[CONFIG_ENV] = str(config)
    elif os.environ.get(CONFIG_ENV) and not Path(os.environ[CONFIG_ENV]).is_file():
        raise ConfigError(f"{CONFIG_ENV} names {os.environ[CONFIG_ENV]}, which is not a file")
    if os.environ.get(CONFIG_ENV):
        _check_file_keys(Path(os.environ[CONFIG_ENV]))
    try:
        settings = KeeperSettings(**overrides)
        settings.net  # noqa: B018 - validates the network name
        settings.database  # noqa: B018 - validates the database URL
    except ValidationError as exc:
        problems = "; ".join(
            f"PAYGENT_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"bad keeper configuration: {problems}") from None
    except UnknownNetworkError as exc:
        raise ConfigError(f"PAYGENT_NETWORK: {exc}") from None
    except Exception as exc:  # TOML syntax errors and the like
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"bad keeper configuration: {exc}") from None
    return settings
