"""The CI batch: small clusters, many seeds, every oracle; a failure names its replay command."""

from __future__ import annotations

from swarmnode.sim.run import RunSpec, run

SIZES = (3, 4, 5, 6, 7)


def specs(scenario: str, seeds: range, **kw) -> list[RunSpec]:
    return [
        RunSpec(scenario=scenario, seed=seed, nodes=SIZES[seed % len(SIZES)], **kw)
        for seed in seeds
    ]


def check(spec: RunSpec) -> None:
    result = run(spec)
    details = "\n".join(result.violations[:10])
    assert result.ok, f"{result.summary()}\n{details}\nreplay: {spec.command()}"
    assert result.history.acked(), "the workload acknowledged nothing"
