// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "../interfaces/IERC20.sol";

/// @title MockSwapRouter
/// @notice TEST ONLY — never deployed outside local chains. A router that misbehaves on purpose, for
///         the AgentWallet's own swap checks: swapExactTokensForTokens pulls `pull` of path[0] (not
///         necessarily amountIn), sends `payOut` of path[last] (held by this contract) to `to`,
///         ignores amountOutMin and the deadline, and reports [amountIn, ..., payOut].
contract MockSwapRouter {
    uint256 public pull;
    uint256 public payOut;

    function configure(uint256 pull_, uint256 payOut_) external {
        pull = pull_;
        payOut = payOut_;
    }

    function swapExactTokensForTokens(uint256 amountIn, uint256, address[] calldata path, address to, uint256)
        external
        returns (uint256[] memory amounts)
    {
        if (pull > 0) require(IERC20(path[0]).transferFrom(msg.sender, address(this), pull), "pull failed");
        if (payOut > 0) require(IERC20(path[path.length - 1]).transfer(to, payOut), "pay failed");
        amounts = new uint256[](path.length);
        amounts[0] = amountIn;
        amounts[path.length - 1] = payOut;
    }
}
