"""`ape run deploy [--network cronos:testnet:node]` — deploy Paygent, or verify an existing deployment.

No network option: the local chain (start it with `make chain`; `make demo` does everything).
Other networks: an ape account named by PAYGENT_DEPLOYER, passphrase from APE_ACCOUNTS_<alias>_PASSPHRASE.
The logic lives in paygent/deployment.py; this file is only the command.
"""

import sys

from ape import accounts

from paygent.deployment import DeployError, DeploySettings, deploy, network_from_ape, resolve_deployer, summary
from paygent.manifest import ManifestError
from paygent.networks import UnknownNetworkError


def main():
    try:
        settings = DeploySettings()
        network = network_from_ape()
        deployer = resolve_deployer(network, settings.deployer)
        result = deploy(
            network,
            deployer,
            directory=settings.deployments_dir,
            accounts=accounts.test_accounts if network.is_local else None,
        )
    except (DeployError, ManifestError, UnknownNetworkError, ValueError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        sys.exit(1)
    print(summary(result))
