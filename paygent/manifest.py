"""The deployment manifest: where Paygent's contracts live on one network.

One JSON file per network (`deployments/<network>.json`): chain id, the chain's genesis hash (so a
manifest from a restarted local chain is recognised as stale), the deployment block, and per
contract its address, transaction hash and block. Written atomically (temp file + rename), so a
crash never leaves half a manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from paygent.artifacts import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT / "deployments"


class ManifestError(RuntimeError):
    """A manifest that cannot be used as it is (unreadable, other chain, stale)."""


class DeployedContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    tx_hash: str | None = None
    """None for contracts Paygent did not deploy (real Cronos tokens)."""
    block: int | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    network: str
    chain_id: int
    genesis_hash: str
    deployment_block: int
    deployer: str | None = None
    contracts: dict[str, DeployedContract] = Field(default_factory=dict)
    demo: dict[str, str | int] = Field(default_factory=dict)
    """Local demo extras: demo service id, wallet address, agent address."""

    def address(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise ManifestError(
                f"the {self.network} manifest has no contract {name!r}; "
                f"it has: {', '.join(sorted(self.contracts)) or 'none'} (run `ape run deploy`)"
            ) from None


def manifest_path(network: str, directory: Path | None = None) -> Path:
    return (directory or DEFAULT_DIR) / f"{network}.json"


def load(network: str, directory: Path | None = None) -> Manifest | None:
    """The manifest for a network, or None if there is none. A corrupt file is an error."""
    path = manifest_path(network, directory)
    if not path.exists():
        return None
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ManifestError(f"deployment manifest {path} is unreadable: {exc}") from exc


def require(network: str, directory: Path | None = None) -> Manifest:
    manifest = load(network, directory)
    if manifest is None:
        raise ManifestError(
            f"no deployment manifest for {network!r} at {manifest_path(network, directory)}: "
            "run `ape run deploy` first (locally: `make chain` starts the chain it deploys to)"
        )
    return manifest


def save(manifest: Manifest, directory: Path | None = None) -> Path:
    """Write the manifest atomically: a reader sees the old file or the new one, never a mix."""
    path = manifest_path(manifest.network, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
