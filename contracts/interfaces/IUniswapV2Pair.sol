// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IUniswapV2Pair
/// @notice The UniswapV2 pair interface (constant-product pool with a 0.3% fee whose shares are
///         an ERC-20 LP token). Flash swaps (non-empty `data`) are not part of the local stand-in.
interface IUniswapV2Pair {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Mint(address indexed sender, uint256 amount0, uint256 amount1);
    event Burn(address indexed sender, uint256 amount0, uint256 amount1, address indexed to);
    event Swap(
        address indexed sender,
        uint256 amount0In,
        uint256 amount1In,
        uint256 amount0Out,
        uint256 amount1Out,
        address indexed to
    );
    event Sync(uint112 reserve0, uint112 reserve1);

    /// @notice Moves `value` LP tokens from the caller to `to`.
    function transfer(address to, uint256 value) external returns (bool);

    /// @notice Lets `spender` move up to `value` of the caller's LP tokens.
    function approve(address spender, uint256 value) external returns (bool);

    /// @notice Moves `value` LP tokens from `from` to `to` using the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool);

    /// @notice Mints LP tokens to `to` for the tokens sent to the pair since the last update.
    function mint(address to) external returns (uint256 liquidity);

    /// @notice Burns the LP tokens held by the pair and sends the underlying tokens to `to`.
    function burn(address to) external returns (uint256 amount0, uint256 amount1);

    /// @notice Sends the requested outputs to `to`; the inputs must already be in the pair.
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;

    /// @notice Sends balances above the reserves to `to`.
    function skim(address to) external;

    /// @notice Sets the reserves to the balances.
    function sync() external;

    /// @notice Called once by the factory right after creating the pair.
    function initialize(address token0, address token1) external;

    function name() external view returns (string memory);
    function symbol() external view returns (string memory);
    function decimals() external view returns (uint8);
    function totalSupply() external view returns (uint256);
    function balanceOf(address owner) external view returns (uint256);
    function allowance(address owner, address spender) external view returns (uint256);

    /// @notice LP tokens locked forever at the first mint.
    function MINIMUM_LIQUIDITY() external view returns (uint256);

    function factory() external view returns (address);
    function token0() external view returns (address);
    function token1() external view returns (address);

    /// @notice Reserves and the timestamp (mod 2**32) of their last update.
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);

    function price0CumulativeLast() external view returns (uint256);
    function price1CumulativeLast() external view returns (uint256);

    /// @notice reserve0 * reserve1 after the last liquidity event (only while the protocol fee is on).
    function kLast() external view returns (uint256);
}
