"""Who votes: the first voters of a group, and the next membership change to make.

Pure policy, no state: the leader calls `next_change` now and then with its
configuration and its membership view (from SWIM) and proposes what it says.

Replacing a dead voter: add the new voter first, then remove the dead one.
The new voter is always a live *learner* that already holds the log (kept
ready by `standby_learners`), so promoting it makes it count towards quorums
at once, without a catch-up during which it would count but could not
acknowledge. With five voters and one dead, promote-first passes through six
voters (quorum four, five of them live: one more failure tolerated);
remove-first passes through four (quorum three, four live: also one). The
two are equal in the middle; they differ when the sequence stops halfway (the
leader crashes, the change cannot commit): promote-first leaves the group
with an extra live voter, remove-first with one voter fewer, so promote-first
never leaves the group with fewer live voters than it had. It is also the
order of hashicorp/raft-autopilot's reconcile (promotions first, then dead
server pruning).

Consul's autopilot "dead server cleanup" removes servers that are failed
(by Serf) once a replacement has joined, or periodically, but never below
`min_quorum` servers, and it promotes a new server only after it has been
healthy for `server_stabilization_time`. This policy is the same idea with
two differences: a voter counts as dead only after `voter_dead_time` (not at
the first failure report, since a restart should not churn the voters), and
a dead voter is removed only once the live voters are as many as the group
wants (an odd number up to `max_voters`, as many as the live nodes allow), so
the group prepares and promotes a replacement before it shrinks, where
Consul's `min_quorum` stops pruning at a fixed size.

Never more than one change in flight: with `pending` true (an uncommitted
change), nothing is proposed; Raft refuses a second one anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.records import ConfChange, ConfState


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member as the membership layer sees it: alive, or dead for `dead_for` seconds."""

    alive: bool
    dead_for: float = 0.0


def voter_count(members: int, max_voters: int) -> int:
    """The largest odd number of voters that is at most both numbers (an even group pays
    one more vote per commit for no extra fault tolerance); at least one."""
    count = min(members, max_voters)
    if count % 2 == 0:
        count -= 1
    return max(count, 1)


def initial_voters(members: Iterable[str], max_voters: int = 5) -> list[str]:
    """The voters of a new group: the lowest ids, an odd number of them, at most
    `max_voters`. A single node is its own voter. Every node that bootstraps must compute
    this from the same member list (e.g. wait for an expected cluster size, as Consul's
    `bootstrap_expect`), or two groups can form."""
    ordered = sorted(set(members))
    if not ordered:
        raise ValueError("a group needs at least one member")
    return ordered[: voter_count(len(ordered), max_voters)]


def next_change(
    conf: ConfState,
    members: Mapping[str, MemberView],
    pending: bool,
    config: RaftConfig,
    leader: str,
    caught_up: Collection[str] | None = None,
) -> ConfChange | None:
    """The one membership change to propose next, or None.

    `members` is the membership view (a node of the configuration missing from it counts
    as dead for ever); `leader` is the node asking, which is never demoted; `caught_up`
    names the learners whose log is close enough to the leader's to vote at once (None:
    all of them). In order of precedence:

    1. promote a live, caught-up learner while there are fewer voters than wanted (the
       largest odd number up to `max_voters` that the voters and live learners allow; a
       voter counts until it has been dead for `voter_dead_time`, so restarts cause no
       churn);
    2. while a voter is dead and no live learner exists, add a live outsider as a learner,
       so the replacement is ready before anything is removed;
    3. remove a voter dead for `voter_dead_time` once the others are as many as wanted;
    4. demote a voter beyond that number (a dead voter came back after its replacement);
    5. remove a learner dead for `voter_dead_time`;
    6. keep `standby_learners` live learners, adding live outsiders.
    """
    if pending:
        return None

    def dead_long(node: str) -> bool:
        view = members.get(node)
        return view is None or (not view.alive and view.dead_for >= config.voter_dead_time)

    def alive(node: str) -> bool:
        view = members.get(node)
        return view is not None and view.alive

    dead_voters = sorted(v for v in conf.voters if dead_long(v))
    present = sorted(v for v in conf.voters if not dead_long(v))
    live_learners = sorted(n for n in conf.learners if alive(n))
    ready = [n for n in live_learners if caught_up is None or n in caught_up]
    outsiders = sorted(n for n, view in members.items() if view.alive and n not in conf.members())
    wanted = voter_count(len(present) + len(live_learners), config.max_voters)

    if ready and len(present) < wanted:
        return ConfChange("add_voter", ready[0])
    if dead_voters and not live_learners and outsiders:
        return ConfChange("add_learner", outsiders[0])
    if dead_voters and len(present) >= wanted:
        return ConfChange("remove", dead_voters[0])
    surplus = [v for v in reversed(present) if v != leader and alive(v)]
    if len(present) > wanted and surplus:
        return ConfChange("add_learner", surplus[0])
    dead_learners = sorted(n for n in conf.learners if dead_long(n))
    if dead_learners:
        return ConfChange("remove", dead_learners[0])
    if outsiders and len(live_learners) < config.standby_learners:
        return ConfChange("add_learner", outsiders[0])
    return None
