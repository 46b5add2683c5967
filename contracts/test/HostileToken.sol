// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title HostileToken
/// @notice TEST ONLY — never deployed outside local chains. A minimal ERC-20 with an EIP-3009-shaped
///         `receiveWithAuthorization` (no signature check) that, once armed, calls back into a target
///         (e.g. the PaymentRouter) from inside transfer / transferFrom / receiveWithAuthorization,
///         and records what that re-entrant call returned. Used to show the router refuses re-entry.
contract HostileToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    mapping(address account => uint256) public balanceOf;
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    address public hookTarget;
    bytes public hookData;
    /// @notice Whether the re-entrant call ran, whether it succeeded, and its return or revert data.
    bool public hookCalled;
    bool public hookSucceeded;
    bytes public hookResult;

    /// @notice Credits `amount` to `to` (anyone may mint: this token is worthless by design).
    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Arms the hook: the next token movement first calls `target` with `data`, once. The
    ///         token lets `target` move its own balance, so a re-entrant payment by the token would
    ///         succeed unless the target refuses it.
    function arm(address target, bytes calldata data) external {
        allowance[address(this)][target] = type(uint256).max;
        hookTarget = target;
        hookData = data;
        hookCalled = false;
    }

    /// @notice ERC-20 approve.
    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    /// @notice ERC-20 transfer, after the hook.
    function transfer(address to, uint256 amount) external returns (bool) {
        _hook();
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice ERC-20 transferFrom, after the hook.
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _hook();
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
        return true;
    }

    /// @notice Moves `value` from `from` to the caller, who must be `to`; no signature check.
    function receiveWithAuthorization(address from, address to, uint256 value, uint256, uint256, bytes32, uint8, bytes32, bytes32)
        external
    {
        require(to == msg.sender, "HostileToken: caller must be the payee");
        _hook();
        _move(from, to, value);
    }

    function _hook() private {
        if (hookTarget == address(0) || hookCalled) return;
        hookCalled = true;
        (hookSucceeded, hookResult) = hookTarget.call(hookData);
    }

    function _move(address from, address to, uint256 amount) private {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
