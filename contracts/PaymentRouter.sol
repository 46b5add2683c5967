// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC3009} from "./interfaces/IERC3009.sol";
import {IServiceRegistry, PricingModel} from "./interfaces/IServiceRegistry.sol";
import {SafeTransfer, TransferFailed} from "./lib/SafeTransfer.sol";

/// @title PaymentRouter
/// @notice Pays services registered in the ServiceRegistry, directly (`pay`, `subscribe`) or by
///         settling an x402 EIP-3009 authorization made out to this router (`settleAuthorization`).
///         Guarantees:
///         - a payment goes only to an active service, in its registered token, to its registered
///           payTo, for exactly its registered price times the units (read from the registry in
///           the same transaction);
///         - a direct payment (`pay`, `subscribe`) also meets the payer's own terms: the token the
///           payer named, at most the payer's `maxAmount` (and for a subscription the period the
///           payer named), so a provider who changes its entry while a payment is pending cannot
///           charge more, in another token, or for a shorter period than the payer agreed to;
///         - every payment of `amount` moves exactly `amount - fee` to payTo and `fee` to the fee
///           recipient, with fee = floor(amount * feeBps / 10_000) and feeBps <= MAX_FEE_BPS (fixed
///           at deployment); the router keeps nothing of a payment (tokens sent to it directly,
///           outside a payment, stay there: it has no sweep function);
///         - an authorization settles only through the token's `receiveWithAuthorization` (which
///           only this router, the payee, can submit, so it cannot be front-run into a plain
///           transfer), and a (signer, nonce) moves money at most once: the token marks it used;
///           the router has no other way to record a payment without pulling the funds;
///         - each payment emits one `PaymentMade` with everything an indexer needs, and a
///           subscription payment also `SubscriptionExtended` with the new expiry.
/// @dev Invariants (DESIGN.md 6, 7, 8, 10):
///      - paymentCount == number of PaymentMade events; payment ids are 1, 2, 3, ...;
///      - for every service: serviceStats.volume == sum of its PaymentMade amounts, payments ==
///        their number, lastPaidAt == the block time of the last one;
///      - subscriptionExpiry(s, who) == expiresAt of the last SubscriptionExtended(s, who);
///      - feeBps <= MAX_FEE_BPS <= 10_000;
///      - state changes and events happen before any token call (checks-effects-interactions),
///        and pay / subscribe / settleAuthorization hold a lock, so a hostile registry-supplied
///        token can neither re-enter nor make the events disagree with the state.
///      Native CRO (token == address(0)) is not routed: such services are paid directly.
///      - an authorization settles only for the service its signed nonce names (top 64 bits), so
///        whoever submits it cannot redirect it to another service (see settleAuthorization).
contract PaymentRouter {
    // ---------------------------------------------------------------------------------------------
    // Errors (TransferFailed(token, to, amount) comes from SafeTransfer.sol)

    /// @notice The service exists but its provider deactivated it.
    error ServiceInactive(uint256 serviceId);
    /// @notice No such service (the registry's error, bubbled up unchanged).
    error UnknownService(uint256 serviceId);
    /// @notice `pay` on a Subscription service, or `subscribe` on a PerCall / Metered one.
    error WrongPricingModel(uint256 serviceId, PricingModel model);
    /// @notice Units (or periods) out of range: 0; not 1 for PerCall; above 2^32 - 1 periods for a
    ///         Subscription; above 2^128 - 1 otherwise.
    error InvalidUnits(uint256 units);
    /// @notice An authorization's value is not a price the service accepts: exactly `price` for
    ///         PerCall, a positive multiple of `price` otherwise. `expected` is the price for
    ///         PerCall, else the largest multiple of price not above `actual` (at least price).
    error AmountMismatch(uint256 expected, uint256 actual);
    /// @notice A fee above the cap fixed at deployment (or a cap above 100%).
    error FeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    /// @notice Caller is not the owner (or, for acceptOwnership, not the pending owner).
    error NotOwner(address caller);
    /// @notice address(0) where an account is needed.
    error ZeroAddress();
    /// @notice A token call re-entered pay / subscribe / settleAuthorization.
    error Reentrancy();
    /// @notice The service's all-time volume would no longer fit its uint128 counter.
    error VolumeOverflow(uint256 serviceId, uint256 volume, uint256 amount);
    /// @notice The new subscription expiry would not fit in uint64.
    error ExpiryOverflow(uint256 serviceId, uint256 expiresAt);
    /// @notice The service's registered token is `registered`, not the `expected` one the payer named.
    error WrongToken(uint256 serviceId, address expected, address registered);
    /// @notice The payment would cost `amount`, above the payer's `maxAmount`.
    error AmountAboveMax(uint256 amount, uint256 maxAmount);
    /// @notice The subscription's registered period is `registered` seconds, not the `expected` one
    ///         the payer named.
    error WrongPeriod(uint256 serviceId, uint64 expected, uint64 registered);
    /// @notice An authorization's nonce does not commit to the service it is settled for: its top
    ///         64 bits must equal serviceId (see settleAuthorization).
    error NonceNotBoundToService(uint256 serviceId, bytes32 nonce);

    // ---------------------------------------------------------------------------------------------
    // Events

    /// @notice `payer` paid `amount` of `token` for `units` of service `serviceId`: `amount - fee`
    ///         went to `payTo`, `fee` to the fee recipient. `ref` is the payer's reference (e.g. a
    ///         hash of the request paid for); `kind` says which entry point took the payment.
    event PaymentMade(
        uint256 indexed paymentId,
        uint256 indexed serviceId,
        address indexed payer,
        address token,
        address payTo,
        uint256 amount,
        uint256 fee,
        uint256 units,
        bytes32 ref,
        PaymentKind kind
    );
    /// @notice `subscriber`'s subscription to `serviceId` now runs until `expiresAt` (paid by `paymentId`).
    event SubscriptionExtended(
        uint256 indexed serviceId, address indexed subscriber, uint64 expiresAt, uint256 paymentId
    );
    /// @notice The fee rate changed (also emitted by the constructor, from 0).
    event FeeChanged(uint16 oldFeeBps, uint16 newFeeBps);
    /// @notice The fee recipient changed (also emitted by the constructor, from address(0)).
    event FeeRecipientChanged(address oldRecipient, address newRecipient);
    /// @notice The owner offered ownership to `newOwner` (address(0): offer withdrawn).
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    /// @notice Ownership moved (also emitted by the constructor, from address(0)).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // ---------------------------------------------------------------------------------------------
    // Types

    /// @notice Which entry point took a payment.
    enum PaymentKind {
        Direct, // pay()
        Authorization, // settleAuthorization()
        Subscription // subscribe()
    }

    /// @dev Storage slot 0: everything a payment reads and writes besides its service's stats.
    struct Config {
        address feeRecipient;
        uint16 feeBps;
        uint72 paymentCount;
        bool locked;
    }

    /// @dev What the registry says a payment must meet, and (once recorded) where its fee goes.
    ///      Memory only.
    struct Terms {
        PricingModel model;
        address token;
        uint96 price;
        uint64 period;
        address payTo;
        uint256 fee;
        address feeTo;
    }

    // ---------------------------------------------------------------------------------------------
    // Storage
    //   slot 0  feeRecipient (20 bytes) | feeBps (uint16, 2) | paymentCount (uint72, 9) | locked (1)
    //           -> a payment costs one cold SLOAD + one SSTORE here (the owner, only read by admin
    //              functions, lives in its own slot so the hot path never loads it)
    //   slot 1  owner (20)
    //   slot 2  pendingOwner (20)
    //   slot 3  _stats: serviceId => one word, packed by hand (a struct assignment would cost three
    //           SSTOREs): volume (uint128, bits 0-127) | payments (uint64, bits 128-191) |
    //           lastPaidAt (uint64, bits 192-255)
    //   slot 4  _expiry: serviceId => subscriber => expiresAt (uint64)
    //   code    REGISTRY, MAX_FEE_BPS (immutable)

    uint256 private constant BPS = 10_000;

    /// @notice The ServiceRegistry whose entries this router pays.
    IServiceRegistry public immutable REGISTRY;
    /// @notice The highest fee rate the owner can ever set, in basis points.
    uint16 public immutable MAX_FEE_BPS;

    Config private _config;
    /// @notice Who may change the fee settings and the owner.
    address public owner;
    /// @notice Who may call acceptOwnership (address(0): nobody).
    address public pendingOwner;
    mapping(uint256 serviceId => uint256 packedStats) private _stats;
    mapping(uint256 serviceId => mapping(address subscriber => uint64 expiresAt)) private _expiry;

    // ---------------------------------------------------------------------------------------------
    // Constructor

    /// @param registry The ServiceRegistry (immutable).
    /// @param owner_ The first owner.
    /// @param feeRecipient_ Who receives the fees.
    /// @param feeBps_ Fee rate in basis points, <= maxFeeBps.
    /// @param maxFeeBps Cap on the fee rate for the router's whole life, <= 10_000.
    constructor(address registry, address owner_, address feeRecipient_, uint16 feeBps_, uint16 maxFeeBps) {
        if (registry == address(0) || owner_ == address(0) || feeRecipient_ == address(0)) revert ZeroAddress();
        if (maxFeeBps > BPS) revert FeeTooHigh(maxFeeBps, uint16(BPS));
        if (feeBps_ > maxFeeBps) revert FeeTooHigh(feeBps_, maxFeeBps);
        REGISTRY = IServiceRegistry(registry);
        MAX_FEE_BPS = maxFeeBps;
        owner = owner_;
        _config = Config({feeRecipient: feeRecipient_, feeBps: feeBps_, paymentCount: 0, locked: false});
        emit OwnershipTransferred(address(0), owner_);
        emit FeeRecipientChanged(address(0), feeRecipient_);
        emit FeeChanged(0, feeBps_);
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: payments

    /// @notice Pays `units` of a PerCall (units == 1) or Metered (units >= 1) service: pulls
    ///         price * units from msg.sender (who must have approved this router for it) straight
    ///         to the service's payTo (amount - fee) and the fee recipient (fee, skipped when 0).
    ///         `token` and `maxAmount` are the payer's terms, checked against the registry entry
    ///         read in this transaction (WrongToken, AmountAboveMax): an approval larger than one
    ///         payment cannot be drained by a price change made while the payment is pending.
    /// @param serviceId The registry id; the service must be active.
    /// @param units Calls or metered units.
    /// @param token The token the payer expects to pay in: must be the service's registered token.
    /// @param maxAmount The most the payer agrees to pay (fee included); price * units must not exceed it.
    /// @param ref The payer's reference, echoed in PaymentMade.
    /// @return paymentId The new payment id.
    function pay(uint256 serviceId, uint256 units, address token, uint256 maxAmount, bytes32 ref)
        external
        returns (uint256 paymentId)
    {
        Terms memory t = _terms(serviceId);
        if (t.model == PricingModel.Subscription) revert WrongPricingModel(serviceId, t.model);
        _checkUnits(t.model, units);
        uint256 amount = uint256(t.price) * units; // < 2^224: price < 2^96, units < 2^128
        _checkPayerTerms(serviceId, t, token, amount, maxAmount);
        paymentId = _record(serviceId, t, msg.sender, amount, units, ref, PaymentKind.Direct);
        _pull(t, msg.sender, amount);
        _config.locked = false;
    }

    /// @notice Buys `periods` periods of a Subscription service for msg.sender: pulls
    ///         price * periods like `pay` and extends msg.sender's expiry to
    ///         max(now, current expiry) + period * periods. `token`, `maxAmount` and `period` are
    ///         the payer's terms (WrongToken, WrongPeriod, AmountAboveMax), as in `pay`.
    /// @param serviceId The registry id; the service must be an active Subscription.
    /// @param periods How many periods (1 .. 2^32 - 1).
    /// @param token The token the payer expects to pay in: must be the service's registered token.
    /// @param maxAmount The most the payer agrees to pay (fee included) for all `periods`.
    /// @param period The period length (seconds) the payer expects: must be the registered one.
    /// @param ref The payer's reference, echoed in PaymentMade.
    /// @return paymentId The new payment id.
    /// @return expiresAt The subscription's new expiry (unix seconds).
    function subscribe(uint256 serviceId, uint32 periods, address token, uint256 maxAmount, uint64 period, bytes32 ref)
        external
        returns (uint256 paymentId, uint64 expiresAt)
    {
        Terms memory t = _terms(serviceId);
        if (t.model != PricingModel.Subscription) revert WrongPricingModel(serviceId, t.model);
        _checkUnits(t.model, periods);
        if (t.period != period) revert WrongPeriod(serviceId, period, t.period);
        uint256 amount = uint256(t.price) * periods;
        _checkPayerTerms(serviceId, t, token, amount, maxAmount);
        paymentId = _record(serviceId, t, msg.sender, amount, periods, ref, PaymentKind.Subscription);
        expiresAt = _extend(serviceId, msg.sender, t.period, periods, paymentId);
        _pull(t, msg.sender, amount);
        _config.locked = false;
    }

    /// @notice Settles an x402 payment: an EIP-3009 ReceiveWithAuthorization signed by `from`,
    ///         made out to this router, for service `serviceId`. Anyone may relay it. The router
    ///         calls token.receiveWithAuthorization (never transferWithAuthorization) and forwards
    ///         `value - fee` to payTo and `fee` to the fee recipient (skipped when 0).
    ///         PerCall: value must equal the price (1 unit). Metered / Subscription: value must be a
    ///         positive multiple of the price (value / price units, or periods; a Subscription
    ///         extends `from`'s expiry). The token enforces the signature, the validity window
    ///         (validAfter < now < validBefore) and single use of (from, nonce), reverting with its
    ///         own messages (e.g. "FiatTokenV2: authorization is used or canceled").
    ///         The authorization names its service through its nonce: the top 64 bits of `nonce`
    ///         must equal `serviceId` (the low 192 bits stay random). The signature covers the
    ///         nonce, so nobody who sees the authorization (a relayer, a mempool watcher) can settle
    ///         it for another service, e.g. a look-alike with the same token and price.
    /// @dev `ref` is not signed: it is the facilitator's label (the request hash) for indexers.
    /// @param serviceId The registry id; the service must be active.
    /// @param from The signer (the payer recorded in PaymentMade).
    /// @param value Atomic token units authorized.
    /// @param validAfter Authorization not valid at or before this time.
    /// @param validBefore Authorization not valid at or after this time.
    /// @param nonce The signer's unique 32-byte nonce: serviceId << 192 | 192 random bits.
    /// @param v Signature recovery id.
    /// @param r Signature r.
    /// @param s Signature s.
    /// @param ref Reference echoed in PaymentMade (the facilitator passes the request hash).
    /// @return paymentId The new payment id.
    function settleAuthorization(
        uint256 serviceId,
        address from,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s,
        bytes32 ref
    ) external returns (uint256 paymentId) {
        // The service binding: top 64 bits of the signed nonce (a shift, so no masking is needed).
        if (uint256(nonce) >> 192 != serviceId) revert NonceNotBoundToService(serviceId, nonce);
        Terms memory t;
        (t, paymentId) = _recordAuthorization(serviceId, from, value, ref);
        IERC3009(t.token).receiveWithAuthorization(from, address(this), value, validAfter, validBefore, nonce, v, r, s);
        SafeTransfer.safeTransfer(t.token, t.payTo, value - t.fee);
        if (t.fee != 0) SafeTransfer.safeTransfer(t.token, t.feeTo, t.fee);
        _config.locked = false;
    }

    // ---------------------------------------------------------------------------------------------
    // External writes: owner

    /// @notice Sets the fee rate (basis points of every later payment). Owner only; at most MAX_FEE_BPS.
    function setFee(uint16 newFeeBps) external {
        _onlyOwner();
        if (newFeeBps > MAX_FEE_BPS) revert FeeTooHigh(newFeeBps, MAX_FEE_BPS);
        uint16 old = _config.feeBps;
        _config.feeBps = newFeeBps;
        emit FeeChanged(old, newFeeBps);
    }

    /// @notice Sets who receives the fees of later payments. Owner only; not address(0).
    function setFeeRecipient(address newRecipient) external {
        _onlyOwner();
        if (newRecipient == address(0)) revert ZeroAddress();
        address old = _config.feeRecipient;
        _config.feeRecipient = newRecipient;
        emit FeeRecipientChanged(old, newRecipient);
    }

    /// @notice Offers ownership to `newOwner`, who takes it with acceptOwnership (two steps, so a
    ///         typo cannot lose the router). Owner only; address(0) withdraws a pending offer.
    function transferOwnership(address newOwner) external {
        _onlyOwner();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice Completes a transfer: the pending owner becomes the owner. Reverts NotOwner(caller)
    ///         for anyone else.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner || msg.sender == address(0)) revert NotOwner(msg.sender);
        address previous = owner;
        owner = msg.sender;
        pendingOwner = address(0);
        emit OwnershipTransferred(previous, msg.sender);
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @notice What paying `units` of service `serviceId` would cost now, and the fee within it.
    ///         Reverts like pay / subscribe would (UnknownService, ServiceInactive, InvalidUnits;
    ///         for a Subscription, units are periods), except that it accepts every model and
    ///         takes no payer's terms: the `amount` it returns is the `maxAmount` that pays now.
    function quote(uint256 serviceId, uint256 units) external view returns (uint256 amount, uint256 fee) {
        Terms memory t = _terms(serviceId);
        _checkUnits(t.model, units);
        amount = uint256(t.price) * units;
        fee = amount * _config.feeBps / BPS;
    }

    /// @notice When `subscriber`'s subscription to `serviceId` ends (unix seconds; 0: never subscribed).
    ///         It is active while block.timestamp < the returned time.
    function subscriptionExpiry(uint256 serviceId, address subscriber) external view returns (uint64) {
        return _expiry[serviceId][subscriber];
    }

    /// @notice All-time totals of service `serviceId` through this router: amount paid (fees
    ///         included), number of payments, and the block time of the last one (0: never paid).
    function serviceStats(uint256 serviceId) external view returns (uint128 volume, uint64 payments, uint64 lastPaidAt) {
        uint256 word = _stats[serviceId];
        return (uint128(word), uint64(word >> 128), uint64(word >> 192));
    }

    /// @notice Number of payments so far; the last payment id.
    function paymentCount() external view returns (uint256) {
        return _config.paymentCount;
    }

    /// @notice Current fee rate in basis points.
    function feeBps() external view returns (uint16) {
        return _config.feeBps;
    }

    /// @notice Who receives the fees.
    function feeRecipient() external view returns (address) {
        return _config.feeRecipient;
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    /// @dev The service's terms; bubbles the registry's UnknownService, refuses inactive services.
    function _terms(uint256 serviceId) private view returns (Terms memory t) {
        bool active;
        (active, t.model, t.token, t.price, t.period, t.payTo) = REGISTRY.paymentTerms(serviceId);
        if (!active) revert ServiceInactive(serviceId);
    }

    function _checkUnits(PricingModel model, uint256 units) private pure {
        if (
            units == 0 || (model == PricingModel.PerCall && units != 1)
                || units > (model == PricingModel.Subscription ? type(uint32).max : type(uint128).max)
        ) revert InvalidUnits(units);
    }

    /// @dev The payer's side of a direct payment: the token it named and the most it agreed to pay.
    function _checkPayerTerms(uint256 serviceId, Terms memory t, address token, uint256 amount, uint256 maxAmount)
        private
        pure
    {
        if (t.token != token) revert WrongToken(serviceId, token, t.token);
        if (amount > maxAmount) revert AmountAboveMax(amount, maxAmount);
    }

    /// @dev Units paid for by an authorization of `value` (see AmountMismatch).
    function _unitsOf(Terms memory t, uint256 value) private pure returns (uint256 units) {
        uint256 price = t.price;
        if (t.model == PricingModel.PerCall) {
            if (value != price) revert AmountMismatch(price, value);
            return 1;
        }
        units = value / price; // price > 0: the registry refuses free services
        if (units == 0) revert AmountMismatch(price, value);
        if (units * price != value) revert AmountMismatch(units * price, value);
        _checkUnits(t.model, units);
    }

    /// @dev Checks and effects of settleAuthorization (split out of it for the stack).
    function _recordAuthorization(uint256 serviceId, address from, uint256 value, bytes32 ref)
        private
        returns (Terms memory t, uint256 paymentId)
    {
        t = _terms(serviceId);
        uint256 units = _unitsOf(t, value);
        if (t.token == address(0)) revert TransferFailed(address(0), address(this), value); // no EIP-3009 on CRO
        paymentId = _record(serviceId, t, from, value, units, ref, PaymentKind.Authorization);
        if (t.model == PricingModel.Subscription) _extend(serviceId, from, t.period, units, paymentId);
    }

    /// @dev The one choke point of every payment: takes the lock, numbers the payment, computes
    ///      the fee (into t.fee, t.feeTo), adds to the service's totals and emits PaymentMade, all
    ///      before any token call. The caller moves the funds and then clears the lock.
    function _record(
        uint256 serviceId,
        Terms memory t,
        address payer,
        uint256 amount,
        uint256 units,
        bytes32 ref,
        PaymentKind kind
    ) private returns (uint256 paymentId) {
        Config memory c = _config; // the one cold slot of the router's own state
        if (c.locked) revert Reentrancy();
        uint72 next = c.paymentCount + 1; // checked in uint72
        _config = Config({feeRecipient: c.feeRecipient, feeBps: c.feeBps, paymentCount: next, locked: true});
        paymentId = next;
        uint256 fee = amount * c.feeBps / BPS; // <= amount * MAX_FEE_BPS / 10_000 <= amount
        t.fee = fee;
        t.feeTo = c.feeRecipient;

        _count(serviceId, amount);
        emit PaymentMade(paymentId, serviceId, payer, t.token, t.payTo, amount, fee, units, ref, kind);
    }

    /// @dev Adds one payment of `amount` to the service's totals (one SLOAD, one SSTORE).
    function _count(uint256 serviceId, uint256 amount) private {
        uint256 word = _stats[serviceId];
        uint256 volume = uint256(uint128(word)) + amount;
        if (volume > type(uint128).max) revert VolumeOverflow(serviceId, uint128(word), amount);
        uint64 payments = uint64(word >> 128) + 1; // checked in uint64
        // block.timestamp < 2^64 for the next 500 billion years: the shift keeps all of it.
        _stats[serviceId] = volume | (uint256(payments) << 128) | (block.timestamp << 192);
    }

    /// @dev Extends `subscriber`'s expiry by period * periods from max(now, current expiry).
    function _extend(uint256 serviceId, address subscriber, uint64 period, uint256 periods, uint256 paymentId)
        private
        returns (uint64 expiresAt)
    {
        uint256 current = _expiry[serviceId][subscriber];
        uint256 start = current > block.timestamp ? current : block.timestamp;
        uint256 end = start + uint256(period) * periods; // period < 2^64, periods < 2^32: no overflow
        if (end > type(uint64).max) revert ExpiryOverflow(serviceId, end);
        expiresAt = uint64(end);
        _expiry[serviceId][subscriber] = expiresAt;
        emit SubscriptionExtended(serviceId, subscriber, expiresAt, paymentId);
    }

    /// @dev transferFrom `payer` to payTo and, when the fee is non-zero, to the fee recipient.
    function _pull(Terms memory t, address payer, uint256 amount) private {
        SafeTransfer.safeTransferFrom(t.token, payer, t.payTo, amount - t.fee);
        if (t.fee != 0) SafeTransfer.safeTransferFrom(t.token, payer, t.feeTo, t.fee);
    }

    function _onlyOwner() private view {
        if (msg.sender != owner) revert NotOwner(msg.sender);
    }
}
