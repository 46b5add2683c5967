"""Assertions on custom errors, shared by the registry and router specs.

Ape decodes a transaction's custom error into an exception named after it; for eth_call (views) it
does not, so `view_fails` reads the raw revert data through web3 and decodes it with the ABI.
"""

from contextlib import contextmanager
from typing import Any

import pytest
from ape import chain
from ape.exceptions import ContractLogicError
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError


@contextmanager
def fails(error: str, **inputs: Any):
    """The call reverts with custom error `error` carrying exactly `inputs` (all of them)."""
    with pytest.raises(ContractLogicError) as info:
        yield
    exc = info.value
    assert type(exc).__name__ == error, f"expected {error}, got {type(exc).__name__}: {exc}"
    assert dict(exc.inputs) == inputs


def view_fails(contract: Any, method: str, *args: Any) -> tuple[str, dict]:
    """A view call that must revert with a custom error: (error name, inputs)."""
    data = getattr(contract, method).encode_input(*args)
    with pytest.raises(ContractCustomError) as info:
        chain.provider.web3.eth.call({"to": contract.address, "data": data})
    error = chain.provider.network.ecosystem.decode_custom_error(HexBytes(info.value.data), contract.address)
    assert error is not None, info.value.data
    return type(error).__name__, dict(error.inputs)
