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

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from paygent.artifacts import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT / "deployments"


class ManifestError(RuntimeError):
    """A manifest that cannot be used as it is (unreadable, other chain, stale)."""


def _hex(length: int, what: str, prefix_optional: bool = False):
    def check(value: str) -> str:
        body = value[2:] if value[:2] in ("0x", "0X") else (value if prefix_optional else None)
        if body is None or len(body) != length or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise ValueError(f"{value!r} is not {what} ({'' if prefix_optional else '0x + '}{length} hex digits)")
        return value
    return AfterValidator(check)


Address = Annotated[str, _hex(40, "an address")]
Hash = Annotated[str, _hex(64, "a 32-byte hash", prefix_optional=True)]


class DeployedContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: Address
    tx_hash: str | None = None
    """None for contracts Paygent did not deploy (real Cronos tokens)."""
    block: int | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    network: str
    chain_id: int = Field(gt=0)
    genesis_hash: Hash
    deployment_block: int = Field(ge=0)
    deployer: Address | None = None
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
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read deployment manifest {path}: {exc.strerror or exc}") from None
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the file"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ManifestError(f"deployment manifest {path} is unreadable: {where}: {first.get('msg')}{more}") from None
    except ValueError as exc:
        raise ManifestError(f"deployment manifest {path} is unreadable: {exc}") from None


def require(network: str, directory: Path | None = None) -> Manifest:
    manifest = load(network, directory)
    if manifest is None:
        raise ManifestError(
            f"no deployment manifest for {network!r} at {manifest_path(network, directory)}: "
            "run `ape run deploy` first (locally: `make chain` starts the chain it deploys to)"
        )
    return manifest


def check_writable(network: str, directory: Path | None = None) -> Path:
    """Make sure a manifest for `network` can be written, before anything is deployed that only
    the manifest would remember. Raises ManifestError naming the directory."""
    path = manifest_path(network, directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ManifestError(f"cannot write deployment manifests in {path.parent}: {exc.strerror or exc} "
                            "(set PAYGENT_DEPLOYMENTS_DIR to a writable directory)") from None
    return path


def save(manifest: Manifest, directory: Path | None = None) -> Path:
    """Write the manifest atomically: a reader sees the old file or the new one, never a mix.
    World-readable (0644): the keeper often runs as another user than the deployer."""
    path = manifest_path(manifest.network, directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ManifestError(f"cannot write deployment manifest {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ManifestError(f"cannot write deployment manifest {path}: {exc.strerror or exc}") from None
        raise
    return path
