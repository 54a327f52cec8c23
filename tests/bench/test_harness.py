"""The benchmarks' shared harness: percentiles, targets and verdicts, ports, processes,
the HTTP client and the load generator, on this machine and without services."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.harness.client import Session, expect, status_of
from bench.harness.cpu import process_cpu
from bench.harness.load import measure
from bench.harness.processes import Stack, free_port, port_open, run_with_stack, wait_for_port
from bench.harness.report import Ratios, Target, Verdicts, mark, ratio, result_table
from bench.harness.stats import Result, merge, percentile

# --- nearest-rank percentiles --------------------------------------------------------


def test_percentile_is_the_value_of_rank_ceil_q_n():
    values = list(range(1, 61))
    assert percentile(values, 95) == 57  # ceil(0.95 * 60) = 57
    assert percentile(values, 50) == 30
    assert percentile(values, 99) == 60  # ceil(59.4) = 60
    assert percentile(list(range(1, 201)), 95) == 190


def test_percentile_rounds_a_fractional_rank_up_never_interpolates():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 20.0  # rank 2
    assert percentile(values, 51) == 30.0  # rank ceil(2.04) = 3
    assert percentile(values, 90) == 40.0  # rank ceil(3.6) = 4, not 37 interpolated


def test_percentile_sorts_its_input_and_leaves_it_alone():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 40) == 2.0
    assert values == [5.0, 1.0, 4.0, 2.0, 3.0]


def test_percentile_rank_is_exact_where_q_over_100_is_not():
    # 7 / 100 * 100 is 7.000000000000001 in floating point: its ceiling would be rank 8.
    assert percentile(list(range(1, 101)), 7) == 7
    assert percentile(list(range(1, 101)), 57) == 57


def test_percentile_ends_and_empty():
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([42.0], 95) == 42.0
    assert math.isnan(percentile([], 50))


def _result(system: str = "A", *, latencies: list[float] | None = None, **fields) -> Result:
    values = {
        "system": system,
        "what": "read",
        "clients": 1,
        "planned": 4,
        "latencies": [0.001, 0.002, 0.003, 0.004] if latencies is None else latencies,
        "errors": 0,
        "wall": 2.0,
        "timed_out": False,
        "first_error": None,
        "cpu": 0.02,
        **fields,
    }
    return Result(**values)


def test_result_figures_are_in_milliseconds_and_requests_per_second():
    result = _result()
    assert result.ok == 4
    assert result.rate == 2.0
    assert result.pct(50) == pytest.approx(2.0)
    assert result.pct(95) == pytest.approx(4.0)
    assert result.cpu_per_request == pytest.approx(5.0)


def test_result_is_void_after_an_error_a_cut_short_or_nothing_done():
    assert not _result().void
    assert _result(errors=1).void
    assert _result(timed_out=True).void
    assert _result(latencies=[]).void


def test_merge_adds_up_the_rounds():
    merged = merge(
        [
            _result(latencies=[0.001], errors=1, first_error=None, cpu_parts={"web": 1.0}),
            _result(latencies=[0.003, 0.002], timed_out=True, first_error="boom", cpu_parts={"db": 2.0}),
        ]
    )
    assert merged.planned == 8
    assert sorted(merged.latencies) == [0.001, 0.002, 0.003]
    assert merged.errors == 1
    assert merged.wall == 4.0
    assert merged.timed_out
    assert merged.first_error == "boom"
    assert merged.cpu == pytest.approx(0.04)
    assert merged.cpu_parts == {"web": 1.0, "db": 2.0}


# --- targets, ratios, verdicts ---------------------------------------------------------


def test_higher_is_better_target_is_met_at_and_above_its_bound():
    target = Target("throughput", 3.0, higher_is_better=True)
    assert target.met(3.0)
    assert target.met(7.5)
    assert not target.met(2.99)
    assert str(target) == "throughput >= 3x"


def test_lower_is_better_target_is_met_at_and_below_its_bound():
    target = Target("latency p50 and p95", 1.5, higher_is_better=False)
    assert target.met(1.5, 0.2)
    assert not target.met(1.2, 1.51)  # every figure must be within the bound
    assert str(target) == "latency p50 and p95 <= 1.5x"


def test_strict_target_excludes_its_bound():
    target = Target("p50", 100.0, higher_is_better=False, inclusive=False, unit=" ms")
    assert target.met(99.9)
    assert not target.met(100.0)
    assert str(target) == "p50 < 100 ms"


def test_nan_or_no_figure_meets_no_target():
    assert not Target("throughput", 3.0, higher_is_better=True).met(math.nan)
    assert not Target("latency", 1.5, higher_is_better=False).met(math.nan)
    assert not Target("latency", 1.5, higher_is_better=False).met()


def test_ratio_of_nothing_is_nan():
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(3.0, 0.0))
    assert math.isnan(ratio(3.0, math.nan))


def test_ratios_set_ours_over_theirs():
    ours = _result("ModelGate", latencies=[0.001, 0.001, 0.002, 0.002], wall=1.0, cpu=0.004)
    theirs = _result("MLflow", latencies=[0.004, 0.004, 0.008, 0.008], wall=4.0, cpu=0.016)
    ratios = Ratios.of(ours, theirs)
    assert ratios.throughput == pytest.approx(4.0)
    assert ratios.p50 == pytest.approx(0.25)
    assert ratios.p95 == pytest.approx(0.25)
    assert ratios.cpu == pytest.approx(0.25)


def test_overall_passes_when_every_target_is_met():
    verdicts = Verdicts()
    assert verdicts.judge("reads", Target("throughput", 3.0, higher_is_better=True), 4.0)
    assert verdicts.judge("registration", Target("latency", 1.5, higher_is_better=False), 0.6, 0.9)
    assert verdicts.passed
    assert verdicts.overall("note") == "OVERALL: PASS (note)"


def test_overall_fails_when_any_target_fails():
    verdicts = Verdicts()
    verdicts.judge("reads", Target("throughput", 3.0, higher_is_better=True), 4.0)
    assert not verdicts.judge("registration", Target("latency", 1.5, higher_is_better=False), 0.6, 1.7)
    assert not verdicts.passed
    assert verdicts.failed == ["registration"]
    assert verdicts.overall() == "OVERALL: FAIL"


def test_overall_fails_when_an_error_was_counted():
    verdicts = Verdicts()
    verdicts.judge("reads", Target("throughput", 3.0, higher_is_better=True), 4.0)
    verdicts.count_error("latency: workers did not start")
    assert not verdicts.passed
    assert verdicts.overall() == "OVERALL: FAIL"


def test_a_void_measurement_fails_its_target_whatever_its_figures():
    verdicts = Verdicts()
    assert not verdicts.judge("reads", Target("throughput", 3.0, higher_is_better=True), 10.0, void=True)
    assert not verdicts.passed


def test_a_reference_is_judged_but_not_counted_in_overall():
    verdicts = Verdicts()
    passed = verdicts.judge("bare create", Target("latency", 1.5, higher_is_better=False), 5.3, counted=False)
    assert not passed
    assert verdicts.passed


def test_mark_says_pass_fail_or_nothing():
    assert (mark(True), mark(False), mark(None)) == ("PASS", "FAIL", "")


def test_result_table_marks_a_measurement_cut_short():
    lines = result_table([_result(planned=10, timed_out=True)])
    assert lines[0].split()[:3] == ["measurement", "system", "clients"]
    assert " 4/10* " in lines[2]


# --- ports and processes ----------------------------------------------------------------


def test_free_port_can_be_listened_on_and_wait_for_port_sees_it():
    port = free_port()
    assert not port_open(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        wait_for_port(port, timeout=5)
        assert port_open(port)


def test_wait_for_port_gives_up_when_nothing_listens():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_for_port(port, timeout=0.3)
    assert time.monotonic() - started < 3


def test_wait_for_port_returns_once_a_late_server_listens():
    port = free_port()
    server = socket.socket()

    def listen_later() -> None:
        time.sleep(0.3)
        server.bind(("127.0.0.1", port))
        server.listen()

    thread = threading.Thread(target=listen_later)
    thread.start()
    try:
        wait_for_port(port, timeout=10)
    finally:
        thread.join()
        server.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_stack_stops_what_it_started_and_the_children_of_it(tmp_path):
    stack = Stack(tmp_path)
    grandchild_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time, pathlib; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(grandchild_file)!r}).write_text(str(child.pid)); "
        "time.sleep(60)"
    )
    process = stack.start("sleeper", [sys.executable, "-c", script], dict(os.environ))
    stack.wait_for(grandchild_file.exists, timeout=20, what="the grandchild")
    grandchild = int(grandchild_file.read_text())
    closed = []
    stack.closers.append(lambda: closed.append(True))

    stack.stop()

    assert process.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert closed == [True]
    assert stack.processes == []


def test_stack_wait_for_fails_when_a_started_process_exits(tmp_path):
    stack = Stack(tmp_path)
    stack.start("quitter", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"], dict(os.environ))
    try:
        with pytest.raises(RuntimeError, match="quitter exited") as raised:
            stack.wait_for(lambda: False, timeout=20, what="nothing")
        assert "bye" in str(raised.value)  # the end of its log
    finally:
        stack.stop()


def test_stack_wait_ready_names_the_service_that_never_came_up(tmp_path):
    stack = Stack(tmp_path)
    process = stack.start("slow", [sys.executable, "-c", "import time; time.sleep(30)"], dict(os.environ))
    try:
        with pytest.raises(RuntimeError, match="slow did not come up"):
            stack.wait_ready("slow", process, lambda: 1 / 0 == 0, timeout=0.5)
    finally:
        stack.stop()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
@pytest.mark.parametrize(("outcome", "status"), [(True, 0), (False, 1), (KeyboardInterrupt, 130)])
def test_run_with_stack_stops_everything_and_says_how_it_ended(outcome, status, capsys):
    started: list[subprocess.Popen] = []
    workdirs: list[Path] = []
    handler = signal.getsignal(signal.SIGTERM)

    def body(stack: Stack) -> bool:
        workdirs.append(stack.workdir)
        started.append(stack.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ)))
        if outcome is KeyboardInterrupt:
            raise KeyboardInterrupt
        return outcome

    try:
        assert run_with_stack(body, keep_logs=False) == status
        assert started[0].poll() is not None
        assert signal.getsignal(signal.SIGTERM) == handler
        out = capsys.readouterr().out
        assert "stopped everything started" in out
        # The logs are kept, and said where, only when the run did not finish.
        assert ("service logs kept in" in out) == (outcome is KeyboardInterrupt)
        assert workdirs[0].exists() == (outcome is KeyboardInterrupt)
    finally:
        shutil.rmtree(workdirs[0], ignore_errors=True)


# --- the client and the load generator ----------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive, as the servers measured

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = f'{{"path": "{self.path}", "port": {self.client_address[1]}}}'.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_session_keeps_its_connection_alive_between_calls(http_server):
    with Session() as session:
        first = session.get(f"{http_server}/a", params={"q": "1 2"}).json()
        second = session.get(f"{http_server}/b").json()
    assert first["path"] == "/a?q=1+2"
    assert first["port"] == second["port"]  # the same client socket


def test_expect_names_the_call_that_answered_otherwise(http_server):
    with Session() as session:
        assert expect(session.get(f"{http_server}/ok"), 200).ok
        with pytest.raises(RuntimeError, match=r"GET .*/missing -> 404"):
            expect(session.get(f"{http_server}/missing"), 200)
    assert status_of(f"{http_server}/missing", timeout=5) == 404


def test_measure_makes_the_planned_calls_and_counts_errors():
    seen: list[int] = []
    lock = threading.Lock()

    def call(session: Session, index: int) -> None:
        with lock:
            seen.append(index)
        if index % 5 == 0:
            raise ValueError(f"call {index} failed")

    result = measure("A", "calls", 3, 20, call, time_limit=30)
    assert sorted(seen) == list(range(20))
    assert result.planned == 20
    assert result.errors == 4
    assert result.ok == 16
    assert not result.timed_out
    assert result.first_error is not None and result.first_error.startswith("ValueError: call ")


def test_measure_stops_at_its_time_limit():
    result = measure("A", "slow", 2, 1000, lambda session, index: time.sleep(0.05), time_limit=0.3)
    assert result.timed_out
    assert 0 < result.ok < 1000


def test_process_cpu_reads_this_process_group_and_its_cpu():
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    found = process_cpu(os.getpid())
    assert found is not None
    group, cpu = found
    assert group == os.getpgid(0)
    assert cpu >= 0.05 - 0.02  # /proc counts in clock ticks
    assert process_cpu(2**22 + 1) is None  # above pid_max: no such process
