"""CPU time of the processes a run started, of the PostgreSQL backends serving its
databases, and of its clients, read from /proc.

CPU per request is the work a request costs, which a busy neighbour on a shared machine
does not change the way it changes wall time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

from .processes import PG_ADMIN, Stack

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> tuple[int, float] | None:
    """``(process group, user + system CPU seconds)`` of a process; None once it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds used by everything ``stack`` started (servers and their workers, found
    by process group) and by the PostgreSQL backends connected to its databases; apart
    from those, the clients' own: this process and ``client_pids``."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.conn = psycopg.connect(PG_ADMIN, autocommit=True)
        self.client_pids: set[int] = set()  # processes that run clients, besides this one

    def snapshot(self) -> dict[int, float]:
        """CPU seconds so far of every process metered, by pid."""
        groups = {process.pid for _, process in self.stack.processes}
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", [self.stack.databases]
        ).fetchall()
        backends = {pid for (pid,) in rows}
        usage: dict[int, float] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            found = process_cpu(pid)
            if found is not None and (found[0] in groups or pid in backends):
                usage[pid] = found[1]
        return usage

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        """CPU seconds used between two snapshots (processes that ended meanwhile are lost)."""
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def used_by_service(self, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
        """CPU seconds per service the stack started (its process group), the rest as
        ``postgresql`` (the database backends)."""
        names = {process.pid: name for name, process in self.stack.processes}
        parts: dict[str, float] = {}
        for pid, cpu in after.items():
            found = process_cpu(pid)
            name = names.get(found[0], "postgresql") if found else "postgresql"
            parts[name] = parts.get(name, 0.0) + cpu - before.get(pid, 0.0)
        return parts

    def client_cpu(self) -> float:
        """CPU seconds the clients have used so far: this process and ``client_pids``."""
        total = time.process_time()
        for pid in list(self.client_pids):
            found = process_cpu(pid)
            if found is not None:
                total += found[1]
        return total

    def close(self) -> None:
        self.conn.close()
