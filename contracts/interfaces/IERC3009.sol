// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IERC3009
/// @notice EIP-3009 "transfer with authorization" as implemented by Circle's FiatToken v2.2
///         (USDC, Cronos USDC.e): each entry point in a (v, r, s) and a 65-byte `signature` form.
/// @dev An authorization is valid iff validAfter < block.timestamp < validBefore; each
///      (authorizer, nonce) is usable once, used or canceled. EIP-712 types:
///      TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)
///      ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)
///      CancelAuthorization(address authorizer,bytes32 nonce)
interface IERC3009 {
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice Executes a transfer signed by `from`; anyone may submit it.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Same as the (v, r, s) form with a 65-byte r || s || v signature.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice Executes a transfer signed by `from`; only the payee `to` may submit it.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Same as the (v, r, s) form with a 65-byte r || s || v signature.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice Burns an unused nonce so the authorization bearing it can never execute.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Same as the (v, r, s) form with a 65-byte r || s || v signature.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external;

    /// @notice True once (authorizer, nonce) has been used or canceled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);

    /// @notice The EIP-712 domain separator the authorizations are signed under.
    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
