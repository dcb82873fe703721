"""What a row measured, and the tables that print it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .processes import say

ROWS = (
    "ingest1",
    "ingest100",
    "webhook8",
    "webhook32",
    "email",
    "latency100",
    "latency1000",
    "api",
)
# The figures of the issue, for reading the table; nothing is checked against them.
GOALS = {
    "ingest1": ">= 50,000",
    "ingest100": ">= 200,000",
    "webhook8": ">= 2,000",
    "webhook32": ">= 2,000",
    "email": ">= 300",
    "latency100": "p99 <= 50 ms",
    "latency1000": "p99 <= 100 ms",
    "api": ">= 1,000",
}


@dataclass
class Latency:
    published: int
    received: int
    rate: float  # events published per second
    delivered_per_s: float  # alerts arriving per second in the second half of the publishing
    behind_at_end: int  # published but not arrived when publishing stopped
    unsent: int  # never arrived, after the grace period
    p50: float
    p95: float
    p99: float
    max: float
    # The first seconds after start, published at the same rate just before the window and
    # measured apart: the cold start (connections, plugins, the broker's and the store's
    # first work on new topics and tables), which the figure above leaves out.
    start_s: float = 0.0
    start_p50: float = 0.0
    start_p99: float = 0.0

    @property
    def falling_behind(self) -> bool:
        """Alerts arrive slower than events are published: the backlog grows without bound."""
        return self.delivered_per_s < 0.9 * self.rate


@dataclass
class Figure:
    row: str
    label: str
    value: float  # the figure: per second, or the p99 in ms for a latency row
    unit: str
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)
    latency: Latency | None = None
    profile: str | None = None
    runs: list[float] = field(default_factory=list)  # every round's value, with --repeat


def median_of(figures: list[Figure]) -> Figure:
    """The round with the median value (the lower middle of an even count), with every
    round's value in `runs`."""
    ordered = sorted(figures, key=lambda f: f.value)
    middle = replace(ordered[(len(ordered) - 1) // 2])
    middle.runs = [f.value for f in figures]
    return middle


def spread(figure: Figure) -> str:
    """The lowest and highest of the rounds, when there were several."""
    if len(figure.runs) < 2:
        return ""
    return f"{min(figure.runs):,.0f}-{max(figure.runs):,.0f}"


def cpu_note(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0f}%" for name, share in cpu.items())


def report(figure: Figure) -> None:
    if figure.latency is not None:
        lat = figure.latency
        say(
            f"    => p50 {lat.p50:.0f} ms, p95 {lat.p95:.0f} ms, p99 {lat.p99:.0f} ms, "
            f"max {lat.max:.0f} ms; {lat.received:,} of {lat.published:,} arrived"
        )
        say(
            f"       cold start, the first {lat.start_s:g} s at the same rate (not in the "
            f"figure): p50 {lat.start_p50:.0f} ms, p99 {lat.start_p99:.0f} ms"
        )
    else:
        say(f"    => {figure.value:,.0f} {figure.unit}")
    if figure.note:
        say(f"       {figure.note}")
    if figure.cpu:
        say(f"       cpu (% of a core): {cpu_note(figure.cpu)}")
    if figure.profile:
        say(f"       profile of jobwire:\n{figure.profile}")


def share(value: float, baseline: float) -> str:
    """`value` as a percentage of `baseline`: 0.047%, 1.6%, 34%, 120%."""
    if not baseline:
        return "n/a"
    percent = 100 * value / baseline
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def table(
    title: str,
    figures: dict[str, Figure],
    apprise: dict[str, Figure],
) -> None:
    baseline = figures.get("consumer")
    say("")
    say(title)
    header = (
        f"  {'figure':<58} {'measured':>16} {'rounds':>15} {'of consumer':>12} "
        f"{'of Apprise':>11}  {'goal':<14} cpu (% of a core)"
    )
    say(header)
    say("  " + "-" * (len(header) + 20))
    order = ["consumer", *ROWS]
    for name in order:
        figure = figures.get(name)
        if figure is None:
            continue
        if figure.latency is not None:
            lat = figure.latency
            measured = f"p50 {lat.p50:.0f}, p99 {lat.p99:.0f} ms"
            vs_consumer = vs_apprise = ""
        else:
            measured = f"{figure.value:,.0f} {figure.unit}"
            vs_consumer = (
                share(figure.value, baseline.value) if baseline and name != "consumer" else ""
            )
            vs_apprise = share(figure.value, apprise[name].value) if name in apprise else ""
        cpu = cpu_note({k: v for k, v in figure.cpu.items() if k != "bench"})
        say(
            f"  {figure.label:<58} {measured:>16} {spread(figure):>15} {vs_consumer:>12} "
            f"{vs_apprise:>11}  {GOALS.get(name, ''):<14} {cpu}"
        )
        if figure.latency is not None:
            lat = figure.latency
            say(
                f"  {'':<58} {'':>16} {'':>15}   p95 {lat.p95:.0f} ms, max {lat.max:.0f} ms; "
                f"{lat.delivered_per_s:,.0f} alerts/s arrived; cold start p99 "
                f"{lat.start_p99:.0f} ms"
                + (
                    f"; FALLS BEHIND: {lat.behind_at_end:,} not arrived at the end"
                    if lat.falling_behind
                    else ""
                )
            )


def compare(results: dict[str, dict[str, Figure]]) -> None:
    sqlite, postgres = results.get("sqlite"), results.get("postgresql")
    if not sqlite or not postgres:
        return
    say("")
    say("PostgreSQL against SQLite (how many times slower; the issue's goal: at most 1.5)")
    for name in ["consumer", *ROWS]:
        a, b = sqlite.get(name), postgres.get(name)
        if a is None or b is None:
            continue
        if a.latency is not None and b.latency is not None:
            factor = b.latency.p99 / a.latency.p99
            say(f"  {a.label:<58} p99 {a.value:>8,.0f} -> {b.value:>8,.0f} ms   {factor:.2f}x")
        else:
            factor = a.value / b.value
            say(f"  {a.label:<58} {a.value:>12,.0f} -> {b.value:>10,.0f} {a.unit:<9} {factor:.2f}x")


def compare_builds(
    store: str,
    baseline: str,
    measured: str,
    rounds: dict[str, dict[str, list[Figure]]],
    baseline_first: bool,
) -> None:
    """Every round of two builds, row by row, with their means and `measured`'s over
    `baseline`'s (with `--versus HEAD~1`: after over before). Their order was swapped each
    round (`baseline_first`: in the first round), so the bias of going first falls on both
    alike; the one marked * ran first in its pair, and the last column says how large that
    bias was in this run."""
    say("")
    say(f"{store}: {measured} against {baseline}, every round (* ran first in its pair)")
    header = (
        f"  {'figure':<38} {baseline + ' rounds':>30} {measured + ' rounds':>30} "
        f"{'means':>19} {'ratio':>7} {'going first':>12}"
    )
    say(header)
    say("  " + "-" * (len(header) - 2))
    for name in ROWS:
        a, b = rounds[baseline].get(name), rounds[measured].get(name)
        if not a or not b:
            continue
        for label, value in _compared_values(a[0]):
            va, vb = [value(f) for f in a], [value(f) for f in b]
            first_a = [(r % 2 == 0) == baseline_first for r in range(len(va))]
            first_b = [(r % 2 == 0) != baseline_first for r in range(len(vb))]
            mean_a, mean_b = statistics.fmean(va), statistics.fmean(vb)
            say(
                f"  {label:<38} {_cells(va, first_a):>30} {_cells(vb, first_b):>30} "
                f"{_number(mean_a):>9} {_number(mean_b):>9} "
                f"{_ratio(mean_b, mean_a):>7} {_first_bias(va, vb, first_a, first_b):>12}"
            )


def _compared_values(figure: Figure) -> list[tuple[str, Callable[[Figure], float]]]:
    """What to set side by side for a row: its figure; for a latency row, p99 and p50 (lower
    is better) and the alerts that arrived a second."""
    if figure.latency is None:
        return [(f"{figure.row} ({figure.unit})", lambda f: f.value)]
    return [
        (f"{figure.row} p99 (ms, lower is better)", lambda f: f.latency.p99 if f.latency else 0),
        (f"{figure.row} p50 (ms, lower is better)", lambda f: f.latency.p50 if f.latency else 0),
        (
            f"{figure.row} alerts arrived (/s)",
            lambda f: f.latency.delivered_per_s if f.latency else 0,
        ),
    ]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _cells(values: list[float], went_first: list[bool]) -> str:
    marked = zip(values, went_first, strict=True)
    return ", ".join(_number(value) + ("*" if first else "") for value, first in marked)


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def _first_bias(va: list[float], vb: list[float], first_a: list[bool], first_b: list[bool]) -> str:
    """How much higher a build read when it ran first than when it ran second, the geometric
    mean over both builds; blank until each has run both ways."""
    factors = []
    for values, firsts in ((va, first_a), (vb, first_b)):
        ahead = [v for v, first in zip(values, firsts, strict=True) if first]
        behind = [v for v, first in zip(values, firsts, strict=True) if not first]
        if not ahead or not behind or not statistics.fmean(behind):
            return ""
        factors.append(statistics.fmean(ahead) / statistics.fmean(behind))
    return f"{math.sqrt(factors[0] * factors[1]):.2f}x"
