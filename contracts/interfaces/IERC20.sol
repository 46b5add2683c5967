// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IERC20
/// @notice The ERC-20 token interface (EIP-20) with the optional metadata views.
interface IERC20 {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Moves `value` from the caller to `to`.
    function transfer(address to, uint256 value) external returns (bool);

    /// @notice Lets `spender` move up to `value` of the caller's tokens.
    function approve(address spender, uint256 value) external returns (bool);

    /// @notice Moves `value` from `from` to `to` using the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool);

    /// @notice Token name.
    function name() external view returns (string memory);

    /// @notice Token symbol.
    function symbol() external view returns (string memory);

    /// @notice Number of decimals of the atomic unit.
    function decimals() external view returns (uint8);

    /// @notice Total amount in existence.
    function totalSupply() external view returns (uint256);

    /// @notice Balance of `account`.
    function balanceOf(address account) external view returns (uint256);

    /// @notice What `spender` may still move from `owner`.
    function allowance(address owner, address spender) external view returns (uint256);
}
