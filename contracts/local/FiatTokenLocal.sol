// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ECDSA} from "../lib/ECDSA.sol";
import {IERC20} from "../interfaces/IERC20.sol";
import {IERC3009} from "../interfaces/IERC3009.sol";

/// @title FiatTokenLocal
/// @notice Local-chain stand-in for Cronos USDC.e (Circle FiatToken v2.2 behaviour): ERC-20,
///         EIP-2612 permit, EIP-3009 transfer/receive/cancel with authorization, and the same
///         revert strings as FiatToken, so tools that map those strings to error codes work
///         unchanged against it.
/// @dev Invariants:
///      - no constructor state and no immutables: the runtime code is copied to the testnet
///        address with `anvil_setCode` and set up there by `initialize`, callable exactly once;
///      - the EIP-712 domain is (name, "1", block.chainid, address(this)), computed on every use
///        from the stored name hash, so it always names the address the code runs at;
///      - an EIP-3009 (authorizer, nonce) moves funds at most once and never after it was canceled;
///      - an authorization is valid iff validAfter < block.timestamp < validBefore;
///      - sum of balances == totalSupply; only the owner (the minter) creates tokens.
///      Not modelled from FiatToken: blacklisting, pausing, several minters with allowances,
///      EIP-1271 contract signers, upgradeability.
contract FiatTokenLocal is IERC20, IERC3009 {
    // ---------------------------------------------------------------------------------------------
    // Events (Transfer, Approval from IERC20; AuthorizationUsed, AuthorizationCanceled from IERC3009)

    /// @notice The token was set up where its code lives.
    event Initialized(string name, string symbol, uint8 decimals, address indexed owner);

    // ---------------------------------------------------------------------------------------------
    // Constants

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// @notice EIP-3009 transfer authorization type hash.
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 receive authorization type hash.
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 cancellation type hash.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");
    /// @notice EIP-2612 permit type hash.
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    // ---------------------------------------------------------------------------------------------
    // Storage
    //   slot 0: owner (20 bytes) | decimals (1) | initialized (1)
    //   slot 1: totalSupply
    //   slot 2: keccak256(name), the EIP-712 domain name hash
    //   slot 3, 4: name, symbol
    //   then the balance, allowance, permit nonce and authorization-state mappings

    /// @notice The minter (FiatToken's masterMinter and minter in one).
    address public owner;
    /// @notice Decimals of the atomic unit (6 for USDC.e).
    uint8 public decimals;
    bool private _initialized;
    /// @notice Total amount in existence.
    uint256 public totalSupply;
    bytes32 private _nameHash;
    /// @notice Token name, also the EIP-712 domain name.
    string public name;
    /// @notice Token symbol.
    string public symbol;

    /// @notice Balance of each account.
    mapping(address account => uint256) public balanceOf;
    /// @notice What a spender may still move from an owner.
    mapping(address owner => mapping(address spender => uint256)) public allowance;
    /// @notice The next EIP-2612 permit nonce of each owner.
    mapping(address owner => uint256) public nonces;
    mapping(address authorizer => mapping(bytes32 nonce => bool)) private _authorizationStates;

    // ---------------------------------------------------------------------------------------------
    // Setup

    /// @notice Sets name, symbol, decimals and minter; callable once, at the address the code runs.
    /// @dev Unprotected by design (local chains only): the deployer initialises in the same script
    ///      that places the code.
    function initialize(string calldata name_, string calldata symbol_, uint8 decimals_, address owner_) external {
        require(!_initialized, "FiatToken: contract is already initialized");
        require(owner_ != address(0), "FiatToken: new owner is the zero address");
        _initialized = true;
        owner = owner_;
        decimals = decimals_;
        name = name_;
        symbol = symbol_;
        _nameHash = keccak256(bytes(name_));
        emit Initialized(name_, symbol_, decimals_, owner_);
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: ERC-20

    /// @notice Creates `amount` for `to`; owner only. Emits Transfer(0, to, amount).
    function mint(address to, uint256 amount) external returns (bool) {
        require(msg.sender == owner, "FiatToken: caller is not a minter");
        require(to != address(0), "FiatToken: mint to the zero address");
        require(amount > 0, "FiatToken: mint amount not greater than 0");
        totalSupply += amount;
        // Cannot overflow: every balance is at most totalSupply, which the line above checked.
        unchecked {
            balanceOf[to] += amount;
        }
        emit Transfer(address(0), to, amount);
        return true;
    }

    /// @inheritdoc IERC20
    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @inheritdoc IERC20
    /// @dev Like FiatToken, the allowance is always decreased (no "infinite" allowance).
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(value <= allowed, "ERC20: transfer amount exceeds allowance");
        _transfer(from, to, value);
        unchecked {
            allowance[from][msg.sender] = allowed - value; // checked above
        }
        return true;
    }

    /// @inheritdoc IERC20
    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: EIP-2612

    /// @notice Sets `spender`'s allowance over `owner_`'s tokens from an EIP-712 signature.
    /// @dev Valid while block.timestamp <= deadline (type(uint256).max never expires).
    function permit(
        address owner_,
        address spender,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _permit(owner_, spender, value, deadline, ECDSA.recover(_permitDigest(owner_, spender, value, deadline), v, r, s));
    }

    /// @notice Same as the (v, r, s) form with a 65-byte r || s || v signature.
    function permit(address owner_, address spender, uint256 value, uint256 deadline, bytes calldata signature)
        external
    {
        _permit(owner_, spender, value, deadline, ECDSA.recover(_permitDigest(owner_, spender, value, deadline), signature));
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: EIP-3009

    /// @inheritdoc IERC3009
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        bytes32 digest = _authorizationDigest(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _useAuthorization(from, nonce, validAfter, validBefore, ECDSA.recover(digest, v, r, s));
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        bytes32 digest = _authorizationDigest(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _useAuthorization(from, nonce, validAfter, validBefore, ECDSA.recover(digest, signature));
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        require(to == msg.sender, "FiatTokenV2: caller must be the payee");
        bytes32 digest = _authorizationDigest(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _useAuthorization(from, nonce, validAfter, validBefore, ECDSA.recover(digest, v, r, s));
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        require(to == msg.sender, "FiatTokenV2: caller must be the payee");
        bytes32 digest = _authorizationDigest(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce);
        _useAuthorization(from, nonce, validAfter, validBefore, ECDSA.recover(digest, signature));
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _cancelAuthorization(authorizer, nonce, ECDSA.recover(_cancelDigest(authorizer, nonce), v, r, s));
    }

    /// @inheritdoc IERC3009
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external {
        _cancelAuthorization(authorizer, nonce, ECDSA.recover(_cancelDigest(authorizer, nonce), signature));
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @inheritdoc IERC3009
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationStates[authorizer][nonce];
    }

    /// @inheritdoc IERC3009
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice The EIP-712 domain version.
    function version() external pure returns (string memory) {
        return "1";
    }

    /// @notice EIP-5267 description of the EIP-712 domain (name, version, chainId, verifyingContract).
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name_,
            string memory version_,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", name, "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    /// @dev The one place balances move between accounts.
    function _transfer(address from, address to, uint256 value) internal {
        require(from != address(0), "ERC20: transfer from the zero address");
        require(to != address(0), "ERC20: transfer to the zero address");
        uint256 fromBalance = balanceOf[from];
        require(value <= fromBalance, "ERC20: transfer amount exceeds balance");
        // Cannot underflow (checked above) nor overflow (balances sum to totalSupply).
        unchecked {
            balanceOf[from] = fromBalance - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }

    function _approve(address owner_, address spender, uint256 value) internal {
        require(owner_ != address(0), "ERC20: approve from the zero address");
        require(spender != address(0), "ERC20: approve to the zero address");
        allowance[owner_][spender] = value;
        emit Approval(owner_, spender, value);
    }

    /// @dev Checks in FiatToken's order: timing, then reuse, then signer; then marks it used.
    function _useAuthorization(address from, bytes32 nonce, uint256 validAfter, uint256 validBefore, address signer)
        internal
    {
        require(block.timestamp > validAfter, "FiatTokenV2: authorization is not yet valid");
        require(block.timestamp < validBefore, "FiatTokenV2: authorization is expired");
        require(!_authorizationStates[from][nonce], "FiatTokenV2: authorization is used or canceled");
        // ECDSA.recover returns address(0) for a malformed signature; never a valid `from`.
        require(signer == from && signer != address(0), "FiatTokenV2: invalid signature");
        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, address signer) internal {
        require(!_authorizationStates[authorizer][nonce], "FiatTokenV2: authorization is used or canceled");
        require(signer == authorizer && signer != address(0), "FiatTokenV2: invalid signature");
        _authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _permit(address owner_, address spender, uint256 value, uint256 deadline, address signer) internal {
        require(deadline >= block.timestamp, "FiatTokenV2: permit is expired");
        require(signer == owner_ && signer != address(0), "EIP2612: invalid signature");
        unchecked {
            nonces[owner_]++; // a uint256 counter bumped once per permit cannot wrap
        }
        _approve(owner_, spender, value);
    }

    function _permitDigest(address owner_, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        return ECDSA.typedDataDigest(
            _domainSeparator(), keccak256(abi.encode(PERMIT_TYPEHASH, owner_, spender, value, nonces[owner_], deadline))
        );
    }

    function _authorizationDigest(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (bytes32) {
        return ECDSA.typedDataDigest(
            _domainSeparator(), keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce))
        );
    }

    function _cancelDigest(address authorizer, bytes32 nonce) internal view returns (bytes32) {
        return ECDSA.typedDataDigest(
            _domainSeparator(), keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce))
        );
    }

    /// @dev Recomputed on every use (one SLOAD + one hash) rather than cached: the code may run
    ///      at an address other than where it was deployed, and on a forked chain id.
    function _domainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, _nameHash, VERSION_HASH, block.chainid, address(this)));
    }
}
