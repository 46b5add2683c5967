// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice A token or native transfer failed (returned false, reverted, or the token has no code).
error TransferFailed(address token, address to, uint256 amount);

/// @title SafeTransfer
/// @notice ERC-20 and native transfers that revert with `TransferFailed` instead of trusting a
///         token's boolean return (some tokens return nothing; some return false).
/// @dev `address(0)` as token means native CRO only in `safeTransferAny`.
library SafeTransfer {
    function safeTransfer(address token, address to, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0xa9059cbb, to, amount), to, amount); // transfer(address,uint256)
    }

    function safeTransferFrom(address token, address from, address to, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0x23b872dd, from, to, amount), to, amount); // transferFrom(...)
    }

    function safeApprove(address token, address spender, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0x095ea7b3, spender, amount), spender, amount); // approve(...)
    }

    function safeTransferNative(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(address(0), to, amount);
    }

    /// @dev Native CRO when `token == address(0)`, ERC-20 otherwise.
    function safeTransferAny(address token, address to, uint256 amount) internal {
        if (token == address(0)) safeTransferNative(to, amount);
        else safeTransfer(token, to, amount);
    }

    function _call(address token, bytes memory data, address to, uint256 amount) private {
        (bool ok, bytes memory ret) = token.call(data);
        // Accept: call succeeded and (no return data from a contract, or a true boolean).
        if (!ok || (ret.length == 0 ? token.code.length == 0 : !abi.decode(ret, (bool)))) {
            revert TransferFailed(token, to, amount);
        }
    }
}
