// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title OddToken
/// @notice TEST ONLY — never deployed outside local chains. Every call (transfer, transferFrom,
///         approve, balanceOf, allowance) answers in the way `mode` says, so a test can show how
///         SafeTransfer treats each answer a real token might give. Moves no balances.
contract OddToken {
    enum Mode {
        True, // a 32-byte word 1 (standard)
        Nothing, // no return data (USDT-style)
        False, // a 32-byte word 0
        Two, // a 32-byte word 2: not a boolean
        Short, // one byte 0x01
        Long, // 64 bytes, the first word 1
        Revert, // reverts with the string "OddToken: no"
        RevertEmpty, // reverts without data
        RevertOne, // reverts with the word 1 as its data (looks like `true` if success is not checked)
        Short31 // 31 zero bytes: shorter than a word (a stale 1 in scratch must not count)
    }

    Mode public mode;

    /// @notice Sets how the next calls answer.
    function setMode(Mode m) external {
        mode = m;
    }

    fallback() external {
        Mode m = mode;
        if (m == Mode.Revert) revert("OddToken: no");
        if (m == Mode.RevertEmpty) revert();
        if (m == Mode.RevertOne) {
            assembly ("memory-safe") {
                mstore(0x00, 1)
                revert(0x00, 0x20)
            }
        }
        if (m == Mode.Short31) _answer(new bytes(31));
        if (m == Mode.Nothing) return;
        if (m == Mode.Short) _answer(abi.encodePacked(uint8(1)));
        if (m == Mode.Long) _answer(abi.encode(uint256(1), uint256(7)));
        _answer(abi.encode(m == Mode.True ? 1 : m == Mode.Two ? 2 : 0));
    }

    function _answer(bytes memory data) private pure {
        assembly ("memory-safe") {
            return(add(data, 0x20), mload(data))
        }
    }
}
