"""`python -m keeper` runs the keeper daemon (same as `paygent keeper run`); other subcommands too."""

import sys

from keeper.cli import keeper

if __name__ == "__main__":
    keeper.main(args=sys.argv[1:] or ["run"], prog_name="python -m keeper")
