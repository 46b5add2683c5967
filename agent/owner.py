"""The owner's side of the approval queue: list, approve, approve an edited (lower) amount, reject.

Reads pending requests from the keeper (`GET /approvals?status=pending`) when it answers, else from
the wallet itself (`requestCount` / `request(id)`). Writes are AgentWallet transactions signed by the
owner's key.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_utils import to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError

from agent.chain import REQUEST_STATUS, RevertDecoder, hexstr
from agent.tools import ToolError


class OwnerActions:
    def __init__(self, w3: Any, wallet: str, owner_account: Any | None, keeper_url: str | None = None,
                 http: httpx.Client | None = None):
        from paygent.artifacts import abi

        self.w3 = w3
        self.wallet = w3.eth.contract(address=to_checksum_address(wallet), abi=abi("AgentWallet"))
        self._owner = owner_account
        self.keeper_url = keeper_url.rstrip("/") if keeper_url else None
        self.http = http or httpx.Client(timeout=3)
        self.decoder = RevertDecoder()

    def request(self, request_id: int) -> dict[str, Any]:
        fn = self.wallet.functions.request(request_id)
        values = fn.call()
        names = [c["name"] for c in fn.abi["outputs"][0]["components"]]
        out = dict(zip(names, values))
        status = int(out["status"])
        out["status"] = REQUEST_STATUS[status] if status < len(REQUEST_STATUS) else str(status)
        out["requestId"] = request_id
        out["ref"] = "0x" + bytes(out["ref"]).hex() if isinstance(out.get("ref"), (bytes, bytearray)) else out.get("ref")
        return out

    def list(self, status: str | None = "pending") -> tuple[list[dict[str, Any]], str]:
        """Requests (newest first) and where they were read from ("keeper" or "chain")."""
        if self.keeper_url:
            try:
                reply = self.http.get(f"{self.keeper_url}/approvals", params={"status": status} if status else None)
                if reply.status_code == 200:
                    rows = [r for r in reply.json().get("approvals", [])
                            if r["wallet"].lower() == self.wallet.address.lower()]
                    return sorted(rows, key=lambda r: -int(r["requestId"])), "keeper"
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        count = int(self.wallet.functions.requestCount().call())
        rows = []
        for rid in range(count, 0, -1):
            row = self.request(rid)
            if status is None or row["status"] == status:
                rows.append(row)
        return rows, "chain"

    def _send(self, fn: Any, what: str) -> str:
        if self._owner is None:
            raise ToolError("no_owner_key", "no owner key configured",
                            hint="set PAYGENT_OWNER_ACCOUNT (ape alias) or PAYGENT_OWNER_KEY")
        owner = to_checksum_address(self._owner.address)
        try:
            tx = fn.build_transaction({"from": owner, "chainId": int(self.w3.eth.chain_id),
                                       "nonce": self.w3.eth.get_transaction_count(owner, "pending"),
                                       "gasPrice": self.w3.eth.gas_price})
        except (ContractCustomError, ContractLogicError) as exc:
            name, values = self.decoder.decode(exc)
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ToolError("transaction_reverted", f"{what} reverted: {name}({shown})") from None
        tx["gas"] = int(tx["gas"] * 5 // 4) + 10_000
        signed = self._owner.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=180, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ToolError("transaction_failed", f"{what}: transaction {hexstr(tx_hash)} reverted")
        return hexstr(tx_hash)

    def approve(self, request_id: int, amount: int | None = None) -> str:
        if amount is None:
            return self._send(self.wallet.functions.approve(request_id), f"approving #{request_id}")
        return self._send(self.wallet.functions.approveAmount(request_id, amount),
                          f"approving #{request_id} for {amount}")

    def reject(self, request_id: int) -> str:
        return self._send(self.wallet.functions.reject(request_id), f"rejecting #{request_id}")
