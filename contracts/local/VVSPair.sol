// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {SafeTransfer} from "../lib/SafeTransfer.sol";
import {IERC20} from "../interfaces/IERC20.sol";
import {IUniswapV2Factory} from "../interfaces/IUniswapV2Factory.sol";
import {IUniswapV2Pair} from "../interfaces/IUniswapV2Pair.sol";

/// @title VVSPair
/// @notice Local-chain stand-in for a VVS Finance (UniswapV2) pair: a constant-product pool of
///         token0/token1 with a 0.3% swap fee, whose shares are an 18-decimal ERC-20 LP token.
/// @dev Invariants:
///      - after every swap, (balance0 * 1000 - in0 * 3) * (balance1 * 1000 - in1 * 3)
///        >= reserve0 * reserve1 * 1000**2, i.e. k never decreases net of the 0.3% fee;
///      - reserves equal the balances after every mint, burn, swap and sync (skim removes the excess);
///      - the first MINIMUM_LIQUIDITY shares are minted to address(0) and stay there;
///      - with the factory's feeTo set, 1/6 of the growth of sqrt(k) is minted to feeTo at the next
///        mint or burn (UniswapV2's protocol fee);
///      - one entry at a time (lock), token transfers out through SafeTransfer.
///      Flash swaps are not supported: `data` must be empty.
contract VVSPair is IUniswapV2Pair {
    // ---------------------------------------------------------------------------------------------
    // Errors

    error Locked();
    error Forbidden(address caller);
    /// @notice A balance does not fit the uint112 reserves.
    error Overflow(uint256 balance0, uint256 balance1);
    error InsufficientLiquidityMinted(uint256 liquidity);
    error InsufficientLiquidityBurned(uint256 amount0, uint256 amount1);
    error InsufficientOutputAmount();
    /// @notice Asked for at least a whole reserve.
    error InsufficientLiquidity(uint256 amount0Out, uint256 amount1Out, uint112 reserve0, uint112 reserve1);
    error InvalidTo(address to);
    error InsufficientInputAmount();
    /// @notice The fee-adjusted product of the balances fell below the product of the reserves.
    error KDecreased(uint256 kAfter, uint256 kBefore);
    error FlashSwapsNotSupported();
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);

    // ---------------------------------------------------------------------------------------------
    // Storage
    //   slot: reserve0 (uint112) | reserve1 (uint112) | blockTimestampLast (uint32)   — one word,
    //   read and written together on every swap.

    string public constant name = "VVS Finance LPs";
    string public constant symbol = "VVS-LP";
    uint8 public constant decimals = 18;
    uint256 public constant MINIMUM_LIQUIDITY = 10 ** 3;

    /// @notice The factory that created this pair (set in the constructor, so not in the init code hash).
    address public immutable factory;

    uint256 public totalSupply;
    mapping(address account => uint256) public balanceOf;
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    address public token0;
    address public token1;

    uint112 private _reserve0;
    uint112 private _reserve1;
    uint32 private _blockTimestampLast;

    /// @notice Sum over time of reserve1/reserve0 as UQ112x112 times seconds (wraps, by design).
    uint256 public price0CumulativeLast;
    /// @notice Sum over time of reserve0/reserve1 as UQ112x112 times seconds (wraps, by design).
    uint256 public price1CumulativeLast;
    uint256 public kLast;

    uint256 private _unlocked = 1;

    modifier lock() {
        if (_unlocked != 1) revert Locked();
        _unlocked = 2;
        _;
        _unlocked = 1;
    }

    // ---------------------------------------------------------------------------------------------
    // Constructor

    constructor() {
        factory = msg.sender;
    }

    // ---------------------------------------------------------------------------------------------
    // External writes

    /// @inheritdoc IUniswapV2Pair
    function initialize(address token0_, address token1_) external {
        if (msg.sender != factory) revert Forbidden(msg.sender);
        token0 = token0_;
        token1 = token1_;
    }

    /// @inheritdoc IUniswapV2Pair
    function mint(address to) external lock returns (uint256 liquidity) {
        (uint112 reserve0, uint112 reserve1) = (_reserve0, _reserve1);
        uint256 balance0 = IERC20(token0).balanceOf(address(this));
        uint256 balance1 = IERC20(token1).balanceOf(address(this));
        uint256 amount0 = balance0 - reserve0;
        uint256 amount1 = balance1 - reserve1;

        bool feeOn = _mintFee(reserve0, reserve1);
        uint256 supply = totalSupply; // after _mintFee, which may have minted
        if (supply == 0) {
            uint256 root = _sqrt(amount0 * amount1);
            if (root <= MINIMUM_LIQUIDITY) revert InsufficientLiquidityMinted(0);
            liquidity = root - MINIMUM_LIQUIDITY;
            _mint(address(0), MINIMUM_LIQUIDITY);
        } else {
            liquidity = _min(amount0 * supply / reserve0, amount1 * supply / reserve1);
        }
        if (liquidity == 0) revert InsufficientLiquidityMinted(liquidity);
        _mint(to, liquidity);

        _update(balance0, balance1, reserve0, reserve1);
        if (feeOn) kLast = uint256(_reserve0) * _reserve1;
        emit Mint(msg.sender, amount0, amount1);
    }

    /// @inheritdoc IUniswapV2Pair
    function burn(address to) external lock returns (uint256 amount0, uint256 amount1) {
        (uint112 reserve0, uint112 reserve1) = (_reserve0, _reserve1);
        (address t0, address t1) = (token0, token1);
        uint256 balance0 = IERC20(t0).balanceOf(address(this));
        uint256 balance1 = IERC20(t1).balanceOf(address(this));
        uint256 liquidity = balanceOf[address(this)];

        bool feeOn = _mintFee(reserve0, reserve1);
        uint256 supply = totalSupply;
        amount0 = liquidity * balance0 / supply; // pro rata by balances, so donations are shared
        amount1 = liquidity * balance1 / supply;
        if (amount0 == 0 || amount1 == 0) revert InsufficientLiquidityBurned(amount0, amount1);
        _burn(address(this), liquidity);
        SafeTransfer.safeTransfer(t0, to, amount0);
        SafeTransfer.safeTransfer(t1, to, amount1);
        balance0 = IERC20(t0).balanceOf(address(this));
        balance1 = IERC20(t1).balanceOf(address(this));

        _update(balance0, balance1, reserve0, reserve1);
        if (feeOn) kLast = uint256(_reserve0) * _reserve1;
        emit Burn(msg.sender, amount0, amount1, to);
    }

    /// @inheritdoc IUniswapV2Pair
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external lock {
        if (data.length != 0) revert FlashSwapsNotSupported();
        if (amount0Out == 0 && amount1Out == 0) revert InsufficientOutputAmount();
        (uint112 reserve0, uint112 reserve1) = (_reserve0, _reserve1);
        if (amount0Out >= reserve0 || amount1Out >= reserve1) {
            revert InsufficientLiquidity(amount0Out, amount1Out, reserve0, reserve1);
        }

        uint256 balance0;
        uint256 balance1;
        {
            (address t0, address t1) = (token0, token1);
            if (to == t0 || to == t1) revert InvalidTo(to);
            if (amount0Out > 0) SafeTransfer.safeTransfer(t0, to, amount0Out); // optimistic transfer out
            if (amount1Out > 0) SafeTransfer.safeTransfer(t1, to, amount1Out);
            balance0 = IERC20(t0).balanceOf(address(this));
            balance1 = IERC20(t1).balanceOf(address(this));
        }
        (uint256 amount0In, uint256 amount1In) =
            _checkedInputs(balance0, balance1, amount0Out, amount1Out, reserve0, reserve1);

        _update(balance0, balance1, reserve0, reserve1);
        emit Swap(msg.sender, amount0In, amount1In, amount0Out, amount1Out, to);
    }

    /// @inheritdoc IUniswapV2Pair
    function skim(address to) external lock {
        (address t0, address t1) = (token0, token1);
        SafeTransfer.safeTransfer(t0, to, IERC20(t0).balanceOf(address(this)) - _reserve0);
        SafeTransfer.safeTransfer(t1, to, IERC20(t1).balanceOf(address(this)) - _reserve1);
    }

    /// @inheritdoc IUniswapV2Pair
    function sync() external lock {
        _update(
            IERC20(token0).balanceOf(address(this)), IERC20(token1).balanceOf(address(this)), _reserve0, _reserve1
        );
    }

    /// @inheritdoc IUniswapV2Pair
    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @inheritdoc IUniswapV2Pair
    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @inheritdoc IUniswapV2Pair
    /// @dev An allowance of type(uint256).max is never decreased (as in UniswapV2).
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value; // checked above
            }
        }
        _transfer(from, to, value);
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @inheritdoc IUniswapV2Pair
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast) {
        return (_reserve0, _reserve1, _blockTimestampLast);
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    /// @dev The one place reserves change; also accumulates the time-weighted prices.
    function _update(uint256 balance0, uint256 balance1, uint112 reserve0, uint112 reserve1) private {
        if (balance0 > type(uint112).max || balance1 > type(uint112).max) revert Overflow(balance0, balance1);
        uint32 timestamp = uint32(block.timestamp); // mod 2**32, by design
        unchecked {
            // Wrapping subtraction and accumulation are intended (oracle users compare differences).
            uint32 elapsed = timestamp - _blockTimestampLast;
            if (elapsed > 0 && reserve0 != 0 && reserve1 != 0) {
                price0CumulativeLast += ((uint256(reserve1) << 112) / reserve0) * elapsed;
                price1CumulativeLast += ((uint256(reserve0) << 112) / reserve1) * elapsed;
            }
        }
        _reserve0 = uint112(balance0); // checked above
        _reserve1 = uint112(balance1);
        _blockTimestampLast = timestamp;
        emit Sync(uint112(balance0), uint112(balance1));
    }

    /// @dev The inputs a swap received, and the constant-product check net of the 0.3% fee.
    function _checkedInputs(
        uint256 balance0,
        uint256 balance1,
        uint256 amount0Out,
        uint256 amount1Out,
        uint112 reserve0,
        uint112 reserve1
    ) private pure returns (uint256 amount0In, uint256 amount1In) {
        // Out < reserve (checked by the caller), so these cannot underflow.
        unchecked {
            amount0In = balance0 > reserve0 - amount0Out ? balance0 - (reserve0 - amount0Out) : 0;
            amount1In = balance1 > reserve1 - amount1Out ? balance1 - (reserve1 - amount1Out) : 0;
        }
        if (amount0In == 0 && amount1In == 0) revert InsufficientInputAmount();
        // 0.3% of each input stays in the pool: balances scaled by 1000 minus 3 x input.
        uint256 kAfter = (balance0 * 1000 - amount0In * 3) * (balance1 * 1000 - amount1In * 3);
        uint256 kBefore = uint256(reserve0) * reserve1 * 1000 ** 2;
        if (kAfter < kBefore) revert KDecreased(kAfter, kBefore);
    }

    /// @dev Mints the protocol's 1/6 of the sqrt(k) growth since kLast to feeTo, if on.
    function _mintFee(uint112 reserve0, uint112 reserve1) private returns (bool feeOn) {
        address feeTo = IUniswapV2Factory(factory).feeTo();
        feeOn = feeTo != address(0);
        uint256 k = kLast;
        if (feeOn) {
            if (k != 0) {
                uint256 rootK = _sqrt(uint256(reserve0) * reserve1);
                uint256 rootKLast = _sqrt(k);
                if (rootK > rootKLast) {
                    uint256 liquidity = totalSupply * (rootK - rootKLast) / (rootK * 5 + rootKLast);
                    if (liquidity > 0) _mint(feeTo, liquidity);
                }
            }
        } else if (k != 0) {
            kLast = 0;
        }
    }

    function _mint(address to, uint256 value) private {
        totalSupply += value;
        unchecked {
            balanceOf[to] += value; // bounded by totalSupply
        }
        emit Transfer(address(0), to, value);
    }

    function _burn(address from, uint256 value) private {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value; // checked above
            totalSupply -= value; // totalSupply >= balance >= value
        }
        emit Transfer(from, address(0), value);
    }

    function _transfer(address from, address to, uint256 value) private {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            balanceOf[from] = balance - value; // checked above
            balanceOf[to] += value; // bounded by totalSupply
        }
        emit Transfer(from, to, value);
    }

    /// @dev Integer square root, rounded down (Babylonian method).
    function _sqrt(uint256 y) private pure returns (uint256 z) {
        if (y > 3) {
            z = y;
            uint256 x = y / 2 + 1;
            while (x < z) {
                z = x;
                x = (y / x + x) / 2;
            }
        } else if (y != 0) {
            z = 1;
        }
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
