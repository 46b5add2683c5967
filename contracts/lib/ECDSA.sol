// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title ECDSA
/// @notice secp256k1 signature recovery that rejects malleable (high-s) signatures and bad `v`.
/// @dev Returns address(0) for any invalid signature; callers compare against the expected signer
///      and must treat address(0) as invalid.
library ECDSA {
    /// @dev secp256k1n / 2: signatures with s above this are the malleable twin (EIP-2).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    function recover(bytes32 digest, uint8 v, bytes32 r, bytes32 s) internal pure returns (address) {
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// @dev 65-byte (r, s, v) signatures only.
    function recover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        // Reading three words from a bytes array in memory; no Solidity syntax slices memory bytes.
        assembly {
            r := mload(add(signature, 0x20))
            s := mload(add(signature, 0x40))
            v := byte(0, mload(add(signature, 0x60)))
        }
        return recover(digest, v, r, s);
    }

    /// @dev EIP-712 digest: keccak256("\x19\x01" || domainSeparator || structHash).
    function typedDataDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
    }
}
