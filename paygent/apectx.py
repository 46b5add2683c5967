"""Connect ape to an anvil that is already running (the demo's, a benchmark's or a test's own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ape_on(url: str) -> Iterator[Any]:
    """`with ape_on("http://127.0.0.1:8545"):` — ape's ethereum:local:foundry provider on that node.

    ape-foundry connects to a node it finds at the host and never stops a node it did not start.
    """
    from ape import networks

    with networks.ethereum.local.use_provider("foundry", provider_settings={"host": url}) as provider:
        yield provider
