// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title ReentrantReceiver
/// @notice TEST ONLY — never deployed outside local chains. A payee that, once armed, calls
///         `target` with `data` from inside receive() (while the paying call is still running) and
///         records whether that call succeeded and what it returned or reverted with. `poke()` makes
///         the same call from a fresh transaction, to show it succeeds when it is not nested.
///         Used to show that AgentWallet's lock refuses re-entry from a payee.
contract ReentrantReceiver {
    address public target;
    bytes public data;
    bool public called;
    bool public succeeded;
    bytes public result;

    /// @notice Sets the call made on the next receipt of CRO (and by poke).
    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
        called = false;
    }

    /// @notice Makes the armed call now, not nested in anything.
    function poke() external {
        (succeeded, result) = target.call(data);
        called = true;
    }

    receive() external payable {
        if (target == address(0) || called) return;
        called = true;
        (succeeded, result) = target.call(data);
    }
}
