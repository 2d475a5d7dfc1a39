"""Agents as users of the memory: registrations, tokens, identity, access and quotas.

`registrations.py` keeps what an agent registered (replicated in the reserved
namespace `_agents`), `tokens.py` makes and checks its secret, `access.py`
decides what a principal may do to a namespace, `authorise.py` is the service
chain's `authorise` step that applies it to every operation, and `quota.py`
refuses writes past an agent's quota. `ops.py` holds the client operations
(`hello`, `agent_register`, `agent_renew`, `agent_revoke`, `agent_list`).
"""
