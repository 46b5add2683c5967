// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ECDSA} from "./ECDSA.sol";

/// @title EIP712
/// @notice EIP-712 domain (name, version, chainId, verifyingContract) for contracts deployed
///         normally. The separator is cached and recomputed if the chain id changes (fork).
/// @dev Not for code copied with anvil_setCode (immutables would name the original address):
///      the local token stand-in computes its domain from storage instead.
abstract contract EIP712 {
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    bytes32 private immutable _HASHED_NAME;
    bytes32 private immutable _HASHED_VERSION;
    uint256 private immutable _CACHED_CHAIN_ID;
    bytes32 private immutable _CACHED_SEPARATOR;

    constructor(string memory name, string memory version) {
        _HASHED_NAME = keccak256(bytes(name));
        _HASHED_VERSION = keccak256(bytes(version));
        _CACHED_CHAIN_ID = block.chainid;
        _CACHED_SEPARATOR = _buildSeparator();
    }

    /// @notice The EIP-712 domain separator for this contract on the current chain.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    function _domainSeparator() internal view returns (bytes32) {
        return block.chainid == _CACHED_CHAIN_ID ? _CACHED_SEPARATOR : _buildSeparator();
    }

    function _hashTypedData(bytes32 structHash) internal view returns (bytes32) {
        return ECDSA.typedDataDigest(_domainSeparator(), structHash);
    }

    function _buildSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, _HASHED_NAME, _HASHED_VERSION, block.chainid, address(this)));
    }
}
