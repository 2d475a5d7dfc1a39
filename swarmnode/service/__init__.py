"""The service layer: the operation table, its chain of steps, and the executors.

`service/table.py` declares every operation (and is all that front ends like
the CLI import, so they start fast); `service/build.py` assembles a node's
service: the operations bound to their executors and the steps every call
goes through. The vector layer (`vectors/service.py`) adds `vsearch` and the
`embed` step; analytics (`analytics.py`) adds the `measure` step and the
`analytics` operation.
"""
