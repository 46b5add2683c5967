"""The buyer side: x402 client, signer, tools, planner, CLI."""
