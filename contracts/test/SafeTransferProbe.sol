// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeTransfer} from "../lib/SafeTransfer.sol";

/// @title SafeTransferProbe
/// @notice TEST ONLY — exposes the SafeTransfer library so tests can call each function directly.
contract SafeTransferProbe {
    function transfer(address token, address to, uint256 amount) external {
        SafeTransfer.safeTransfer(token, to, amount);
    }

    function transferFrom(address token, address from, address to, uint256 amount) external {
        SafeTransfer.safeTransferFrom(token, from, to, amount);
    }

    function approve(address token, address spender, uint256 amount) external {
        SafeTransfer.safeApprove(token, spender, amount);
    }

    function balanceOf(address token, address account) external view returns (uint256) {
        return SafeTransfer.balanceOf(token, account);
    }

    function allowance(address token, address owner, address spender) external view returns (uint256) {
        return SafeTransfer.allowance(token, owner, spender);
    }
}
