// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ECDSA} from "./lib/ECDSA.sol";
import {EIP712} from "./lib/EIP712.sol";
import {SafeTransfer, TransferFailed} from "./lib/SafeTransfer.sol";
import {IUniswapV2Router02} from "./interfaces/IUniswapV2Router02.sol";

/// @title AgentWallet
/// @notice Holds one owner's funds (ERC-20 tokens and native CRO, written address(0)) and lets the
///         owner's agent keys spend them inside per-agent, per-token rules, without the keys to the
///         money. What it guarantees:
///         - An agent spends (pay, swap input, float top-up) at most `limit` of a token per window
///           and at most `cap` in one action; anything bigger waits in an approval queue that only
///           the owner can execute.
///         - Windows are FIXED and aligned to the epoch: window i is the interval
///           [i * period, (i + 1) * period), with i = block.timestamp / period (for one day:
///           00:00 UTC to 00:00 UTC). A spend at timestamp (i + 1) * period - 1 still counts in
///           window i; at (i + 1) * period window i + 1 starts with nothing spent.
///         - Consequence, stated plainly: across a window edge an agent can spend up to 2 x limit
///           within less than one period, as little as one second apart (`limit` at the end of
///           window i, `limit` again at the start of window i + 1). Owners who need "at most
///           `limit` in any 24 hours" should set limit to half their budget.
///         - A paused or revoked agent, or a paused wallet, moves no funds by any path.
/// @dev Invariants:
///      1. For every (agent, token) and window i: the sum of pay + swap input + float top-ups in
///         window i is <= the rule's limit, and each one is <= the rule's cap (an agent with no
///         rule for a token has cap 0 and spends nothing). setRule with a different period starts
///         the count afresh; with the same period it keeps the window's spend.
///      2. A request executes at most once, only by the owner, only while Pending and
///         block.timestamp < expiresAt, for an active unpaused agent in an unpaused wallet, and
///         for 0 < approvedAmount <= requested amount. Executed requests do NOT count against the
///         agent's window: the owner decided.
///      3. Only the owner changes rules, agents, routers, the pause flag, the request TTL and the
///         owner, and only the owner withdraws.
///      4. Every path that moves funds for an agent (pay, payWithSig, swap, topUpFloat, request
///         execution) passes `_requireActiveAgent`: wallet not paused, agent active, agent not
///         paused. propose/proposeWithSig pass it too.
///      5. Funds leave only by: withdraw (owner), pay/payWithSig (in limit), an executed request,
///         topUpFloat (to the agent itself, in limit, its balance <= floatCap), and swap through
///         an allowlisted router whose output is measured arriving at this wallet; the router's
///         allowance is exactly amountIn during the swap and 0 after.
///      Every function that moves funds holds a reentrancy lock. Every state change emits one
///      past-tense event carrying every field, so an indexer rebuilds the state from events alone
///      (a request's createdAt is the block time of its RequestProposed).
///      Checked by tests/contracts/test_agent_wallet_*.py (unit) and test_properties.py (stateful).
///      Considerations:
///      - Revoking keeps an agent's rules and nonce: re-adding it restores its rules, and intents it
///        signed for its current nonce become relayable again until their deadline.
///      - amounts are stored in 96 bits (AmountTooLarge above), limits at most type(int96).max
///        (what remains of a window is signed), window indexes in 32 bits (exact until 2106), nonces
///        in 64 bits (checked, never wraps).
///      - A fee-on-transfer token counts the amount sent, not the amount received.
contract AgentWallet is EIP712 {
    // ---------------------------------------------------------------------------------------------
    // Errors

    /// @notice msg.sender is not the owner (for acceptOwnership: not the pending owner).
    error NotOwner(address caller);
    /// @notice `agent` is not an active agent of this wallet (never added, or revoked).
    error NotAgent(address agent);
    /// @notice addAgent of an agent that is already active.
    error AlreadyAgent(address agent);
    /// @notice The owner paused `agent`.
    error AgentIsPaused(address agent);
    /// @notice The owner paused the whole wallet.
    error WalletIsPaused();
    /// @notice Spending `amount` would take the window's spend above `limit`.
    error LimitExceeded(address agent, address token, uint256 limit, uint256 spentInWindow, uint256 amount);
    /// @notice `amount` is above the per-action cap (cap 0: the agent has no rule for the token).
    error CapExceeded(address agent, address token, uint256 cap, uint256 amount);
    /// @notice A float top-up would leave the agent holding `balanceAfter` > `floatCap`.
    error FloatCapExceeded(address agent, address token, uint256 balanceAfter, uint256 floatCap);
    /// @notice `router` is not on the owner's allowlist.
    error RouterNotAllowed(address router);
    /// @notice The swap delivered `received` to the wallet, less than `minimum`.
    error InsufficientOutput(uint256 received, uint256 minimum);
    /// @notice `deadline` < block.timestamp (`timestamp`); deadlines are inclusive.
    error DeadlinePassed(uint256 deadline, uint256 timestamp);
    /// @notice A swap path needs at least two tokens and a different first and last token.
    error InvalidPath();
    /// @notice No request has this id.
    error UnknownRequest(uint256 requestId);
    /// @notice The request is no longer Pending (it is `status`).
    error RequestNotPending(uint256 requestId, RequestStatus status);
    /// @notice The request lapsed at `expiresAt`; it can only be expired now.
    error RequestHasExpired(uint256 requestId, uint256 expiresAt);
    /// @notice expire() before `expiresAt`.
    error RequestNotExpired(uint256 requestId, uint256 expiresAt);
    /// @notice approveAmount above what the agent requested.
    error ApprovedAboveRequested(uint256 requestId, uint256 requested, uint256 approved);
    /// @notice Only the agent that proposed a request may cancel it.
    error NotProposer(uint256 requestId, address caller, address agent);
    /// @notice The signature does not recover to the agent for this intent and the agent's
    ///         current nonce (wrong signer, replayed or out-of-order nonce, altered field, malformed).
    error InvalidSignature();
    /// @notice setRule with cap > limit.
    error CapAboveLimit(uint256 cap, uint256 limit);
    /// @notice setRule with period 0.
    error InvalidPeriod();
    /// @notice A request TTL of 0 or above MAX_REQUEST_TTL.
    error InvalidRequestTtl(uint64 ttl);
    /// @notice An address that must be set is address(0).
    error ZeroAddress();
    /// @notice An amount that must be positive is 0.
    error ZeroAmount();
    /// @notice `amount` does not fit the 96 bits a stored amount has.
    error AmountTooLarge(uint256 amount);
    /// @notice A function that moves funds was re-entered.
    error Reentrancy();
    /// @notice The allowlisted router's call succeeded without the answer a swap gives (an amounts
    ///         array): an address without code, or a contract that is not a UniswapV2 router.
    error NotARouter(address router);

    // ---------------------------------------------------------------------------------------------
    // Events

    /// @notice Native CRO arrived (plain transfer). ERC-20 deposits are the token's Transfer events.
    event Deposited(address indexed from, uint256 amount);
    event AgentAdded(address indexed agent);
    event AgentRevoked(address indexed agent);
    event AgentPauseSet(address indexed agent, bool paused);
    /// @notice A rule was set; if `period` changed, the window's spend restarts from 0.
    event RuleSet(address indexed agent, address indexed token, uint96 limit, uint96 cap, uint32 period, uint96 floatCap);
    event RouterSet(address indexed router, bool allowed);
    event WalletPauseSet(bool paused);
    event RequestTtlSet(uint64 ttl);
    event Withdrawn(address indexed token, address indexed to, uint256 amount);
    /// @notice An agent paid; `remainingInWindow` is what the agent may still spend of `token` in
    ///         window `windowIndex` after this payment (the limit less the window's spend).
    event Paid(
        address indexed agent,
        address indexed token,
        address indexed to,
        uint256 amount,
        bytes32 ref,
        uint256 remainingInWindow,
        uint256 windowIndex
    );
    /// @notice An agent swapped `amountIn` of tokenIn for `amountOut` of tokenOut, received here.
    event Swapped(
        address indexed agent,
        address indexed router,
        address tokenIn,
        address tokenOut,
        uint256 amountIn,
        uint256 amountOut,
        uint256 remainingInWindow,
        uint256 windowIndex
    );
    /// @notice The wallet sent `amount` to the agent's own hot key.
    event FloatToppedUp(
        address indexed agent, address indexed token, uint256 amount, uint256 remainingInWindow, uint256 windowIndex
    );
    /// @notice A signed intent consumed the agent's `nonce` (the next one is nonce + 1).
    event NonceUsed(address indexed agent, uint256 nonce);
    event RequestProposed(
        uint256 indexed requestId,
        address indexed agent,
        address token,
        address to,
        uint256 amount,
        bytes32 ref,
        uint256 expiresAt
    );
    event RequestExecuted(
        uint256 indexed requestId,
        address indexed agent,
        address token,
        address to,
        uint256 requestedAmount,
        uint256 approvedAmount
    );
    event RequestRejected(uint256 indexed requestId, address indexed agent);
    event RequestCancelled(uint256 indexed requestId, address indexed agent);
    event RequestExpired(uint256 indexed requestId, address indexed agent);
    /// @notice The owner offered ownership to `newOwner` (address(0): offer withdrawn).
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    /// @notice Ownership moved (also emitted by the constructor, from address(0)).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // ---------------------------------------------------------------------------------------------
    // Types

    enum RequestStatus {
        None,
        Pending,
        Executed,
        Rejected,
        Cancelled,
        Expired
    }

    /// @dev One slot per agent. The nonce is 64 bits: checked arithmetic reverts rather than wrap,
    ///      and 2^64 signed intents are out of reach.
    struct Agent {
        bool active;
        bool paused;
        uint64 nonce;
    }

    /// @dev One slot per (agent, token): everything a spend reads and writes while its window
    ///      lasts. `remaining` is the limit less window `windowIndex`'s spend; it is negative when
    ///      the owner lowered the limit below what the window had spent (so raising it again gives
    ///      back exactly limit - spent). A spend in a later window starts again from the limit,
    ///      which is then read from Limits (the only time the hot path reads that slot). Limits
    ///      are at most type(int96).max so that remaining fits. windowIndex holds block.timestamp
    ///      / period in 32 bits: exact while block.timestamp < 2^32 (year 2106), as Uniswap's
    ///      uint32 timestamps.
    struct Window {
        int96 remaining;
        uint96 cap;
        uint32 windowIndex;
        uint32 period;
    }

    /// @dev One slot per (agent, token): read when a window starts, by float top-ups and by views.
    struct Limits {
        uint96 limit;
        uint96 floatCap;
    }

    /// @dev Four slots, fields ordered to pack: agent|amount, token|approvedAmount,
    ///      to|createdAt|expiresAt|status, ref.
    struct Request {
        address agent;
        uint96 amount;
        address token;
        uint96 approvedAmount;
        address to;
        uint40 createdAt;
        uint40 expiresAt;
        RequestStatus status;
        bytes32 ref;
    }

    // ---------------------------------------------------------------------------------------------
    // Storage
    //   slot 0  _lock (1 byte) | paused (1) | requestTtl (8) | _firstRouter (20)
    //           -> every agent action loads this slot once (cold) for the lock and the pause flag,
    //              and a swap through the first allowlisted router finds it here too; the lock's
    //              1 -> 2 -> 1 round trip then costs 2,900 + 100 - 2,800 refund
    //   slot 1  owner (20)            (admin paths only)
    //   slot 2  pendingOwner (20)
    //   slot 3  requestCount
    //   slot 4  _agents:  agent => active (1) | paused (1) | nonce (8)
    //   slot 5  _windows: agent => token => remaining (12, signed) | cap (12) | windowIndex (4) | period (4)
    //   slot 6  _limits:  agent => token => limit (12) | floatCap (12)
    //   slot 7  _moreRouters: router => bool   (allowlisted routers besides _firstRouter)
    //   slot 8  _requests: id => Request (4 slots, see the struct)
    //   code    EIP-712 domain (immutables of EIP712)
    //   A pay inside its window therefore reads three cold slots (slot 0, the agent, the (agent,
    //   token) window) and writes the window besides the lock; the limits slot is read only when a
    //   spend opens a new window. A swap through the first router the same.

    /// @notice EIP-712 type of a signed payment intent (see payWithSig).
    bytes32 public constant PAY_TYPEHASH = keccak256(
        "Pay(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)"
    );
    /// @notice EIP-712 type of a signed proposal (see proposeWithSig).
    bytes32 public constant PROPOSE_TYPEHASH = keccak256(
        "Propose(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)"
    );
    /// @notice The longest request lifetime the owner can set (one year).
    uint64 public constant MAX_REQUEST_TTL = 365 days;

    uint8 private constant UNLOCKED = 1;
    uint8 private constant LOCKED = 2;

    uint8 private _lock;
    /// @notice While true, no agent action succeeds and no request executes (withdraw still works).
    bool public paused;
    /// @notice Lifetime of new requests, seconds: a request proposed at t expires at t + requestTtl.
    uint64 public requestTtl;
    /// @dev One allowlisted router kept in slot 0 (address(0): none), so that swaps through it, the
    ///      usual one-router wallet, cost no extra cold SLOAD (2,100 gas). Others: _moreRouters.
    address private _firstRouter;
    /// @notice Who sets the rules and withdraws.
    address public owner;
    /// @notice Who may call acceptOwnership (address(0): nobody).
    address public pendingOwner;
    /// @notice Number of requests ever proposed; ids are 1..requestCount.
    uint256 public requestCount;
    mapping(address agent => Agent) private _agents;
    mapping(address agent => mapping(address token => Window)) private _windows;
    mapping(address agent => mapping(address token => Limits)) private _limits;
    mapping(address router => bool) private _moreRouters;
    mapping(uint256 requestId => Request) private _requests;

    // ---------------------------------------------------------------------------------------------
    // Modifiers

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @dev A plain storage lock (1 unlocked, 2 locked) sharing slot 0; no transient storage (paris).
    modifier nonReentrant() {
        if (_lock != UNLOCKED) revert Reentrancy();
        _lock = LOCKED;
        _;
        _lock = UNLOCKED;
    }

    // ---------------------------------------------------------------------------------------------
    // Constructor

    /// @param owner_ The owner (emits OwnershipTransferred(address(0), owner_)).
    /// @param requestTtl_ Lifetime of requests, seconds, 1..MAX_REQUEST_TTL (emits RequestTtlSet).
    constructor(address owner_, uint64 requestTtl_) EIP712("Paygent AgentWallet", "1") {
        if (owner_ == address(0)) revert ZeroAddress();
        if (requestTtl_ == 0 || requestTtl_ > MAX_REQUEST_TTL) revert InvalidRequestTtl(requestTtl_);
        owner = owner_;
        _lock = UNLOCKED;
        requestTtl = requestTtl_;
        emit OwnershipTransferred(address(0), owner_);
        emit RequestTtlSet(requestTtl_);
    }

    /// @notice Accepts native CRO from anyone. Emits Deposited. Fits in the 2,300-gas stipend.
    receive() external payable {
        emit Deposited(msg.sender, msg.value);
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: agents

    /// @notice Pays `amount` of `token` (address(0): CRO) from the wallet to `to`, inside the
    ///         caller's rule: amount <= cap and the window's spend + amount <= limit.
    /// @dev Caller: an active, unpaused agent of an unpaused wallet. Emits Paid.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param to The payee (not address(0)).
    /// @param amount Atomic units, > 0.
    /// @param ref The agent's reference (e.g. a request hash), echoed in Paid.
    function pay(address token, address to, uint256 amount, bytes32 ref) external nonReentrant {
        _requireActiveAgent(msg.sender);
        _pay(msg.sender, token, to, amount, ref);
    }

    /// @notice Swaps exactly `amountIn` of path[0] through an allowlisted UniswapV2-style router
    ///         (swapExactTokensForTokens), output to this wallet. amountIn counts against the
    ///         caller's (agent, path[0]) rule like a payment.
    /// @dev Caller: an active, unpaused agent of an unpaused wallet. The router is approved for
    ///      exactly amountIn and the approval is 0 again when swap returns (a UniswapV2 router pulls
    ///      all of it; if one did not, the rest is revoked). The output is measured by the wallet's
    ///      balance of path[last] before and after, and must be >= minOut. CRO is swapped as WCRO:
    ///      the wallet swaps WCRO it holds (put WCRO in the path). Emits Swapped.
    /// @param router An allowlisted router.
    /// @param amountIn Input, atomic units of path[0], > 0.
    /// @param minOut Least output the wallet must receive (also passed to the router).
    /// @param path Token path, >= 2 tokens, path[0] != path[last].
    /// @param deadline Last valid timestamp (inclusive), checked here and by the router.
    /// @return amountOut What the wallet received.
    function swap(address router, uint256 amountIn, uint256 minOut, address[] calldata path, uint256 deadline)
        external
        nonReentrant
        returns (uint256 amountOut)
    {
        _requireActiveAgent(msg.sender);
        if (!_isRouterAllowed(router)) revert RouterNotAllowed(router);
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        if (path.length < 2 || path[0] == path[path.length - 1]) revert InvalidPath();
        (uint256 remaining, uint256 index) = _spend(msg.sender, path[0], amountIn);
        amountOut = _swapExactIn(router, amountIn, minOut, path, deadline);
        emit Swapped(msg.sender, router, path[0], path[path.length - 1], amountIn, amountOut, remaining, index);
    }

    /// @notice Sends `amount` of `token` to the caller's own hot key (its "float", used to sign
    ///         EIP-3009 x402 payments), inside the caller's rule like a payment, and only if the
    ///         caller's balance afterwards is <= the rule's floatCap.
    /// @dev Caller: an active, unpaused agent of an unpaused wallet. Balance: token.balanceOf(agent),
    ///      or agent.balance for CRO (gas the agent spends lowers it). Emits FloatToppedUp.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param amount Atomic units, > 0.
    function topUpFloat(address token, uint256 amount) external nonReentrant {
        _requireActiveAgent(msg.sender);
        (uint256 remaining, uint256 index) = _spend(msg.sender, token, amount);
        uint256 balanceAfter =
            (token == address(0) ? msg.sender.balance : SafeTransfer.balanceOf(token, msg.sender)) + amount;
        uint256 floatCap = _limits[msg.sender][token].floatCap;
        if (balanceAfter > floatCap) revert FloatCapExceeded(msg.sender, token, balanceAfter, floatCap);
        SafeTransfer.safeTransferAny(token, msg.sender, amount);
        emit FloatToppedUp(msg.sender, token, amount, remaining, index);
    }

    /// @notice Asks the owner to pay `amount` of `token` to `to` (typically above the caller's
    ///         limit or cap). The request waits Pending until the owner approves (it executes then),
    ///         rejects, the agent cancels, or it expires requestTtl seconds from now.
    /// @dev Caller: an active, unpaused agent of an unpaused wallet. No limit applies to proposing.
    ///      Emits RequestProposed.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param to The payee (not address(0)).
    /// @param amount Atomic units, 0 < amount < 2^96.
    /// @param ref The agent's reference, echoed in RequestProposed and stored.
    /// @return requestId The new id (1, 2, ...).
    function propose(address token, address to, uint256 amount, bytes32 ref)
        external
        returns (uint256 requestId)
    {
        _requireActiveAgent(msg.sender);
        return _enqueue(msg.sender, token, to, amount, ref);
    }

    /// @notice Withdraws the caller's own Pending request before it expires.
    /// @dev Caller: the agent that proposed it, even while paused or revoked (cancelling moves no
    ///      funds, it only removes a payment). Emits RequestCancelled.
    /// @param requestId The request.
    function cancel(uint256 requestId) external {
        Request storage req = _existingRequest(requestId);
        address agent = req.agent;
        if (msg.sender != agent) revert NotProposer(requestId, msg.sender, agent);
        _checkPending(requestId, req);
        req.status = RequestStatus.Cancelled;
        emit RequestCancelled(requestId, agent);
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: signed intents (relayed by anyone; the agent key needs no CRO)

    /// @notice `pay` on behalf of `agent`, authorised by its EIP-712 signature over
    ///         Pay(agent, token, to, amount, ref, nonce, deadline) with nonce == nonces(agent).
    ///         Anyone may relay it; the relayer pays gas and gains nothing.
    /// @dev Same rules as pay for `agent`; consumes the nonce (emits NonceUsed, then Paid).
    ///      Reverts DeadlinePassed after `deadline`, InvalidSignature unless the signature recovers
    ///      to `agent` for exactly these fields and the current nonce (so a replay fails).
    /// @param agent The agent whose rule applies and who signed.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param to The payee.
    /// @param amount Atomic units, > 0.
    /// @param ref The agent's reference.
    /// @param deadline Last valid timestamp (inclusive).
    /// @param signature 65 bytes r || s || v (low s, v 27/28).
    function payWithSig(
        address agent,
        address token,
        address to,
        uint256 amount,
        bytes32 ref,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant {
        uint256 nonce = _requireActiveAgent(agent);
        bytes32 structHash = keccak256(abi.encode(PAY_TYPEHASH, agent, token, to, amount, ref, nonce, deadline));
        _useSignature(agent, nonce, structHash, deadline, signature);
        _pay(agent, token, to, amount, ref);
    }

    /// @notice `propose` on behalf of `agent`, authorised by its EIP-712 signature over
    ///         Propose(agent, token, to, amount, ref, nonce, deadline) with nonce == nonces(agent).
    /// @dev Same rules as propose for `agent`; consumes the nonce (emits NonceUsed, then
    ///      RequestProposed). DeadlinePassed / InvalidSignature as payWithSig.
    /// @param agent The agent who signed and becomes the request's proposer.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param to The payee.
    /// @param amount Atomic units, 0 < amount < 2^96.
    /// @param ref The agent's reference.
    /// @param deadline Last valid timestamp (inclusive).
    /// @param signature 65 bytes r || s || v (low s, v 27/28).
    /// @return requestId The new id.
    function proposeWithSig(
        address agent,
        address token,
        address to,
        uint256 amount,
        bytes32 ref,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 requestId) {
        uint256 nonce = _requireActiveAgent(agent);
        bytes32 structHash =
            keccak256(abi.encode(PROPOSE_TYPEHASH, agent, token, to, amount, ref, nonce, deadline));
        _useSignature(agent, nonce, structHash, deadline, signature);
        return _enqueue(agent, token, to, amount, ref);
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: owner

    /// @notice Makes `agent` an active, unpaused agent. Its rules and nonce (if it was an agent
    ///         before) are kept. Owner only. Emits AgentAdded.
    /// @param agent The agent key (not address(0), not already active).
    function addAgent(address agent) external onlyOwner {
        if (agent == address(0)) revert ZeroAddress();
        if (_agents[agent].active) revert AlreadyAgent(agent);
        _agents[agent].active = true;
        _agents[agent].paused = false;
        emit AgentAdded(agent);
    }

    /// @notice Removes `agent`: from now on it can neither spend, propose, nor have its requests
    ///         executed (the owner rejects or lets them expire). Its nonce is kept, so intents it
    ///         signed stay single-use if it is ever added again. Owner only. Emits AgentRevoked.
    /// @param agent An active agent.
    function revokeAgent(address agent) external onlyOwner {
        if (!_agents[agent].active) revert NotAgent(agent);
        _agents[agent].active = false;
        _agents[agent].paused = false;
        emit AgentRevoked(agent);
    }

    /// @notice Pauses or resumes one agent (a paused agent moves no funds; it may still cancel its
    ///         own requests). Owner only. Emits AgentPauseSet.
    /// @param agent An active agent.
    /// @param paused_ True to pause, false to resume.
    function setAgentPaused(address agent, bool paused_) external onlyOwner {
        if (!_agents[agent].active) revert NotAgent(agent);
        _agents[agent].paused = paused_;
        emit AgentPauseSet(agent, paused_);
    }

    /// @notice Sets `agent`'s rule for `token` (address(0): CRO): at most `limit` per window of
    ///         `period` seconds (fixed windows, see the contract notice), at most `cap` per action,
    ///         and float top-ups only while the agent's own balance stays <= `floatCap`.
    ///         Owner only. Emits RuleSet. An agent need not be active to get a rule.
    /// @dev With the same period the current window's spend is kept (lowering the limit below it
    ///      stops further spending in this window); with a new period it restarts from 0.
    /// @param agent The agent (not address(0)).
    /// @param token The token (address(0): CRO).
    /// @param limit Most the agent spends per window, <= type(int96).max (else AmountTooLarge).
    ///        0 with cap 0 forbids spending.
    /// @param cap Most per single action; <= limit.
    /// @param period Window length in seconds, > 0 (86400: UTC days).
    /// @param floatCap Most the agent's hot key may hold after a top-up (0: no top-ups).
    function setRule(address agent, address token, uint96 limit, uint96 cap, uint32 period, uint96 floatCap) external onlyOwner {
        if (agent == address(0)) revert ZeroAddress();
        if (period == 0) revert InvalidPeriod();
        if (cap > limit) revert CapAboveLimit(cap, limit);
        if (limit > uint96(type(int96).max)) revert AmountTooLarge(limit);
        Window memory w = _windows[agent][token];
        uint256 current = block.timestamp / period;
        int256 remaining = int256(uint256(limit)); // a new period, or no spend in this window: afresh
        if (w.period == period && w.windowIndex == current) {
            // Keep the window's spend (old limit - old remaining, >= 0), whatever the new limit.
            remaining -= int256(uint256(_limits[agent][token].limit)) - w.remaining;
        }
        // Downcasts: |remaining| <= max(limit, spend) <= type(int96).max (every limit is);
        // index < 2^32 while block.timestamp is (see Window).
        _windows[agent][token] =
            Window({remaining: int96(remaining), cap: cap, windowIndex: uint32(current), period: period});
        _limits[agent][token] = Limits({limit: limit, floatCap: floatCap});
        emit RuleSet(agent, token, limit, cap, period, floatCap);
    }

    /// @notice Allows or forbids swaps through `router`. Owner only. Emits RouterSet.
    /// @param router A UniswapV2 Router02-compatible router (not address(0)).
    /// @param allowed True to allow.
    function setRouter(address router, bool allowed) external onlyOwner {
        if (router == address(0)) revert ZeroAddress();
        if (!allowed) {
            if (_firstRouter == router) _firstRouter = address(0);
            _moreRouters[router] = false;
        } else if (!_isRouterAllowed(router)) {
            if (_firstRouter == address(0)) _firstRouter = router;
            else _moreRouters[router] = true;
        }
        emit RouterSet(router, allowed);
    }

    /// @notice Pauses or resumes the whole wallet: while paused no agent acts and no request
    ///         executes; the owner can still configure, reject and withdraw. Owner only.
    ///         Emits WalletPauseSet.
    /// @param paused_ True to pause.
    function setPaused(bool paused_) external onlyOwner {
        paused = paused_;
        emit WalletPauseSet(paused_);
    }

    /// @notice Sets the lifetime of requests proposed from now on (existing ones keep their
    ///         expiry). Owner only. Emits RequestTtlSet.
    /// @param ttl Seconds, 1..MAX_REQUEST_TTL.
    function setRequestTtl(uint64 ttl) external onlyOwner {
        if (ttl == 0 || ttl > MAX_REQUEST_TTL) revert InvalidRequestTtl(ttl);
        requestTtl = ttl;
        emit RequestTtlSet(ttl);
    }

    /// @notice Sends `amount` of `token` (address(0): CRO) to `to`. Owner only; works while paused.
    ///         Emits Withdrawn.
    /// @param token ERC-20 address, or address(0) for native CRO.
    /// @param to Recipient (not address(0)).
    /// @param amount Atomic units, > 0.
    function withdraw(address token, address to, uint256 amount) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        SafeTransfer.safeTransferAny(token, to, amount);
        emit Withdrawn(token, to, amount);
    }

    /// @notice Approves request `requestId` for its full amount and executes it now, once.
    /// @dev Owner only; the request must be Pending and block.timestamp < expiresAt, its agent
    ///      active and unpaused, the wallet unpaused. Does not count against the agent's window.
    ///      Emits RequestExecuted.
    /// @param requestId The request.
    function approve(uint256 requestId) external onlyOwner nonReentrant {
        Request storage req = _existingRequest(requestId);
        _checkPending(requestId, req);
        _execute(requestId, req, req.amount);
    }

    /// @notice Approves request `requestId` for an edited `amount` (<= requested) and executes that
    ///         amount now, once. The rest of the request is void.
    /// @dev As approve; reverts ApprovedAboveRequested above the requested amount, ZeroAmount at 0.
    /// @param requestId The request.
    /// @param amount Atomic units to pay, 0 < amount <= requested.
    function approveAmount(uint256 requestId, uint256 amount) external onlyOwner nonReentrant {
        Request storage req = _existingRequest(requestId);
        _checkPending(requestId, req);
        uint256 requested = req.amount;
        if (amount > requested) revert ApprovedAboveRequested(requestId, requested, amount);
        _execute(requestId, req, amount);
    }

    /// @notice Rejects Pending request `requestId` (before its expiry; afterwards use expire).
    ///         Owner only. Emits RequestRejected.
    /// @param requestId The request.
    function reject(uint256 requestId) external onlyOwner {
        Request storage req = _existingRequest(requestId);
        _checkPending(requestId, req);
        req.status = RequestStatus.Rejected;
        emit RequestRejected(requestId, req.agent);
    }

    /// @notice Marks a Pending request Expired once block.timestamp >= its expiresAt. Anyone may
    ///         call (the keeper's job); it only records what time already decided.
    ///         Emits RequestExpired.
    /// @param requestId The request.
    function expire(uint256 requestId) external {
        Request storage req = _existingRequest(requestId);
        RequestStatus status = req.status;
        if (status != RequestStatus.Pending) revert RequestNotPending(requestId, status);
        uint256 expiresAt = req.expiresAt;
        if (block.timestamp < expiresAt) revert RequestNotExpired(requestId, expiresAt);
        req.status = RequestStatus.Expired;
        emit RequestExpired(requestId, req.agent);
    }

    /// @notice Offers ownership to `newOwner`, who takes it with acceptOwnership (two steps, so a
    ///         typo cannot lose the wallet). Owner only; address(0) withdraws a pending offer.
    ///         Emits OwnershipTransferStarted.
    /// @param newOwner The proposed owner.
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice Completes a transfer: the pending owner becomes the owner. Reverts NotOwner(caller)
    ///         for anyone else. Emits OwnershipTransferred.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner || msg.sender == address(0)) revert NotOwner(msg.sender);
        address previous = owner;
        owner = msg.sender;
        pendingOwner = address(0);
        emit OwnershipTransferred(previous, msg.sender);
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @notice Whether `agent` is an active agent, and whether it is paused (false when inactive).
    function agentInfo(address agent) external view returns (bool active, bool isPaused) {
        Agent memory a = _agents[agent];
        return (a.active, a.paused);
    }

    /// @notice The nonce `agent`'s next signed intent must carry (0, 1, 2, ...).
    function nonces(address agent) external view returns (uint256) {
        return _agents[agent].nonce;
    }

    /// @notice `agent`'s rule for `token` (all zero: no rule, nothing may be spent).
    function rule(address agent, address token)
        external
        view
        returns (uint96 limit, uint96 cap, uint32 period, uint96 floatCap)
    {
        Window memory w = _windows[agent][token];
        Limits memory l = _limits[agent][token];
        return (l.limit, w.cap, w.period, l.floatCap);
    }

    /// @notice What `agent` spent of `token` in the current window, which window that is
    ///         (block.timestamp / period) and when it ends ((index + 1) * period): the next window
    ///         starts at windowEndsAt with nothing spent. All zero when there is no rule.
    function spentInWindow(address agent, address token)
        external
        view
        returns (uint256 spent, uint256 windowIndex, uint256 windowEndsAt)
    {
        Window memory w = _windows[agent][token];
        int256 remaining;
        (remaining, windowIndex) = _current(w, agent, token);
        spent = uint256(int256(uint256(_limits[agent][token].limit)) - remaining); // >= 0: see Window
        windowEndsAt = w.period == 0 ? 0 : (windowIndex + 1) * w.period;
    }

    /// @notice The most `agent` can spend of `token` in one action right now:
    ///         min(limit - spent in the current window, cap), 0 if the spend reached the limit.
    ///         Ignores pause flags and the wallet's balance.
    function available(address agent, address token) external view returns (uint256) {
        Window memory w = _windows[agent][token];
        (int256 remaining,) = _current(w, agent, token);
        if (remaining <= 0) return 0;
        return uint256(remaining) < w.cap ? uint256(remaining) : w.cap;
    }

    /// @notice Whether agents may swap through `router` (address(0): never).
    function isRouterAllowed(address router) external view returns (bool) {
        return _isRouterAllowed(router);
    }

    /// @notice Request `requestId` (status None and zero fields if there is none).
    function request(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    /// @dev The one gate of every agent path (invariant 4): wallet unpaused, agent active and
    ///      unpaused. Returns the agent's nonce (for the signed paths).
    function _requireActiveAgent(address agent) private view returns (uint256 nonce) {
        if (paused) revert WalletIsPaused();
        Agent storage a = _agents[agent];
        if (!a.active) revert NotAgent(agent);
        if (a.paused) revert AgentIsPaused(agent);
        return a.nonce;
    }

    /// @dev The allowlist: _firstRouter (slot 0) or _moreRouters. address(0) is never a router
    ///      (an empty _firstRouter is address(0)).
    function _isRouterAllowed(address router) private view returns (bool) {
        return router != address(0) && (router == _firstRouter || _moreRouters[router]);
    }

    /// @dev Checks a signed intent (deadline, then signature against `nonce`) and consumes the
    ///      nonce. ECDSA.recover returns address(0) for malformed signatures; `agent` is active, so
    ///      never address(0), and the comparison rejects them.
    function _useSignature(address agent, uint256 nonce, bytes32 structHash, uint256 deadline, bytes calldata sig)
        private
    {
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        if (ECDSA.recover(_hashTypedData(structHash), sig) != agent) revert InvalidSignature();
        _agents[agent].nonce = uint64(nonce) + 1; // exact (nonce is stored in 64 bits); + 1 is checked
        emit NonceUsed(agent, nonce);
    }

    /// @dev A payment inside the rule: the common body of pay and payWithSig.
    function _pay(address agent, address token, address to, uint256 amount, bytes32 ref) private {
        if (to == address(0)) revert ZeroAddress();
        (uint256 remaining, uint256 index) = _spend(agent, token, amount);
        SafeTransfer.safeTransferAny(token, to, amount);
        emit Paid(agent, token, to, amount, ref, remaining, index);
    }

    /// @dev The one choke point of agent spending (invariant 1), used by pay, payWithSig, swap and
    ///      topUpFloat: amount > 0, amount <= cap, window roll-over, amount <= what remains, write.
    ///      Returns what remains of the window after `amount`, and the window index. Inside a
    ///      window it reads and writes one slot (Window); the limit is read only when a window
    ///      starts, or to report LimitExceeded.
    function _spend(address agent, address token, uint256 amount) private returns (uint256, uint256) {
        if (amount == 0) revert ZeroAmount();
        Window storage ws = _windows[agent][token];
        Window memory w = ws;
        // Before any window arithmetic: a token without a rule has cap 0 (and period 0).
        if (amount > w.cap) revert CapExceeded(agent, token, w.cap, amount);
        (int256 remaining, uint256 index) = _current(w, agent, token);
        // amount <= cap <= limit <= type(int96).max: the cast is exact.
        if (int256(amount) > remaining) _revertLimitExceeded(agent, token, remaining, amount);
        remaining -= int256(amount); // >= 0 now
        // Downcasts: 0 <= remaining <= limit <= type(int96).max; index < 2^32 (see Window).
        ws.remaining = int96(remaining);
        ws.windowIndex = uint32(index);
        return (uint256(remaining), index);
    }

    /// @dev The window rule, lazily rolled over: window index = block.timestamp / period; the
    ///      stored remainder counts only if it was written in that same window, otherwise the
    ///      window starts with the whole limit. (0, 0) without a rule.
    function _current(Window memory w, address agent, address token) private view returns (int256, uint256) {
        uint256 period = w.period;
        if (period == 0) return (0, 0);
        uint256 index = block.timestamp / period;
        int256 remaining = w.windowIndex == index ? int256(w.remaining) : int256(uint256(_limits[agent][token].limit));
        return (remaining, index);
    }

    /// @dev LimitExceeded with the numbers an owner reads: the limit and the window's spend.
    function _revertLimitExceeded(address agent, address token, int256 remaining, uint256 amount) private view {
        uint256 limit = _limits[agent][token].limit;
        revert LimitExceeded(agent, token, limit, uint256(int256(limit) - remaining), amount);
    }

    /// @dev The one choke point of the approval queue: stores a Pending request and emits
    ///      RequestProposed. Used by propose and proposeWithSig.
    function _enqueue(address agent, address token, address to, uint256 amount, bytes32 ref)
        private
        returns (uint256 requestId)
    {
        if (to == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint96).max) revert AmountTooLarge(amount);
        requestId = ++requestCount;
        // block.timestamp + ttl (<= one year) fits 40 bits for the next 34,000 years.
        uint40 expiresAt = uint40(block.timestamp + requestTtl);
        _requests[requestId] = Request({
            agent: agent,
            amount: uint96(amount),
            token: token,
            approvedAmount: 0,
            to: to,
            createdAt: uint40(block.timestamp),
            expiresAt: expiresAt,
            status: RequestStatus.Pending,
            ref: ref
        });
        emit RequestProposed(requestId, agent, token, to, amount, ref, expiresAt);
    }

    /// @dev Executes an approved request (invariant 2): the caller checked owner, Pending, expiry
    ///      and amount <= requested. Agent and wallet must still be allowed to move funds.
    function _execute(uint256 requestId, Request storage req, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        address agent = req.agent;
        _requireActiveAgent(agent);
        req.status = RequestStatus.Executed;
        req.approvedAmount = uint96(amount); // amount <= requested < 2^96
        address token = req.token;
        address to = req.to;
        SafeTransfer.safeTransferAny(token, to, amount);
        emit RequestExecuted(requestId, agent, token, to, req.amount, amount);
    }

    /// @dev The router call of swap: approve exactly amountIn, swap to this wallet, approval back
    ///      to 0, output measured by balance difference and held to minOut (invariant 5). The
    ///      router's returned amounts are not decoded: the measured balance is what counts. A router
    ///      revert (e.g. its own minimum-output check) bubbles up unchanged.
    function _swapExactIn(address router, uint256 amountIn, uint256 minOut, address[] calldata path, uint256 deadline)
        private
        returns (uint256 amountOut)
    {
        address tokenIn = path[0];
        address tokenOut = path[path.length - 1];
        uint256 before = SafeTransfer.balanceOf(tokenOut, address(this));
        SafeTransfer.safeApprove(tokenIn, router, amountIn);
        _callRouter(router, abi.encodeCall(
            IUniswapV2Router02.swapExactTokensForTokens, (amountIn, minOut, path, address(this), deadline)
        ));
        // A UniswapV2 router pulls exactly amountIn, leaving 0: reset only if it did not.
        if (SafeTransfer.allowance(tokenIn, address(this), router) != 0) SafeTransfer.safeApprove(tokenIn, router, 0);
        amountOut = SafeTransfer.balanceOf(tokenOut, address(this)) - before;
        if (amountOut < minOut) revert InsufficientOutput(amountOut, minOut);
    }

    /// @dev Calls the router without copying its answer; a revert bubbles up with its data. A
    ///      success must answer at least the 64 bytes of an ABI-encoded uint256[] (offset, length),
    ///      so an address without code or a contract that merely accepts the call is refused.
    function _callRouter(address router, bytes memory data) private {
        bool answered;
        assembly ("memory-safe") {
            if iszero(call(gas(), router, 0, add(data, 0x20), mload(data), 0, 0)) {
                let p := mload(0x40)
                returndatacopy(p, 0, returndatasize())
                revert(p, returndatasize())
            }
            answered := gt(returndatasize(), 0x3f)
        }
        if (!answered) revert NotARouter(router);
    }

    function _existingRequest(uint256 requestId) private view returns (Request storage req) {
        req = _requests[requestId];
        if (req.status == RequestStatus.None) revert UnknownRequest(requestId);
    }

    /// @dev Pending and not yet expired: the only state in which approve, reject and cancel act.
    function _checkPending(uint256 requestId, Request storage req) private view {
        RequestStatus status = req.status;
        if (status != RequestStatus.Pending) revert RequestNotPending(requestId, status);
        if (block.timestamp >= req.expiresAt) revert RequestHasExpired(requestId, req.expiresAt);
    }
}
