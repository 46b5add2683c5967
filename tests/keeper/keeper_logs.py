"""Hand-built decoded logs for the chain-free keeper tests (an honest fake of what the indexer decodes)."""

from keeper.store import Log

CHAIN = 338
USDC = "0x" + "c0" * 20
PROVIDER = "0x" + "22" * 20
PAYER = "0x" + "33" * 20
WALLET = "0x" + "aa" * 20
AGENT = "0x" + "11" * 20


def service_log(block, index, event="ServiceRegistered", service_id=1, price=10_000, active=True, name="oracle"):
    return Log(block, index, f"0x{block:04x}{index:060x}", "0xregistry", "registry", event, dict(
        serviceId=service_id, provider=PROVIDER, name=name, endpoint="http://x", model=0, token=USDC, price=price,
        period=0, payTo=PROVIDER, metadataURI="", active=active))


def payment_log(block, index, payment_id, service_id=1, amount=10_000, fee=100):
    return Log(block, index, f"0x{block:04x}{index:060x}", "0xrouter", "router", "PaymentMade", dict(
        paymentId=payment_id, serviceId=service_id, payer=PAYER, token=USDC, payTo=PROVIDER, amount=amount, fee=fee,
        units=1, ref="0x" + "00" * 32, kind=0))


def wallet_log(block, index, event, **args):
    return Log(block, index, f"0x{block:04x}{index:060x}", WALLET, "wallet", event, args)


def blocks_for(*numbers):
    return {n: (f"0xhash{n}", 1_000 + n) for n in numbers}
