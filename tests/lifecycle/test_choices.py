"""The plain copies of job and worker names that the pure cores keep (so that they import
without Django) agree with ``lifecycle.jobs.choices``, which owns them."""

from __future__ import annotations

from lifecycle.jobs import spec
from lifecycle.jobs.choices import JOB_ACTIVE_STATES, JOB_FINAL_STATES, JobKind, JobState, WorkerState
from lifecycle.jobs.scheduling import snapshot


def test_the_spec_parser_accepts_exactly_the_job_kinds():
    assert tuple(spec.JOB_KINDS) == tuple(JobKind.values)


def test_the_scheduler_knows_the_worker_states_by_the_same_names():
    assert {state.value for state in snapshot.WorkerState} == set(WorkerState.values)


def test_every_job_state_is_active_final_or_queued():
    assert JOB_ACTIVE_STATES.isdisjoint(JOB_FINAL_STATES)
    assert set(JobState.values) == {s.value for s in JOB_ACTIVE_STATES | JOB_FINAL_STATES} | {JobState.QUEUED.value}
