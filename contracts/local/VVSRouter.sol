// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeTransfer} from "../lib/SafeTransfer.sol";
import {IUniswapV2Factory} from "../interfaces/IUniswapV2Factory.sol";
import {IUniswapV2Pair} from "../interfaces/IUniswapV2Pair.sol";
import {IUniswapV2Router02} from "../interfaces/IUniswapV2Router02.sol";
import {WCRO} from "./WCRO.sol";

/// @title VVSRouter
/// @notice Local-chain stand-in for the VVS Finance router (UniswapV2 Router02 subset): adds and
///         removes liquidity, quotes, and swaps along token paths with a minimum output (or a
///         maximum input) and a deadline; CRO goes in and out through WCRO.
/// @dev Invariants:
///      - every swap and liquidity call reverts once block.timestamp > deadline;
///      - a swap delivers at least amountOutMin (exact-in) or takes at most amountInMax (exact-out);
///      - amounts follow UniswapV2's formulas with the 0.3% fee:
///        out = in * 997 * reserveOut / (reserveIn * 1000 + in * 997),
///        in  = reserveIn * out * 1000 / ((reserveOut - out) * 997) + 1;
///      - pair addresses are derived with CREATE2 from the init-code hash the factory reports
///        (read once at construction), never from a hard-coded hash;
///      - the router keeps no funds between calls (CRO change is refunded to the caller).
contract VVSRouter is IUniswapV2Router02 {
    // ---------------------------------------------------------------------------------------------
    // Errors

    /// @notice The deadline passed: `deadline` < `timestamp`.
    error Expired(uint256 deadline, uint256 timestamp);
    error InsufficientOutputAmount(uint256 amountOut, uint256 amountOutMin);
    error ExcessiveInputAmount(uint256 amountIn, uint256 amountInMax);
    error InsufficientAAmount(uint256 amountA, uint256 amountAMin);
    error InsufficientBAmount(uint256 amountB, uint256 amountBMin);
    /// @notice A path needs at least two tokens; CRO paths must start or end with WCRO.
    error InvalidPath();
    /// @notice quote() of zero, or getAmountIn() of zero output.
    error InsufficientAmount();
    /// @notice getAmountOut() of zero input.
    error InsufficientInputAmount();
    /// @notice A reserve is empty, or the requested output is not below the output reserve.
    error InsufficientLiquidity(uint256 reserveIn, uint256 reserveOut);
    error IdenticalAddresses(address token);
    error ZeroAddress();
    error PairNotFound(address tokenA, address tokenB);
    /// @notice Only WCRO may send CRO to the router (when unwrapping).
    error OnlyWCRO(address sender);

    // ---------------------------------------------------------------------------------------------
    // Storage

    /// @inheritdoc IUniswapV2Router02
    address public immutable factory;
    /// @inheritdoc IUniswapV2Router02
    address public immutable WETH;
    /// @notice The factory's INIT_CODE_PAIR_HASH, read once at construction.
    bytes32 public immutable INIT_CODE_PAIR_HASH;

    modifier ensure(uint256 deadline) {
        if (deadline < block.timestamp) revert Expired(deadline, block.timestamp);
        _;
    }

    // ---------------------------------------------------------------------------------------------
    // Constructor

    constructor(address factory_, address wcro) {
        factory = factory_;
        WETH = wcro;
        INIT_CODE_PAIR_HASH = IUniswapV2Factory(factory_).INIT_CODE_PAIR_HASH();
    }

    // ---------------------------------------------------------------------------------------------
    // External writes

    /// @notice Accepts CRO only from WCRO (unwrapping on the way out).
    receive() external payable {
        if (msg.sender != WETH) revert OnlyWCRO(msg.sender);
    }

    /// @inheritdoc IUniswapV2Router02
    /// @dev Creates the pair if needed. The first deposit sets the price; later ones are trimmed to
    ///      the current ratio and revert below amountAMin / amountBMin.
    function addLiquidity(
        address tokenA,
        address tokenB,
        uint256 amountADesired,
        uint256 amountBDesired,
        uint256 amountAMin,
        uint256 amountBMin,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256 amountA, uint256 amountB, uint256 liquidity) {
        (amountA, amountB) = _addLiquidity(tokenA, tokenB, amountADesired, amountBDesired, amountAMin, amountBMin);
        address pair = _pairFor(tokenA, tokenB);
        SafeTransfer.safeTransferFrom(tokenA, msg.sender, pair, amountA);
        SafeTransfer.safeTransferFrom(tokenB, msg.sender, pair, amountB);
        liquidity = IUniswapV2Pair(pair).mint(to);
    }

    /// @inheritdoc IUniswapV2Router02
    /// @dev msg.value is the desired CRO amount; unused CRO is refunded to the caller.
    function addLiquidityETH(
        address token,
        uint256 amountTokenDesired,
        uint256 amountTokenMin,
        uint256 amountETHMin,
        address to,
        uint256 deadline
    ) external payable ensure(deadline) returns (uint256 amountToken, uint256 amountETH, uint256 liquidity) {
        (amountToken, amountETH) =
            _addLiquidity(token, WETH, amountTokenDesired, msg.value, amountTokenMin, amountETHMin);
        address pair = _pairFor(token, WETH);
        SafeTransfer.safeTransferFrom(token, msg.sender, pair, amountToken);
        WCRO(payable(WETH)).deposit{value: amountETH}();
        SafeTransfer.safeTransfer(WETH, pair, amountETH);
        liquidity = IUniswapV2Pair(pair).mint(to);
        if (msg.value > amountETH) SafeTransfer.safeTransferNative(msg.sender, msg.value - amountETH);
    }

    /// @inheritdoc IUniswapV2Router02
    function removeLiquidity(
        address tokenA,
        address tokenB,
        uint256 liquidity,
        uint256 amountAMin,
        uint256 amountBMin,
        address to,
        uint256 deadline
    ) public ensure(deadline) returns (uint256 amountA, uint256 amountB) {
        address pair = _pairFor(tokenA, tokenB);
        SafeTransfer.safeTransferFrom(pair, msg.sender, pair, liquidity);
        (uint256 amount0, uint256 amount1) = IUniswapV2Pair(pair).burn(to);
        (address token0,) = _sortTokens(tokenA, tokenB);
        (amountA, amountB) = tokenA == token0 ? (amount0, amount1) : (amount1, amount0);
        if (amountA < amountAMin) revert InsufficientAAmount(amountA, amountAMin);
        if (amountB < amountBMin) revert InsufficientBAmount(amountB, amountBMin);
    }

    /// @inheritdoc IUniswapV2Router02
    function removeLiquidityETH(
        address token,
        uint256 liquidity,
        uint256 amountTokenMin,
        uint256 amountETHMin,
        address to,
        uint256 deadline
    ) external returns (uint256 amountToken, uint256 amountETH) {
        (amountToken, amountETH) =
            removeLiquidity(token, WETH, liquidity, amountTokenMin, amountETHMin, address(this), deadline);
        SafeTransfer.safeTransfer(token, to, amountToken);
        WCRO(payable(WETH)).withdraw(amountETH);
        SafeTransfer.safeTransferNative(to, amountETH);
    }

    /// @inheritdoc IUniswapV2Router02
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        amounts = getAmountsOut(amountIn, path);
        _requireOutput(amounts[amounts.length - 1], amountOutMin);
        SafeTransfer.safeTransferFrom(path[0], msg.sender, _pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, to);
    }

    /// @inheritdoc IUniswapV2Router02
    function swapTokensForExactTokens(
        uint256 amountOut,
        uint256 amountInMax,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        amounts = getAmountsIn(amountOut, path);
        if (amounts[0] > amountInMax) revert ExcessiveInputAmount(amounts[0], amountInMax);
        SafeTransfer.safeTransferFrom(path[0], msg.sender, _pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, to);
    }

    /// @inheritdoc IUniswapV2Router02
    function swapExactETHForTokens(uint256 amountOutMin, address[] calldata path, address to, uint256 deadline)
        external
        payable
        ensure(deadline)
        returns (uint256[] memory amounts)
    {
        if (path.length < 2 || path[0] != WETH) revert InvalidPath();
        amounts = getAmountsOut(msg.value, path);
        _requireOutput(amounts[amounts.length - 1], amountOutMin);
        _wrapInto(_pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, to);
    }

    /// @inheritdoc IUniswapV2Router02
    function swapTokensForExactETH(
        uint256 amountOut,
        uint256 amountInMax,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        if (path.length < 2 || path[path.length - 1] != WETH) revert InvalidPath();
        amounts = getAmountsIn(amountOut, path);
        if (amounts[0] > amountInMax) revert ExcessiveInputAmount(amounts[0], amountInMax);
        SafeTransfer.safeTransferFrom(path[0], msg.sender, _pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, address(this));
        _unwrapTo(to, amounts[amounts.length - 1]);
    }

    /// @inheritdoc IUniswapV2Router02
    function swapExactTokensForETH(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        if (path.length < 2 || path[path.length - 1] != WETH) revert InvalidPath();
        amounts = getAmountsOut(amountIn, path);
        _requireOutput(amounts[amounts.length - 1], amountOutMin);
        SafeTransfer.safeTransferFrom(path[0], msg.sender, _pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, address(this));
        _unwrapTo(to, amounts[amounts.length - 1]);
    }

    /// @inheritdoc IUniswapV2Router02
    /// @dev Unused CRO is refunded to the caller.
    function swapETHForExactTokens(uint256 amountOut, address[] calldata path, address to, uint256 deadline)
        external
        payable
        ensure(deadline)
        returns (uint256[] memory amounts)
    {
        if (path.length < 2 || path[0] != WETH) revert InvalidPath();
        amounts = getAmountsIn(amountOut, path);
        if (amounts[0] > msg.value) revert ExcessiveInputAmount(amounts[0], msg.value);
        _wrapInto(_pairFor(path[0], path[1]), amounts[0]);
        _swap(amounts, path, to);
        if (msg.value > amounts[0]) SafeTransfer.safeTransferNative(msg.sender, msg.value - amounts[0]);
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @inheritdoc IUniswapV2Router02
    /// @dev amountB = amountA * reserveB / reserveA (no fee: the equal-value amount).
    function quote(uint256 amountA, uint256 reserveA, uint256 reserveB) public pure returns (uint256 amountB) {
        if (amountA == 0) revert InsufficientAmount();
        if (reserveA == 0 || reserveB == 0) revert InsufficientLiquidity(reserveA, reserveB);
        amountB = amountA * reserveB / reserveA;
    }

    /// @inheritdoc IUniswapV2Router02
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        public
        pure
        returns (uint256 amountOut)
    {
        if (amountIn == 0) revert InsufficientInputAmount();
        if (reserveIn == 0 || reserveOut == 0) revert InsufficientLiquidity(reserveIn, reserveOut);
        uint256 amountInWithFee = amountIn * 997;
        amountOut = amountInWithFee * reserveOut / (reserveIn * 1000 + amountInWithFee);
    }

    /// @inheritdoc IUniswapV2Router02
    function getAmountIn(uint256 amountOut, uint256 reserveIn, uint256 reserveOut)
        public
        pure
        returns (uint256 amountIn)
    {
        if (amountOut == 0) revert InsufficientAmount();
        if (reserveIn == 0 || reserveOut <= amountOut) revert InsufficientLiquidity(reserveIn, reserveOut);
        amountIn = reserveIn * amountOut * 1000 / ((reserveOut - amountOut) * 997) + 1;
    }

    /// @inheritdoc IUniswapV2Router02
    function getAmountsOut(uint256 amountIn, address[] calldata path) public view returns (uint256[] memory amounts) {
        if (path.length < 2) revert InvalidPath();
        amounts = new uint256[](path.length);
        amounts[0] = amountIn;
        for (uint256 i = 0; i < path.length - 1; ++i) {
            (uint256 reserveIn, uint256 reserveOut) = _getReserves(path[i], path[i + 1]);
            amounts[i + 1] = getAmountOut(amounts[i], reserveIn, reserveOut);
        }
    }

    /// @inheritdoc IUniswapV2Router02
    function getAmountsIn(uint256 amountOut, address[] calldata path) public view returns (uint256[] memory amounts) {
        if (path.length < 2) revert InvalidPath();
        amounts = new uint256[](path.length);
        amounts[amounts.length - 1] = amountOut;
        for (uint256 i = path.length - 1; i > 0; --i) {
            (uint256 reserveIn, uint256 reserveOut) = _getReserves(path[i - 1], path[i]);
            amounts[i - 1] = getAmountIn(amounts[i], reserveIn, reserveOut);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    function _addLiquidity(
        address tokenA,
        address tokenB,
        uint256 amountADesired,
        uint256 amountBDesired,
        uint256 amountAMin,
        uint256 amountBMin
    ) private returns (uint256 amountA, uint256 amountB) {
        if (IUniswapV2Factory(factory).getPair(tokenA, tokenB) == address(0)) {
            IUniswapV2Factory(factory).createPair(tokenA, tokenB);
        }
        (uint256 reserveA, uint256 reserveB) = _getReserves(tokenA, tokenB);
        if (reserveA == 0 && reserveB == 0) return (amountADesired, amountBDesired);
        uint256 amountBOptimal = quote(amountADesired, reserveA, reserveB);
        if (amountBOptimal <= amountBDesired) {
            if (amountBOptimal < amountBMin) revert InsufficientBAmount(amountBOptimal, amountBMin);
            return (amountADesired, amountBOptimal);
        }
        // amountBDesired < amountBOptimal implies amountAOptimal <= amountADesired.
        uint256 amountAOptimal = quote(amountBDesired, reserveB, reserveA);
        if (amountAOptimal < amountAMin) revert InsufficientAAmount(amountAOptimal, amountAMin);
        return (amountAOptimal, amountBDesired);
    }

    /// @dev Swaps along `path`; amounts[0] must already be in the first pair. Each hop sends its
    ///      output straight to the next pair, the last one to `to`.
    function _swap(uint256[] memory amounts, address[] calldata path, address to) private {
        uint256 hops = path.length - 1;
        for (uint256 i = 0; i < hops; ++i) {
            (address input, address output) = (path[i], path[i + 1]);
            (address token0,) = _sortTokens(input, output);
            uint256 amountOut = amounts[i + 1];
            (uint256 amount0Out, uint256 amount1Out) = input == token0 ? (uint256(0), amountOut) : (amountOut, uint256(0));
            address recipient = i < hops - 1 ? _pairFor(output, path[i + 2]) : to;
            IUniswapV2Pair(_pairFor(input, output)).swap(amount0Out, amount1Out, recipient, new bytes(0));
        }
    }

    function _requireOutput(uint256 amountOut, uint256 amountOutMin) private pure {
        if (amountOut < amountOutMin) revert InsufficientOutputAmount(amountOut, amountOutMin);
    }

    function _wrapInto(address pair, uint256 amount) private {
        WCRO(payable(WETH)).deposit{value: amount}();
        SafeTransfer.safeTransfer(WETH, pair, amount);
    }

    function _unwrapTo(address to, uint256 amount) private {
        WCRO(payable(WETH)).withdraw(amount);
        SafeTransfer.safeTransferNative(to, amount);
    }

    function _sortTokens(address tokenA, address tokenB) private pure returns (address token0, address token1) {
        if (tokenA == tokenB) revert IdenticalAddresses(tokenA);
        (token0, token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        if (token0 == address(0)) revert ZeroAddress();
    }

    /// @dev The CREATE2 address of the pair, whether or not it exists yet.
    function _pairFor(address tokenA, address tokenB) private view returns (address) {
        (address token0, address token1) = _sortTokens(tokenA, tokenB);
        bytes32 salt = keccak256(abi.encodePacked(token0, token1));
        return address(uint160(uint256(keccak256(abi.encodePacked(hex"ff", factory, salt, INIT_CODE_PAIR_HASH)))));
    }

    /// @dev Reserves ordered as (tokenA, tokenB); reverts PairNotFound if the pair was never created.
    function _getReserves(address tokenA, address tokenB) private view returns (uint256 reserveA, uint256 reserveB) {
        address pair = _pairFor(tokenA, tokenB);
        if (pair.code.length == 0) revert PairNotFound(tokenA, tokenB);
        (uint112 reserve0, uint112 reserve1,) = IUniswapV2Pair(pair).getReserves();
        (reserveA, reserveB) = tokenA < tokenB ? (uint256(reserve0), uint256(reserve1)) : (uint256(reserve1), uint256(reserve0));
    }
}
