"""The `[agents]` section: who must present a token, and how long registrations live."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import check_settings, refuse, setting

MAX_LEASE_S = 365 * 24 * 3600.0


@dataclass(frozen=True)
class AgentsConfig:
    """Identity of the clients on the node's socket."""

    require_tokens: bool = setting(False)
    """Connections that have not presented a token (`hello`) may only `ping` and `hello`,
    except the administrator (see `owner_is_admin`). Off: a connection without a token acts
    as the administrator, as before agents existed."""

    owner_is_admin: bool = setting(True)
    """A connection from the user the node runs as (the socket's owner) that presents no
    token is the administrator. Turn it off when agents run as that user and must not
    escape their tokens; the administrator is then an agent with the `admin` role."""

    default_lease: float = setting(3600.0, "s", low=1, high=MAX_LEASE_S)
    """Seconds a registration lives unless renewed, when `agent_register` gives no lease.
    Every authenticated request renews a lease that is half gone."""

    max_lease: float = setting(30 * 24 * 3600.0, "s", low=1, high=MAX_LEASE_S)
    """Seconds. The longest lease a registration or renewal may ask for."""

    def __post_init__(self) -> None:
        check_settings(self, "agents")
        if self.default_lease > self.max_lease:
            raise refuse("agents", "default_lease", self.default_lease, "must be at most max_lease")
