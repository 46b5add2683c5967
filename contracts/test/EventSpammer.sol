// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice TEST/BENCHMARK ONLY — never deployed outside local chains. Drives the real
/// ServiceRegistry and PaymentRouter many times per transaction, so the keeper's tests and
/// benchmark get tens of thousands of genuine registry/router events in a few blocks.
/// @dev The spammer is its own provider, payTo and payer: payments go round (minus the router fee).
interface ISpamRegistry {
    function register(string calldata name, string calldata endpoint, uint8 model, address token, uint96 price,
                      uint64 period, address payTo, string calldata metadataURI) external returns (uint256);
    function update(uint256 serviceId, string calldata name, string calldata endpoint, uint8 model, address token,
                    uint96 price, uint64 period, address payTo, string calldata metadataURI) external;
}

interface ISpamRouter {
    function pay(uint256 serviceId, uint256 units, address token, uint256 maxAmount, bytes32 ref)
        external
        returns (uint256);
}

interface ISpamToken {
    function approve(address spender, uint256 amount) external returns (bool);
}

contract EventSpammer {
    ISpamRegistry public immutable REGISTRY;
    ISpamRouter public immutable ROUTER;
    address public immutable TOKEN;
    uint256 public serviceId;

    constructor(address registry, address router, address token) {
        REGISTRY = ISpamRegistry(registry);
        ROUTER = ISpamRouter(router);
        TOKEN = token;
    }

    /// @notice Register this contract's service and let the router pull its tokens.
    function setUp(uint96 price) external {
        serviceId = REGISTRY.register("spam", "http://127.0.0.1/spam", 0, TOKEN, price, 0, address(this), "");
        ISpamToken(TOKEN).approve(address(ROUTER), type(uint256).max);
    }

    /// @notice `payments` router payments (PaymentMade each) and `updates` registry updates
    /// (ServiceUpdated each, with a changing price and name).
    function spam(uint256 payments, uint256 updates, uint96 price) external {
        uint256 id = serviceId;
        for (uint256 i = 0; i < payments; ++i) {
            ROUTER.pay(id, 1, TOKEN, type(uint256).max, bytes32(i));
        }
        for (uint256 i = 0; i < updates; ++i) {
            REGISTRY.update(id, i % 2 == 0 ? "spam-even" : "spam-odd", "http://127.0.0.1/spam", 0, TOKEN, price, 0,
                            address(this), "");
        }
    }
}
