"""`python -m swarmnode.check FILE...`: the same as `swarmnode check`."""

import sys

from swarmnode.check.cli import main

sys.exit(main(prog="python -m swarmnode.check"))
