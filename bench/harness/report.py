"""Targets and verdicts, and the lines a benchmark prints: the machine, the table of
results, the ratios of one system to another with PASS/FAIL, and OVERALL."""

from __future__ import annotations

import contextlib
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from .stats import Result


@dataclass(frozen=True)
class Target:
    """A bound a measured figure is held to, e.g. ``Target("throughput", 3, higher_is_better=True)``
    for "at least 3x", ``Target("p50", 100, higher_is_better=False, inclusive=False, unit=" ms")``
    for "under 100 ms"."""

    label: str
    bound: float
    higher_is_better: bool
    inclusive: bool = True
    unit: str = "x"

    def met(self, *values: float) -> bool:
        """Whether every one of ``values`` is within the bound (NaN never is)."""
        return bool(values) and all(self._within(value) for value in values)

    def _within(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.higher_is_better:
            return value >= self.bound if self.inclusive else value > self.bound
        return value <= self.bound if self.inclusive else value < self.bound

    def __str__(self) -> str:
        operator = (">" if self.higher_is_better else "<") + ("=" if self.inclusive else "")
        return f"{self.label} {operator} {self.bound:g}{self.unit}"


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs``; NaN when there is nothing to divide by (which meets no target)."""
    if theirs == 0 or math.isnan(theirs):
        return math.nan
    return ours / theirs


def mark(passed: bool | None) -> str:
    """``PASS``, ``FAIL``, or nothing for a figure shown for information."""
    if passed is None:
        return ""
    return "PASS" if passed else "FAIL"


class Verdicts:
    """The targets judged in one run and the run's OVERALL verdict: PASS only when every
    target counted in it was met and no error was counted."""

    def __init__(self) -> None:
        self.judged: list[tuple[str, bool]] = []
        self.errors: list[str] = []

    def judge(self, what: str, target: Target, *values: float, void: bool = False, counted: bool = True) -> bool:
        """Whether ``values`` meet ``target``; never when the measurement is ``void`` (an
        error or a cut short on either side makes the comparison meaningless). Counted in
        OVERALL unless ``counted`` is false (a reference, printed only)."""
        passed = not void and target.met(*values)
        if counted:
            self.judged.append((what, passed))
        return passed

    def count_error(self, what: str) -> None:
        """Something that should have been measured could not be: OVERALL fails."""
        self.errors.append(what)

    @property
    def failed(self) -> list[str]:
        return [what for what, passed in self.judged if not passed] + self.errors

    @property
    def passed(self) -> bool:
        return not self.failed

    def overall(self, note: str = "") -> str:
        return f"OVERALL: {mark(self.passed)}" + (f" ({note})" if note else "")


@dataclass(frozen=True)
class Ratios:
    """One system's figures over another's, for the same measurement."""

    throughput: float
    p50: float
    p95: float
    cpu: float

    @classmethod
    def of(cls, ours: Result, theirs: Result) -> Ratios:
        return cls(
            ratio(ours.rate, theirs.rate),
            ratio(ours.pct(50), theirs.pct(50)),
            ratio(ours.pct(95), theirs.pct(95)),
            ratio(ours.cpu_per_request, theirs.cpu_per_request),
        )


def ratio_header(ours: str, theirs: str) -> list[str]:
    return [
        f"{f'ratio {ours}/{theirs}':<24} {'clients':>7} {'throughput':>11} {'p50':>7} {'p95':>7} {'CPU/req':>8}   target",
        "-" * 100,
    ]


def ratio_line(what: str, clients: int, ratios: Ratios, target: str, verdict: str) -> str:
    return (
        f"{what:<24} {clients:>7} {ratios.throughput:>10.2f}x {ratios.p50:>6.2f}x {ratios.p95:>6.2f}x "
        f"{ratios.cpu:>7.2f}x   {target:<34} {verdict}"
    )


def result_table(results: list[Result]) -> list[str]:
    """A header and one row per result: requests done, errors, req/s, p50/p95/p99, CPU."""
    header = (
        f"{'measurement':<30} {'system':<10} {'clients':>7} {'done':>9} {'errors':>6} "
        f"{'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        done = f"{r.ok}/{r.planned}" + ("*" if r.timed_out else "")
        lines.append(
            f"{r.what:<30} {r.system:<10} {r.clients:>7} {done:>9} {r.errors:>6} "
            f"{r.rate:>9.1f} {r.pct(50):>8.1f} {r.pct(95):>8.1f} {r.pct(99):>8.1f} {r.cpu_per_request:>10.1f}"
        )
    return lines


def load_averages(at_start: float) -> str:
    """The 1-minute load average at the start of a run and now: how busy the machine was."""
    return f"load average {at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"


def machine_summary(load_at_start: float) -> str:
    """Cores, CPU model, memory, system, and the load averages."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} RAM, {platform.system()} {platform.release()}; "
        f"{load_averages(load_at_start)}"
    )
