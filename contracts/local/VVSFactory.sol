// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IUniswapV2Factory} from "../interfaces/IUniswapV2Factory.sol";
import {VVSPair} from "./VVSPair.sol";

/// @title VVSFactory
/// @notice Local-chain stand-in for the VVS Finance (UniswapV2) factory: creates at most one
///         VVSPair per unordered token pair, at a CREATE2 address anyone can derive.
/// @dev Invariants:
///      - pair address = CREATE2(this, keccak256(abi.encodePacked(token0, token1)),
///        INIT_CODE_PAIR_HASH) with token0 < token1, and INIT_CODE_PAIR_HASH is computed from the
///        compiled VVSPair creation code (never hard-coded);
///      - getPair is symmetric and set once per pair;
///      - only feeToSetter changes feeTo and feeToSetter.
contract VVSFactory is IUniswapV2Factory {
    // ---------------------------------------------------------------------------------------------
    // Errors

    error IdenticalAddresses(address token);
    error ZeroAddress();
    error PairExists(address token0, address token1, address pair);
    error Forbidden(address caller);

    // ---------------------------------------------------------------------------------------------
    // Events (PairCreated from IUniswapV2Factory)

    event FeeToSet(address indexed feeTo);
    event FeeToSetterSet(address indexed feeToSetter);

    // ---------------------------------------------------------------------------------------------
    // Storage

    /// @inheritdoc IUniswapV2Factory
    bytes32 public constant INIT_CODE_PAIR_HASH = keccak256(type(VVSPair).creationCode);

    /// @inheritdoc IUniswapV2Factory
    address public feeTo;
    /// @inheritdoc IUniswapV2Factory
    address public feeToSetter;
    /// @inheritdoc IUniswapV2Factory
    mapping(address tokenA => mapping(address tokenB => address pair)) public getPair;
    /// @inheritdoc IUniswapV2Factory
    address[] public allPairs;

    // ---------------------------------------------------------------------------------------------
    // Constructor

    constructor(address feeToSetter_) {
        feeToSetter = feeToSetter_;
    }

    // ---------------------------------------------------------------------------------------------
    // External writes

    /// @inheritdoc IUniswapV2Factory
    function createPair(address tokenA, address tokenB) external returns (address pair) {
        if (tokenA == tokenB) revert IdenticalAddresses(tokenA);
        (address token0, address token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        if (token0 == address(0)) revert ZeroAddress();
        address existing = getPair[token0][token1];
        if (existing != address(0)) revert PairExists(token0, token1, existing);

        pair = address(new VVSPair{salt: keccak256(abi.encodePacked(token0, token1))}());
        VVSPair(pair).initialize(token0, token1);
        getPair[token0][token1] = pair;
        getPair[token1][token0] = pair;
        allPairs.push(pair);
        emit PairCreated(token0, token1, pair, allPairs.length);
    }

    /// @inheritdoc IUniswapV2Factory
    function setFeeTo(address feeTo_) external {
        if (msg.sender != feeToSetter) revert Forbidden(msg.sender);
        feeTo = feeTo_;
        emit FeeToSet(feeTo_);
    }

    /// @inheritdoc IUniswapV2Factory
    function setFeeToSetter(address feeToSetter_) external {
        if (msg.sender != feeToSetter) revert Forbidden(msg.sender);
        feeToSetter = feeToSetter_;
        emit FeeToSetterSet(feeToSetter_);
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @inheritdoc IUniswapV2Factory
    function allPairsLength() external view returns (uint256) {
        return allPairs.length;
    }
}
