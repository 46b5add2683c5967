// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice A token or native transfer failed (returned false, reverted, returned something other
///         than a boolean, or the token has no code).
error TransferFailed(address token, address to, uint256 amount);

/// @title SafeTransfer
/// @notice ERC-20 and native transfers that revert with `TransferFailed` instead of trusting a
///         token's boolean return (some tokens return nothing; some return false), and the two
///         ERC-20 reads the wallet needs.
/// @dev `address(0)` as token means native CRO only in `safeTransferAny`.
///      The ERC-20 calls are written in assembly because a benchmark showed it matters: Solidity's
///      `abi.encodeWithSelector` + `bytes memory` return copy + `abi.decode` cost ~400-600 gas per
///      call, and a wallet swap makes four of them (bench/gas.py, docs/contracts-spec.md). Each block
///      only writes the 100 bytes above the free memory pointer and the scratch word at 0x00 (both
///      free for temporary use), never moves the free memory pointer, and keeps the checks of the
///      Solidity version:
///      accepted = the call succeeded AND (its answer starts with the 32-byte word 1, OR it returned
///      nothing and the token has code). Anything else (false, an answer shorter than a word or not
///      a boolean, a revert, no code) is TransferFailed.
library SafeTransfer {
    function safeTransfer(address token, address to, uint256 amount) internal {
        if (!_call(token, 0xa9059cbb, uint256(uint160(to)), amount, 0, 2)) revert TransferFailed(token, to, amount);
    }

    function safeTransferFrom(address token, address from, address to, uint256 amount) internal {
        if (!_call(token, 0x23b872dd, uint256(uint160(from)), uint256(uint160(to)), amount, 3)) {
            revert TransferFailed(token, to, amount);
        }
    }

    function safeApprove(address token, address spender, uint256 amount) internal {
        if (!_call(token, 0x095ea7b3, uint256(uint160(spender)), amount, 0, 2)) {
            revert TransferFailed(token, spender, amount);
        }
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

    /// @dev token.balanceOf(account). A revert of the token bubbles up unchanged; an answer shorter
    ///      than one word (or no code) reverts without data, as a Solidity interface call would.
    function balanceOf(address token, address account) internal view returns (uint256 amount) {
        return _read(token, 0x70a08231, uint256(uint160(account)), 0, 1);
    }

    /// @dev token.allowance(owner, spender), with the same failure behaviour as balanceOf.
    function allowance(address token, address owner, address spender) internal view returns (uint256 amount) {
        return _read(token, 0xdd62ed3e, uint256(uint160(owner)), uint256(uint160(spender)), 2);
    }

    /// @dev Calls token with `selector` and the first `words` of (a, b, c); true if accepted, by the
    ///      rule in the library's description.
    function _call(address token, uint32 selector, uint256 a, uint256 b, uint256 c, uint256 words)
        private
        returns (bool ok)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, shl(224, selector))
            mstore(add(p, 0x04), a)
            mstore(add(p, 0x24), b)
            mstore(add(p, 0x44), c)
            ok := call(gas(), token, 0, p, add(4, mul(words, 0x20)), 0x00, 0x20)
            // No answer needs code at the token; an answer needs a first word that is exactly 1.
            switch returndatasize()
            case 0 { ok := and(ok, gt(extcodesize(token), 0)) }
            default { ok := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))) }
        }
    }

    /// @dev Static call of a one-word view; see balanceOf for failures.
    function _read(address token, uint32 selector, uint256 a, uint256 b, uint256 words)
        private
        view
        returns (uint256 value)
    {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, shl(224, selector))
            mstore(add(p, 0x04), a)
            mstore(add(p, 0x24), b)
            if iszero(staticcall(gas(), token, p, add(4, mul(words, 0x20)), 0x00, 0x20)) {
                returndatacopy(p, 0, returndatasize())
                revert(p, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            value := mload(0x00)
        }
    }
}
