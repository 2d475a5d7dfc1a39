"""What a chaos run leaves behind: a readable report, a JSON summary and plots.

- `report.md`: options, environment, the schedule as applied, outcome counts
  per operation, latency percentiles, time to converge, every violation, and
  for a failing run the command that reruns its schedule;
- `result.json`: the same as data;
- `latency.png`: latency of every operation over time, one panel per kind,
  coloured by outcome, with the fault windows shaded (as Jepsen draws it);
- `resources.png`: RSS and open files of every node over time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from swarmnode.chaos.history import FAIL, INFO, OK, History

if TYPE_CHECKING:
    from swarmnode.chaos.run import ChaosResult

FAULT_COLOURS = {
    "partition": "#f4a261",
    "kill": "#e76f51",
    "pause": "#9b5de5",
    "clock": "#2a9d8f",
    "disk": "#8d99ae",
    "rekey": "#e9c46a",
}
OUTCOME_COLOURS = {OK: "#1d3557", FAIL: "#e63946", INFO: "#f4a261"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def render(result: ChaosResult, history: History) -> str:
    opts = result.options
    lines = [
        f"# Chaos run, seed {opts.seed}: {'PASS' if result.ok else 'FAIL'}",
        "",
        f"{opts.nodes} nodes ({result.environment['network']}), {opts.clients} clients, "
        f"{opts.duration:g}s of faults ({', '.join(result.environment['faults']) or 'none'}), "
        f"{len(history.ops)} operations; optional operations offered: "
        f"{', '.join(result.environment['offered']) or 'none'}.",
    ]
    for note in result.environment["notes"]:
        lines.append(f"Note: {note}.")
    conv = result.converged_after
    lines += [
        "",
        f"Converged {conv:.1f}s after the faults stopped."
        if conv is not None
        else f"Did not converge within {opts.converge_timeout:g}s.",
        f"Key rotations completed: {result.key_rotations}.",
        "",
        "## Schedule",
        "",
        "| applied (s) | healed (s) | fault | note |",
        "|---|---|---|---|",
    ]
    for w in result.schedule:
        if w.applied_at is None:
            continue
        healed = f"{w.healed_at:.1f}" if w.healed_at is not None else "-"
        lines.append(f"| {w.applied_at:.1f} | {healed} | {w.describe()} | {w.note} |")
    lines += [
        "",
        "## Operations",
        "",
        "| op | ok | fail | info | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for f, per in sorted(result.counts.items()):
        if f == "all":
            continue
        lat = [op.latency * 1000 for op in history.of(f) if op.type == OK and op.latency]
        lines.append(
            f"| {f} | {per.get(OK, 0)} | {per.get(FAIL, 0)} | {per.get(INFO, 0)} | "
            f"{percentile(lat, 0.5):.1f} | {percentile(lat, 0.99):.1f} | "
            f"{max(lat, default=float('nan')):.1f} |"
        )
    errors: dict[str, int] = {}
    for op in history.ops:
        if op.error:
            code = op.error.split(":")[0]
            errors[code] = errors.get(code, 0) + 1
    if errors:
        lines += ["", "Errors by code: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))]
    if result.resources:
        lines += [
            "",
            "## Resources",
            "",
            "| node | RSS first MiB | RSS max MiB | RSS last MiB | files max |",
            "|---|---|---|---|---|",
        ]
        for node in sorted({s[1] for s in result.resources}):
            rss = [s[2] for s in result.resources if s[1] == node and s[2]]
            fds = [s[3] for s in result.resources if s[1] == node and s[3]]
            if rss:
                lines.append(
                    f"| {node} | {rss[0] / 2**20:.0f} | {max(rss) / 2**20:.0f} | "
                    f"{rss[-1] / 2**20:.0f} | {max(fds, default=0)} |"
                )
    lines += ["", "## Oracles", ""]
    for name, found in result.violations.items():
        lines.append(f"- {name}: {'ok' if not found else f'{len(found)} violations'}")
        lines.extend(f"  - {v}" for v in found[:20])
    if result.nemesis_errors:
        lines += ["", "Nemesis errors:"] + [f"- {e}" for e in result.nemesis_errors]
    if not result.ok:
        lines += ["", "Rerun this schedule:", "", f"    {opts.rerun_command()}"]
    return "\n".join(lines) + "\n"


def plot_latency(result: ChaosResult, history: History, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({op.f for op in history.ops})
    if not kinds:
        return
    fig, axes = plt.subplots(len(kinds), 1, figsize=(11, 1.6 * len(kinds) + 1), sharex=True)
    if len(kinds) == 1:
        axes = [axes]
    for ax, f in zip(axes, kinds, strict=True):
        for w in result.schedule:
            if w.applied_at is None:
                continue
            end = w.healed_at if w.healed_at is not None else result.duration
            ax.axvspan(w.applied_at, end, color=FAULT_COLOURS.get(w.fault, "#ccc"), alpha=0.3, lw=0)
        for outcome, colour in OUTCOME_COLOURS.items():
            ops = [op for op in history.of(f) if op.type == outcome and op.latency is not None]
            ax.scatter(
                [op.invoked for op in ops],
                [max(op.latency * 1000, 0.05) for op in ops],
                s=4,
                color=colour,
                label=outcome,
            )
        ax.set_yscale("log")
        ax.set_ylabel(f"{f}\nms", rotation=0, ha="right", va="center")
    handles = [
        matplotlib.patches.Patch(color=c, alpha=0.4, label=n)
        for n, c in FAULT_COLOURS.items()
        if n in result.environment["faults"]
    ]
    handles += [
        matplotlib.lines.Line2D([], [], ls="", marker="o", color=c, label=n)
        for n, c in OUTCOME_COLOURS.items()
    ]
    axes[0].legend(handles=handles, ncol=len(handles), loc="lower left", bbox_to_anchor=(0, 1.02))
    axes[-1].set_xlabel("seconds since start")
    fig.suptitle(f"latency per operation, seed {result.options.seed}", y=1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_resources(
    samples: list[tuple[float, int, int | None, int | None]],
    path: Path,
    title: str = "node resources",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples:
        return
    fig, (rss_ax, fd_ax) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for node in sorted({s[1] for s in samples}):
        pts = [s for s in samples if s[1] == node and s[2] is not None]
        rss_ax.plot([s[0] for s in pts], [s[2] / 2**20 for s in pts], lw=0.8, label=f"n{node}")
        fd_ax.plot([s[0] for s in pts], [s[3] for s in pts], lw=0.8, label=f"n{node}")
    rss_ax.set_ylabel("RSS MiB")
    fd_ax.set_ylabel("open files")
    fd_ax.set_xlabel("seconds since start")
    rss_ax.legend(ncol=6, fontsize=8)
    rss_ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: ChaosResult, history: History) -> None:
    from swarmnode.chaos.run import dump_json

    out = result.options.out
    report = render(result, history)
    result.report_path = out / "report.md"
    result.report_path.write_text(report)
    dump_json(result, out / "result.json")
    if result.options.plots:
        try:
            plot_latency(result, history, out / "latency.png")
            plot_resources(result.resources, out / "resources.png")
        except ImportError:
            pass
