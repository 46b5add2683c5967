// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "../interfaces/IERC20.sol";

/// @title WCRO
/// @notice Local-chain stand-in for Wrapped CRO (a WETH9 copy on Cronos): 1 WCRO is always
///         redeemable for 1 CRO held by this contract.
/// @dev Invariants:
///      - totalSupply() == address(this).balance (WETH9's definition; CRO forced in by selfdestruct
///        or placed by anvil_setBalance counts too, as on WETH9);
///      - no constructor state and no immutables (name and symbol are constants), so the runtime
///        code works unchanged after `anvil_setCode` at the testnet address;
///      - like WETH9, an allowance of type(uint256).max is never decreased and spending one's own
///        tokens through transferFrom needs no allowance; withdraw pays with a 2300-gas stipend.
contract WCRO is IERC20 {
    // ---------------------------------------------------------------------------------------------
    // Errors

    /// @notice `account` holds `balance`, less than `needed`.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice `spender` may move `allowance` of `owner`'s tokens, less than `needed`.
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    /// @notice Sending the unwrapped CRO to `to` failed (it refused it or needs more than 2300 gas).
    error WithdrawFailed(address to, uint256 amount);

    // ---------------------------------------------------------------------------------------------
    // Events (Transfer, Approval from IERC20)

    /// @notice `to` wrapped `amount` CRO.
    event Deposit(address indexed to, uint256 amount);
    /// @notice `from` unwrapped `amount` WCRO back to CRO.
    event Withdrawal(address indexed from, uint256 amount);

    // ---------------------------------------------------------------------------------------------
    // Storage

    /// @notice Token name.
    string public constant name = "Wrapped CRO";
    /// @notice Token symbol.
    string public constant symbol = "WCRO";
    /// @notice Decimals (as CRO).
    uint8 public constant decimals = 18;

    /// @notice Balance of each account.
    mapping(address account => uint256) public balanceOf;
    /// @notice What a spender may still move from an owner.
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    // ---------------------------------------------------------------------------------------------
    // External writes

    /// @notice Sending CRO wraps it (same as deposit()).
    receive() external payable {
        deposit();
    }

    /// @notice Wraps msg.value CRO into as much WCRO for the caller.
    function deposit() public payable {
        balanceOf[msg.sender] += msg.value;
        emit Deposit(msg.sender, msg.value);
    }

    /// @notice Unwraps `amount` WCRO of the caller and sends the CRO to the caller (2300 gas stipend).
    function withdraw(uint256 amount) external {
        uint256 balance = balanceOf[msg.sender];
        if (balance < amount) revert InsufficientBalance(msg.sender, balance, amount);
        unchecked {
            balanceOf[msg.sender] = balance - amount; // checked above
        }
        emit Withdrawal(msg.sender, amount);
        // WETH9 pays with Solidity's `transfer`: the recipient runs on the 2300-gas stipend alone
        // (gas 0 plus the stipend a value call adds; 2300 when nothing is sent). Kept so contracts
        // that unwrap behave here as on Cronos.
        (bool ok,) = payable(msg.sender).call{value: amount, gas: amount == 0 ? 2300 : 0}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    /// @inheritdoc IERC20
    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @inheritdoc IERC20
    function transfer(address to, uint256 value) external returns (bool) {
        return transferFrom(msg.sender, to, value);
    }

    /// @inheritdoc IERC20
    function transferFrom(address from, address to, uint256 value) public returns (bool) {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        if (from != msg.sender) {
            uint256 allowed = allowance[from][msg.sender];
            if (allowed != type(uint256).max) {
                if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
                unchecked {
                    allowance[from][msg.sender] = allowed - value; // checked above
                }
            }
        }
        // Cannot underflow (checked above) nor overflow (balances sum to this contract's CRO).
        unchecked {
            balanceOf[from] = balance - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @notice Total WCRO in existence: the CRO this contract holds.
    function totalSupply() external view returns (uint256) {
        return address(this).balance;
    }
}
