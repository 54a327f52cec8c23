"""The broker (a private Redis, a private RabbitMQ node) restarted while jobs are queued,
dispatched and running, and while new jobs are submitted: every job ends, once.

Redis runs without persistence here, so its restart loses every message: the reaper
dispatches again what nobody started. RabbitMQ keeps its durable queues, and hands the
running jobs' unacknowledged tasks out again: their second delivery is refused as stale.
"""

from __future__ import annotations

import time

import pytest

from lifecycle.jobs.choices import JOB_FINAL_STATES, JobState
from lifecycle.jobs.models import Job
from registry.services import team_ensure
from tests.chaos.conftest import WorkerFleet
from tests.chaos.test_worker_kills import _command_job, _finishes, _tick
from tests.environment import port_open

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.django_db(transaction=True),
]


@pytest.mark.parametrize("chaos_broker", ["redis", "rabbitmq"], indirect=True)
def test_a_broker_restart_with_queued_and_running_jobs_loses_nothing(
    chaos_broker, fleet_settings, owner, tmp_path, request
):
    broker_url, server = chaos_broker
    fleet = WorkerFleet(broker_url, tmp_path, {})
    request.addfinalizer(fleet.stop_all)
    fleet.wait_online(fleet.start(), fleet.start())
    team = team_ensure(name="fraud")
    jobs = [_command_job(owner, team, 3) for _ in range(5)]

    deadline = time.monotonic() + 120
    while not Job.objects.filter(state=JobState.RUNNING).exists():
        assert time.monotonic() < deadline, "no job started"
        _tick()
        time.sleep(0.3)
    states_at_stop = sorted(Job.objects.values_list("state", flat=True))
    server.stop()
    try:
        assert not port_open("127.0.0.1", server.port)
        jobs += [_command_job(owner, team, 1) for _ in range(2)]
        _tick()  # placements commit; their dispatch fails while the broker is down
        time.sleep(1)
    finally:
        server.start()

    deadline = time.monotonic() + 180
    while Job.objects.exclude(state__in=JOB_FINAL_STATES).exists():
        assert time.monotonic() < deadline, list(Job.objects.values("id", "state", "state_detail", "attempts"))
        _tick()
        time.sleep(0.5)

    finished = list(Job.objects.filter(pk__in=[j.pk for j in jobs]))
    print(
        f"\n[chaos] {request.node.callspec.id} restart: states at stop {states_at_stop}; "
        f"attempts {sorted(j.attempts for j in finished)}"
    )
    assert {j.state for j in finished} == {JobState.SUCCEEDED}
    assert all(j.result["job"] == j.pk for j in finished)
    assert [_finishes(j) for j in finished] == [1] * len(finished)
