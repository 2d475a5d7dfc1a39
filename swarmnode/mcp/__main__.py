"""`python -m swarmnode.mcp`: the same server as `swarmnode mcp`."""

import sys

from swarmnode.mcp.server import main

sys.exit(main())
