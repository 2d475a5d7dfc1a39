"""The executors of the client operations, grouped by what they act on.

Each module's `register(service, node)` binds its executors to the operation
table's names. An executor receives a validated `Request` (arguments checked,
defaults applied) and either reads the store or proposes a write to the node
and waits until it is durable.
"""
