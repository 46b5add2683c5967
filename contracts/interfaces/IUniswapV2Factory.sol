// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IUniswapV2Factory
/// @notice The UniswapV2 factory interface (VVS Finance is a fork), plus the pair init-code hash
///         that routers use to derive pair addresses with CREATE2.
interface IUniswapV2Factory {
    event PairCreated(address indexed token0, address indexed token1, address pair, uint256 pairCount);

    /// @notice Creates the pair of `tokenA` and `tokenB` (any order) at its CREATE2 address.
    function createPair(address tokenA, address tokenB) external returns (address pair);

    /// @notice Sets who receives the protocol fee (1/6 of LP fees); address(0) turns it off.
    function setFeeTo(address feeTo) external;

    /// @notice Hands the right to set feeTo (and this right) to another address.
    function setFeeToSetter(address feeToSetter) external;

    /// @notice Receiver of the protocol fee; address(0) when off.
    function feeTo() external view returns (address);

    /// @notice Who may change feeTo and feeToSetter.
    function feeToSetter() external view returns (address);

    /// @notice The pair of two tokens (either order); address(0) if none.
    function getPair(address tokenA, address tokenB) external view returns (address pair);

    /// @notice The `index`-th pair created.
    function allPairs(uint256 index) external view returns (address pair);

    /// @notice Number of pairs created.
    function allPairsLength() external view returns (uint256);

    /// @notice keccak256 of the pair's creation code: the CREATE2 init-code hash of every pair.
    function INIT_CODE_PAIR_HASH() external view returns (bytes32);
}
