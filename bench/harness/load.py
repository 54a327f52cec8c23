"""Load on a server: a fixed number of calls spread over client threads, bounded in time,
and two or more systems measured in alternating rounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .client import Session
from .cpu import CpuMeter
from .stats import Result, merge

Call = Callable[[Session, int], None]  # one call: the thread's session, the call's index


def measure(
    system: str, what: str, clients: int, total: int, call: Call, *, time_limit: float, meter: CpuMeter | None = None
) -> Result:
    """``total`` calls over ``clients`` threads (a session each), stopping at ``time_limit``.

    A call that raises is counted as an error, its first message kept; latency is from
    the call's start to its return.
    """
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + time_limit

    def client() -> None:
        nonlocal issued
        session = Session()
        mine: list[float] = []
        try:
            while True:
                with lock:
                    if issued >= total or time.monotonic() > deadline:
                        break
                    index = issued
                    issued += 1
                started = time.perf_counter()
                try:
                    call(session, index)
                except Exception as exc:  # counted and reported, never hidden
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:300])
                else:
                    mine.append(time.perf_counter() - started)
        finally:
            session.close()
            with lock:
                latencies.extend(mine)

    client_cpu = meter.client_cpu if meter else time.process_time
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    cpu_before = meter.snapshot() if meter else {}
    client_cpu_before = client_cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu_used = client_cpu() - client_cpu_before
    cpu_after = meter.snapshot() if meter else {}
    return Result(
        system,
        what,
        clients,
        total,
        latencies,
        len(errors),
        wall,
        timed_out=issued < total,
        first_error=errors[0] if errors else None,
        cpu=meter.used(cpu_before, cpu_after) if meter else float("nan"),
        cpu_parts=meter.used_by_service(cpu_before, cpu_after) if meter else {},
        client_cpu=client_cpu_used,
    )


def compare(
    what: str,
    clients: int,
    total: int,
    calls: dict[str, Call],
    *,
    time_limit: float,
    meter: CpuMeter,
    server_threads: int,
    rounds: int = 3,
) -> list[Result]:
    """Measure each system in ``rounds`` alternating rounds (A B, B A, A B ...) of
    ``total / rounds`` calls, so that a change in the machine's background load during
    the measurement falls on both systems alike; each round is preceded by a warm-up
    that is not counted: two calls on each of ``server_threads`` concurrent clients at
    least (every server worker and thread has served one before any is measured, as
    in a server that has been up for a while)."""
    parts: dict[str, list[Result]] = {system: [] for system in calls}
    order = list(calls)
    for index in range(rounds):
        share = total // rounds + (1 if index < total % rounds else 0)
        for system in order if index % 2 == 0 else reversed(order):
            call = calls[system]
            warm = max(clients, server_threads)
            measure(system, "warm-up", warm, 2 * warm, call, time_limit=time_limit)
            parts[system].append(
                measure(system, what, clients, share, call, time_limit=time_limit / rounds, meter=meter)
            )
    return [merge(parts[system]) for system in calls]
