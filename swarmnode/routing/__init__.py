"""Requests for sharded namespaces: any node serves any request.

A node that does not hold a key's partition forwards the request to an owner
over the sealed transport (`rpc`); the `route` step of the service chain
decides where each request runs (`route`), the owner runs it through its own
executors (`remote`), and operations over a whole namespace scatter to a
covering set of owners and merge what comes back (`scatter`). A watch of a
sharded namespace subscribes at an owner for each partition it does not hold
(`relay`), which feeds it what it commits there (`feeds`).
"""
