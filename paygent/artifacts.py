"""ABIs and bytecode from the compiled artifacts (`ape compile` writes `.build/__local__.json`).

One source of truth: no ABI strings are written by hand anywhere in the Python code.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = PROJECT_ROOT / ".build" / "__local__.json"


class ArtifactsMissingError(RuntimeError):
    """The contracts have not been compiled (or a contract name is wrong)."""


@lru_cache(maxsize=1)
def _contract_types(path: Path = ARTIFACTS) -> dict[str, Any]:
    if not path.exists():
        raise ArtifactsMissingError(
            f"compiled contracts not found at {path}: run `make compile` (or `ape compile`) first"
        )
    with path.open() as fh:
        manifest = json.load(fh)
    return manifest.get("contractTypes", {})


def contract_type(name: str) -> dict[str, Any]:
    types = _contract_types()
    if name not in types:
        raise ArtifactsMissingError(
            f"contract {name!r} is not in the compiled artifacts; known: {', '.join(sorted(types))}"
        )
    return types[name]


def abi(name: str) -> list[dict[str, Any]]:
    """The ABI of a compiled contract, e.g. ``abi("AgentWallet")``."""
    return contract_type(name)["abi"]


def deployment_bytecode(name: str) -> str:
    return contract_type(name)["deploymentBytecode"]["bytecode"]


def runtime_bytecode(name: str) -> str:
    return contract_type(name)["runtimeBytecode"]["bytecode"]
