"""Load signing keys without ever showing them.

Two sources: an environment variable holding a hex private key (unattended services, local demo),
or an ape keystore (`~/.ape/accounts/<alias>.json`, what `ape accounts import` writes) decrypted
with a passphrase from the environment (`APE_ACCOUNTS_<alias>_PASSPHRASE`, ape's own variable).
Errors name the variable or file, never the key or passphrase.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount


class KeyLoadError(RuntimeError):
    """A key could not be loaded; the message says where to look (and contains no secret)."""


def ape_accounts_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("APE_DATA_FOLDER")
    return (Path(base) if base else Path.home() / ".ape") / "accounts"


def from_env(variable: str, env: Mapping[str, str] | None = None) -> LocalAccount:
    """The account whose hex private key is in environment variable `variable`."""
    env = os.environ if env is None else env
    raw = env.get(variable)
    if not raw:
        raise KeyLoadError(f"environment variable {variable} is not set")
    try:
        return Account.from_key(raw.strip())
    except Exception:  # noqa: BLE001 - the library's message could echo the input
        raise KeyLoadError(f"environment variable {variable} does not hold a valid private key") from None


def from_ape_keystore(alias: str, env: Mapping[str, str] | None = None,
                      directory: Path | None = None) -> LocalAccount:
    """Decrypt ape account `alias` with the passphrase in APE_ACCOUNTS_<alias>_PASSPHRASE."""
    env = os.environ if env is None else env
    path = (directory or ape_accounts_dir(env)) / f"{alias}.json"
    if not path.exists():
        raise KeyLoadError(f"no ape account {alias!r} ({path} missing; `ape accounts import {alias}`)")
    variable = f"APE_ACCOUNTS_{alias}_PASSPHRASE"
    passphrase = env.get(variable)
    if passphrase is None:
        raise KeyLoadError(f"set {variable} to unlock ape account {alias!r} without a prompt")
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, ValueError):
        raise KeyLoadError(f"{path} is not a readable keystore file") from None
    try:
        key = Account.decrypt(keyfile, passphrase)
    except Exception:  # noqa: BLE001 - wrong passphrase or corrupt file; never echo either
        raise KeyLoadError(f"could not decrypt ape account {alias!r}: wrong passphrase?") from None
    return Account.from_key(key)


def load(key_env: str | None = None, alias: str | None = None,
         env: Mapping[str, str] | None = None) -> LocalAccount:
    """An account from `alias` (ape keystore) if given, else from variable `key_env`."""
    if alias:
        return from_ape_keystore(alias, env)
    if key_env:
        return from_env(key_env, env)
    raise KeyLoadError("no key configured: give an ape account alias or an environment variable")
