// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice How a service charges: per call (one unit = one call at `price`), metered (any positive
///         number of units at `price` each), or a subscription (`price` per `period` seconds).
enum PricingModel {
    PerCall,
    Metered,
    Subscription
}

/// @notice One registry entry. Field order is the storage packing (see ServiceRegistry):
///         slot +0 payTo | price, slot +1 token | model | active | period, slot +2 provider.
struct Service {
    address payTo;
    uint96 price;
    address token;
    PricingModel model;
    bool active;
    uint64 period;
    address provider;
    string name;
    string endpoint;
    string metadataURI;
}

/// @title IServiceRegistry
/// @notice What payers and the PaymentRouter read from the ServiceRegistry.
interface IServiceRegistry {
    /// @notice The full entry of service `serviceId`; reverts `UnknownService(serviceId)` if there is none.
    function getService(uint256 serviceId) external view returns (Service memory);

    /// @notice The terms a payment must meet, from two storage slots; reverts `UnknownService(serviceId)`
    ///         if there is no such service. `token == address(0)` means native CRO.
    function paymentTerms(uint256 serviceId)
        external
        view
        returns (bool active, PricingModel model, address token, uint96 price, uint64 period, address payTo);

    /// @notice Number of services ever registered; ids are 1..serviceCount().
    function serviceCount() external view returns (uint256);
}
