// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeTransfer} from "../lib/SafeTransfer.sol";

/// @title SafeTransferProbe
/// @notice TEST ONLY — exposes the SafeTransfer library so tests can call each function directly.
///         Every write first leaves the word 1 in the scratch slot the library reads answers
///         into, so a check that reads it without looking at the answer's size is caught.
contract SafeTransferProbe {
    modifier staleTrue() {
        assembly ("memory-safe") {
            mstore(0x00, 1)
        }
        _;
    }

    function transfer(address token, address to, uint256 amount) external staleTrue {
        SafeTransfer.safeTransfer(token, to, amount);
    }

    function transferFrom(address token, address from, address to, uint256 amount) external staleTrue {
        SafeTransfer.safeTransferFrom(token, from, to, amount);
    }

    function approve(address token, address spender, uint256 amount) external staleTrue {
        SafeTransfer.safeApprove(token, spender, amount);
    }

    function balanceOf(address token, address account) external view returns (uint256) {
        return SafeTransfer.balanceOf(token, account);
    }

    function allowance(address token, address owner, address spender) external view returns (uint256) {
        return SafeTransfer.allowance(token, owner, spender);
    }
}
