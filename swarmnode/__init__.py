"""swarmnode: a decentralised memory for swarms of AI agents."""

__version__ = "0.1.0"
