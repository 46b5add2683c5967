"""x402 wire types: `common` (base model, field types, header decoding), `exact` (the EIP-3009
payload), `v1`, `v2` (and the facilitator messages), `cronos` (the Cronos facilitator variant)."""
