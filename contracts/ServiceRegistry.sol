// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IServiceRegistry, PricingModel, Service} from "./interfaces/IServiceRegistry.sol";

/// @title ServiceRegistry
/// @notice Services announce who they are, what they charge and where the money goes. Guarantees:
///         - ids are 1, 2, 3, ... in registration order and never reused;
///         - only a service's provider (the account that registered it) edits, deactivates or
///           reactivates it; nobody can take it over;
///         - every stored entry is well-formed: a non-empty name, a non-zero payTo, a non-zero
///           price, and a period that fits the model (Subscription: period > 0; PerCall and
///           Metered: period == 0);
///         - every change emits one event carrying every field of the entry as it is after the
///           change, so replaying the four events in log order rebuilds what `getService` returns.
/// @dev Invariants (DESIGN.md 9 and 10):
///      - `serviceCount` only grows, by one per `register`; an id in 1..serviceCount always has an
///        entry, an id outside it never has one (`payTo != address(0)` marks an existing entry);
///      - `provider` of an entry is written once, by `register`, and equals that call's msg.sender;
///      - after any call, `getService(id)` equals the fields of the last Service* event for `id`.
///      No owner, no upgrades, no funds: the registry only stores announcements. The PaymentRouter
///      reads `paymentTerms` (two storage slots) before every payment.
contract ServiceRegistry is IServiceRegistry {
    // ---------------------------------------------------------------------------------------------
    // Errors

    /// @notice No service has id `serviceId`.
    error UnknownService(uint256 serviceId);
    /// @notice Only the service's provider may change it.
    error NotProvider(uint256 serviceId, address caller, address provider);
    /// @notice A service needs a name.
    error EmptyName();
    /// @notice Payments cannot go to address(0).
    error InvalidPayTo();
    /// @notice A service cannot be free (a zero price would make every payment check vacuous).
    error InvalidPrice();
    /// @notice Subscription needs period > 0; PerCall and Metered need period == 0.
    error InvalidPeriod(PricingModel model, uint64 period);
    /// @notice `reactivate` on a service that is active.
    error AlreadyActive(uint256 serviceId);
    /// @notice `deactivate` on a service that is inactive.
    error AlreadyInactive(uint256 serviceId);

    // ---------------------------------------------------------------------------------------------
    // Events: each carries the whole entry as it is after the change.

    /// @notice Service `serviceId` was created by `provider` (active).
    event ServiceRegistered(
        uint256 indexed serviceId,
        address indexed provider,
        string name,
        string endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string metadataURI,
        bool active
    );
    /// @notice The provider changed the service's terms or description (`active` unchanged).
    event ServiceUpdated(
        uint256 indexed serviceId,
        address indexed provider,
        string name,
        string endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string metadataURI,
        bool active
    );
    /// @notice The provider stopped the service taking payments (`active` is false).
    event ServiceDeactivated(
        uint256 indexed serviceId,
        address indexed provider,
        string name,
        string endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string metadataURI,
        bool active
    );
    /// @notice The provider let the service take payments again (`active` is true).
    event ServiceReactivated(
        uint256 indexed serviceId,
        address indexed provider,
        string name,
        string endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string metadataURI,
        bool active
    );

    // ---------------------------------------------------------------------------------------------
    // Types: PricingModel and Service come from IServiceRegistry.sol.

    // ---------------------------------------------------------------------------------------------
    // Storage
    //   slot 0  serviceCount (uint256)
    //   slot 1  _services: id => Service, the entry at keccak256(abi.encode(id, 1)) + k:
    //     +0  payTo (20 bytes) | price (uint96, 12)                                 } paymentTerms
    //     +1  token (20) | model (1) | active (1) | period (uint64, 8) | 2 free      } reads these two
    //     +2  provider (20)
    //     +3  name, +4 endpoint, +5 metadataURI (strings)

    /// @inheritdoc IServiceRegistry
    uint256 public serviceCount;
    mapping(uint256 serviceId => Service) private _services;

    // ---------------------------------------------------------------------------------------------
    // External writes

    /// @notice Registers a service owned by msg.sender (its provider), active from now.
    /// @param name Display name; must not be empty.
    /// @param endpoint Where the service is reached (URL).
    /// @param model PerCall, Metered or Subscription.
    /// @param token What it is paid in (an ERC-20; `address(0)` means native CRO, which the
    ///        PaymentRouter does not take).
    /// @param price Atomic token units per call / per metered unit / per period; must be > 0.
    /// @param period Subscription length in seconds (> 0); must be 0 for PerCall and Metered.
    /// @param payTo Who receives the payments; must not be address(0).
    /// @param metadataURI Free-form description (e.g. ipfs:// or data:).
    /// @return serviceId The new id: serviceCount() after the call.
    function register(
        string memory name,
        string memory endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string memory metadataURI
    ) external returns (uint256 serviceId) {
        _validate(name, model, price, period, payTo);
        serviceId = ++serviceCount;
        Service memory s = Service({
            payTo: payTo,
            price: price,
            token: token,
            model: model,
            active: true,
            period: period,
            provider: msg.sender,
            name: name,
            endpoint: endpoint,
            metadataURI: metadataURI
        });
        _services[serviceId] = s;
        emit ServiceRegistered(
            serviceId, s.provider, s.name, s.endpoint, s.model, s.token, s.price, s.period, s.payTo, s.metadataURI, true
        );
    }

    /// @notice Replaces every field of service `serviceId` except its provider and active flag.
    ///         Provider only; the same validation as `register`. Works on inactive services too.
    /// @dev The PaymentRouter reads the terms at payment time. A PerCall authorization for the old
    ///      price no longer matches and is refused. For Metered and Subscription services an
    ///      authorization fixes the value, not the units or the period: an update before it is
    ///      settled changes what that value buys. A direct payment names the payer's terms
    ///      (`pay` / `subscribe`: token, maxAmount, period), so an update just before it makes it
    ///      revert instead of charging the new terms.
    function update(
        uint256 serviceId,
        string memory name,
        string memory endpoint,
        PricingModel model,
        address token,
        uint96 price,
        uint64 period,
        address payTo,
        string memory metadataURI
    ) external {
        Service storage stored = _ownedBy(serviceId, msg.sender);
        _validate(name, model, price, period, payTo);
        Service memory s = Service({
            payTo: payTo,
            price: price,
            token: token,
            model: model,
            active: stored.active,
            period: period,
            provider: msg.sender,
            name: name,
            endpoint: endpoint,
            metadataURI: metadataURI
        });
        _services[serviceId] = s;
        emit ServiceUpdated(
            serviceId, s.provider, s.name, s.endpoint, s.model, s.token, s.price, s.period, s.payTo, s.metadataURI,
            s.active
        );
    }

    /// @notice Stops service `serviceId` from taking payments through the router. Provider only;
    ///         reverts `AlreadyInactive` if it is inactive.
    function deactivate(uint256 serviceId) external {
        Service storage stored = _ownedBy(serviceId, msg.sender);
        if (!stored.active) revert AlreadyInactive(serviceId);
        stored.active = false;
        Service memory s = stored;
        emit ServiceDeactivated(
            serviceId, s.provider, s.name, s.endpoint, s.model, s.token, s.price, s.period, s.payTo, s.metadataURI,
            false
        );
    }

    /// @notice Lets service `serviceId` take payments again. Provider only; reverts `AlreadyActive`
    ///         if it is active.
    function reactivate(uint256 serviceId) external {
        Service storage stored = _ownedBy(serviceId, msg.sender);
        if (stored.active) revert AlreadyActive(serviceId);
        stored.active = true;
        Service memory s = stored;
        emit ServiceReactivated(
            serviceId, s.provider, s.name, s.endpoint, s.model, s.token, s.price, s.period, s.payTo, s.metadataURI,
            true
        );
    }

    // ---------------------------------------------------------------------------------------------
    // External views

    /// @inheritdoc IServiceRegistry
    function getService(uint256 serviceId) external view returns (Service memory) {
        return _existing(serviceId);
    }

    /// @inheritdoc IServiceRegistry
    function paymentTerms(uint256 serviceId)
        external
        view
        returns (bool active, PricingModel model, address token, uint96 price, uint64 period, address payTo)
    {
        Service storage s = _services[serviceId];
        payTo = s.payTo; // slot +0, with price
        if (payTo == address(0)) revert UnknownService(serviceId);
        return (s.active, s.model, s.token, s.price, s.period, payTo); // slot +1 (+0 again, warm)
    }

    // ---------------------------------------------------------------------------------------------
    // Internal

    function _existing(uint256 serviceId) private view returns (Service storage s) {
        s = _services[serviceId];
        if (s.payTo == address(0)) revert UnknownService(serviceId);
    }

    function _ownedBy(uint256 serviceId, address caller) private view returns (Service storage s) {
        s = _existing(serviceId);
        address provider = s.provider;
        if (provider != caller) revert NotProvider(serviceId, caller, provider);
    }

    function _validate(string memory name, PricingModel model, uint96 price, uint64 period, address payTo)
        private
        pure
    {
        if (bytes(name).length == 0) revert EmptyName();
        if (payTo == address(0)) revert InvalidPayTo();
        if (price == 0) revert InvalidPrice();
        if ((model == PricingModel.Subscription) != (period > 0)) revert InvalidPeriod(model, period);
    }
}
