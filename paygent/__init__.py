"""Paygent shared core: networks, compiled-contract artifacts, the deployment manifest, x402 wire types.

Small on purpose: both the keeper and the agent import it; neither imports the other.
"""

__version__ = "0.1.0"
