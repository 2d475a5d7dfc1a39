"""Adapters that let agent frameworks use swarmnode as their memory (optional extras)."""
