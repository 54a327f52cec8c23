"""The jobs and workers pages through Django's test client: login, team visibility as
the API's (another team's job is 404), cancel only for whom ``job_cancel`` allows (403
otherwise), CSRF, and the JSON view that the log poller follows by offset."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from lifecycle.governance.models import AuditRecord
from lifecycle.jobs.choices import JobState
from lifecycle.jobs.models import Job, Worker
from lifecycle.jobs.services import job_log_append, pool_quota_set
from registry.services import model_create, team_ensure
from tests.conftest import Actor, _actor
from tests.frontend.conftest import (
    GPU_SPEC,
    Story,
    client_for,
    job_create,
    job_finished,
    job_running,
    worker_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quiet_scheduler")]


def _text(response) -> str:
    return response.content.decode()


def _section(page: str, title_id: str) -> str:
    return page.split(f'id="{title_id}"')[1].split("</section>")[0]


@pytest.fixture
def jobs(story: Story, owner: Actor, outsider: Actor) -> dict[str, Job]:
    """fraud: a queued job, a running GPU job with a log, a succeeded one; ads: a queued one."""
    queued = job_create(actor=owner, model=story.model, kind="evaluate", version=story.v3, priority=5)
    running = job_running(job_create(actor=owner, model=story.model, version=story.v2, spec=GPU_SPEC), gpus=(0, 1))
    job_log_append(job_id=running.pk, attempt=1, text="epoch 1/3 loss=0.41\n")
    job_log_append(job_id=running.pk, attempt=1, text="epoch 2/3 loss=0.33\n")
    done = job_create(actor=owner, model=story.model, kind="train")
    done = job_finished(job_running(done, worker="gpu-2", gpus=()), result={"run_id": "abc123", "f1": 0.93})
    ads_model = model_create(actor=outsider.user, name="ad-ranker", team=team_ensure(name="ads"), primary_metric="auc")
    theirs = job_create(actor=outsider, model=ads_model)
    return {"queued": queued, "running": Job.objects.get(pk=running.pk), "done": done, "theirs": theirs}


# --- login ---------------------------------------------------------------------------


def test_jobs_and_workers_pages_require_login(jobs: dict[str, Job]) -> None:
    client = Client()
    for url in ("/jobs/", f"/jobs/{jobs['running'].pk}/", "/workers/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_the_log_view_answers_401_json_without_a_session(jobs: dict[str, Job]) -> None:
    response = Client().get(f"/jobs/{jobs['running'].pk}/log?offset=0")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_cancel_requires_login(jobs: dict[str, Job]) -> None:
    response = Client().post(f"/jobs/{jobs['queued'].pk}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Job.objects.get(pk=jobs["queued"].pk).state == JobState.QUEUED


def test_nav_links_to_jobs_and_workers(viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/jobs/"))
    nav = page.split('class="mainnav"')[1].split("</nav>")[0]
    assert 'href="/jobs/" aria-current="page">Jobs<' in nav and 'href="/workers/">Workers<' in nav
    assert not re.search(r'(src|href)="(https?:)?//', page)


# --- jobs list -----------------------------------------------------------------------


def test_jobs_page_lists_queue_and_history_with_placement_cost_and_creator(jobs: dict[str, Job], viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/jobs/"))
    queue, history = _section(page, "queue-title"), _section(page, "history-title")
    running = queue.split(f'id="job-{jobs["running"].pk}"')[1].split("</tr>")[0]
    assert f'href="/jobs/{jobs["running"].pk}/"' in running
    assert 'href="/models/fraud-detector/versions/2/">v2<' in running
    assert "status-running" in running and 'value="0.250000"' in running and "25%" in running
    assert "gpu-1</span> · GPU 0, 1" in running
    assert "1m 3" in running and "so far" in running  # started 95 s ago
    assert "1.50 / —" in running and ">owner<" in running
    queued = queue.split(f'id="job-{jobs["queued"].pk}"')[1].split("</tr>")[0]
    assert "Evaluate" in queued and "not placed" in queued and "not started" in queued
    # The scheduler's order: higher priority first.
    assert queue.index(f'id="job-{jobs["queued"].pk}"') < queue.index(f'id="job-{jobs["running"].pk}"')
    done = history.split(f'id="job-{jobs["done"].pk}"')[1].split("</tr>")[0]
    assert "status-succeeded" in done and "1.50 / 1.25" in done and 'gpu-2</span> · <span class="muted">CPU' in done
    assert f'id="job-{jobs["done"].pk}"' not in queue and f'id="job-{jobs["queued"].pk}"' not in history


def test_jobs_page_shows_only_my_teams_jobs(jobs: dict[str, Job], viewer: Actor, outsider: Actor) -> None:
    mine = _text(client_for(viewer).get("/jobs/"))
    assert f'id="job-{jobs["theirs"].pk}"' not in mine
    theirs = _text(client_for(outsider).get("/jobs/"))
    assert f'id="job-{jobs["theirs"].pk}"' in theirs
    assert "fraud-detector" not in theirs.split('role="search"')[1].split("</form>")[1]
    for name in ("queued", "running", "done"):
        assert f'id="job-{jobs[name].pk}"' not in theirs


@pytest.mark.parametrize(
    ("query", "listed", "sections"),
    [
        ("state=running", ["running"], {"queue-title"}),
        ("state=succeeded", ["done"], {"history-title"}),
        ("model=fraud-detector", ["queued", "running", "done"], {"queue-title", "history-title"}),
        ("model=ad-ranker", [], {"queue-title", "history-title"}),
        ("kind=evaluate", ["queued"], {"queue-title", "history-title"}),
    ],
)
def test_jobs_page_filters_by_state_and_model(
    jobs: dict[str, Job], viewer: Actor, query: str, listed: list[str], sections: set[str]
) -> None:
    page = _text(client_for(viewer).get(f"/jobs/?{query}"))
    shown = {int(pk) for pk in re.findall(r'<tr id="job-(\d+)"', page)}
    assert shown == {jobs[name].pk for name in listed}
    assert {title for title in ("queue-title", "history-title") if f'id="{title}"' in page} == sections
    if not listed:
        assert "match these filters" in page


def test_jobs_page_refuses_an_unknown_state_with_400(viewer: Actor) -> None:
    response = client_for(viewer).get("/jobs/?state=limbo")
    assert response.status_code == 400 and "unknown state" in _text(response)


def test_jobs_page_is_paginated(story: Story, owner: Actor) -> None:
    for _ in range(27):
        job_create(actor=owner, model=story.model)
    client = client_for(owner)
    first = _text(client.get("/jobs/"))
    assert len(re.findall(r'<tr id="job-', first)) == 25 and "Page 1 of 2" in first and "?page=2" in first
    second = _text(client.get("/jobs/?page=2"))
    assert len(re.findall(r'<tr id="job-', second)) == 2


def test_jobs_empty_state_says_how_to_start_a_worker_and_submit(owner: Actor) -> None:
    page = _text(client_for(owner).get("/jobs/"))
    assert "No worker has registered yet" in page and "python manage.py job_worker --name" in page
    assert "Nothing queued or running." in page and "POST /api/v1/jobs/" in page
    assert "No job of your teams has finished yet." in page


def test_jobs_empty_state_leaves_out_the_worker_hint_once_one_registered(owner: Actor) -> None:
    worker_create()
    page = _text(client_for(owner).get("/jobs/"))
    assert "No worker has registered yet" not in page and "POST /api/v1/jobs/" in page


# --- job page ------------------------------------------------------------------------


def test_job_page_shows_spec_state_attempts_placement_and_log(jobs: dict[str, Job], viewer: Actor) -> None:
    job = jobs["running"]
    page = _text(client_for(viewer).get(f"/jobs/{job.pk}/"))
    assert f"Job #{job.pk} · Train" in page and "status-running" in page
    assert '<span class="muted" data-job-state-detail>running</span>' in page
    assert "<dd><span data-job-attempts>1</span> of 3</dd>" in page
    placement = _section(page, "assignment-title")
    assert "<td>gpu-1</td><td>0, 1</td>" in placement
    spec = _section(page, "spec-title")
    assert '<dt>Command</dt><dd><code class="wrap">python train.py</code>' in spec
    assert "<dt>Resources</dt><dd>1 GPU (A100) · 4 CPUs · 8000 MiB memory</dd>" in spec
    assert "<dt>Timeout</dt><dd>1d 0h</dd>" in spec and "<dt>Attempts allowed</dt><dd>3</dd>" in spec
    assert "&quot;gpu_type&quot;: &quot;A100&quot;" in spec and "&quot;lr&quot;: 0.001" in spec
    log = _section(page, "log-title")
    assert "epoch 1/3 loss=0.41\nepoch 2/3 loss=0.33\n</pre>" in log
    assert f'data-log-url="/jobs/{job.pk}/log"' in log and 'data-offset="40"' in log and "data-complete" not in log
    assert "No result yet" in _section(page, "result-title")


def test_job_page_of_a_finished_job_shows_its_result(jobs: dict[str, Job], viewer: Actor) -> None:
    page = _text(client_for(viewer).get(f"/jobs/{jobs['done'].pk}/"))
    assert "status-succeeded" in page and "succeeded on attempt 1" in page
    assert "&quot;run_id&quot;: &quot;abc123&quot;" in _section(page, "result-title")
    assert "data-complete" in _section(page, "log-title") and "End of the log." in page
    assert "<dt>Exit code</dt><dd>0</dd>" in page


def test_job_page_opens_on_the_tail_of_a_long_log(story: Story, owner: Actor) -> None:
    job = job_running(job_create(actor=owner, model=story.model))
    for number in range(8):
        job_log_append(job_id=job.pk, attempt=1, text=f"chunk {number} " + "x" * 10_000 + "\n")
    size = Job.objects.get(pk=job.pk).log_size
    log = _section(_text(client_for(owner).get(f"/jobs/{job.pk}/")), "log-title")
    assert f"The first {size - 64 * 1024} characters are not shown" in log
    assert f'data-offset="{size}"' in log
    assert "chunk 7 " in log and "chunk 0 " not in log


def test_another_teams_job_is_404(jobs: dict[str, Job], outsider: Actor, viewer: Actor) -> None:
    client = client_for(outsider)
    for url in (f"/jobs/{jobs['running'].pk}/", "/jobs/999999/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "no job" in _text(response)
    response = client.get(f"/jobs/{jobs['running'].pk}/log?offset=0")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client_for(viewer).get(f"/jobs/{jobs['theirs'].pk}/").status_code == 404


# --- cancel --------------------------------------------------------------------------


@pytest.fixture
def other_developer(db) -> Actor:
    return _actor("dev2", {"fraud": "developer"})


def test_cancel_button_is_shown_to_the_submitter_and_approvers_only(
    jobs: dict[str, Job], owner: Actor, approver: Actor, fraud_admin: Actor, viewer: Actor, other_developer: Actor
) -> None:
    url = f"/jobs/{jobs['running'].pk}/"
    action = f'action="/jobs/{jobs["running"].pk}/cancel/"'
    for actor, shown in (
        (owner, True),
        (approver, True),
        (fraud_admin, True),
        (viewer, False),
        (other_developer, False),
    ):
        assert (action in _text(client_for(actor).get(url))) is shown, actor.user
    # Nobody cancels a job that is over.
    assert "/cancel/" not in _text(client_for(owner).get(f"/jobs/{jobs['done'].pk}/"))


def test_the_submitter_cancels_a_queued_job_at_once(jobs: dict[str, Job], owner: Actor) -> None:
    job = jobs["queued"]
    response = client_for(owner).post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert f"Cancelled job #{job.pk} before it started." in _text(response)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and "cancelled by owner" in job.state_detail
    assert AuditRecord.objects.filter(action="job.cancel", object_id=str(job.pk)).exists()


def test_an_approver_stops_someone_elses_running_job(jobs: dict[str, Job], approver: Actor) -> None:
    job = jobs["running"]
    response = client_for(approver).post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert f"Asked job #{job.pk} to stop" in _text(response)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.cancel_requested
    assert "stop requested" in _text(response)


@pytest.mark.parametrize("who", ["viewer", "other_developer"])
def test_cancel_by_someone_not_allowed_is_403(jobs: dict[str, Job], who: str, request) -> None:
    actor = request.getfixturevalue(who)
    job = jobs["running"]
    response = client_for(actor).post(f"/jobs/{job.pk}/cancel/")
    assert response.status_code == 403
    assert "Not allowed" in _text(response) and "cancelling someone else&#x27;s job needs the approver role" in _text(
        response
    )
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and not job.cancel_requested


def test_cancel_of_another_teams_job_is_404(jobs: dict[str, Job], outsider: Actor, owner: Actor) -> None:
    assert client_for(outsider).post(f"/jobs/{jobs['running'].pk}/cancel/").status_code == 404
    assert client_for(owner).post(f"/jobs/{jobs['theirs'].pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=jobs["theirs"].pk).state == JobState.QUEUED


def test_cancel_of_a_finished_job_is_a_conflict(jobs: dict[str, Job], owner: Actor) -> None:
    response = client_for(owner).post(f"/jobs/{jobs['done'].pk}/cancel/")
    assert response.status_code == 409 and "is already succeeded" in _text(response)


def test_cancel_is_a_post(jobs: dict[str, Job], owner: Actor) -> None:
    assert client_for(owner).get(f"/jobs/{jobs['queued'].pk}/cancel/").status_code == 405


def test_csrf_is_enforced_on_cancel(jobs: dict[str, Job], owner: Actor) -> None:
    client = client_for(owner, enforce_csrf_checks=True)
    job = jobs["queued"]
    assert client.post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    page = _text(client.get(f"/jobs/{job.pk}/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = client.post(f"/jobs/{job.pk}/cancel/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED


# --- the log poller's JSON view ------------------------------------------------------


def test_log_view_tails_the_log_by_offset(jobs: dict[str, Job], viewer: Actor) -> None:
    client = client_for(viewer)
    job = jobs["running"]
    url = f"/jobs/{job.pk}/log"
    whole = client.get(f"{url}?offset=0").json()
    assert whole["text"] == "epoch 1/3 loss=0.41\nepoch 2/3 loss=0.33\n"
    assert (whole["next_offset"], whole["more"], whole["complete"]) == (40, False, False)
    assert (whole["state"], whole["state_label"], whole["progress"], whole["attempts"]) == (
        "running",
        "Running",
        0.25,
        1,
    )
    assert client.get(f"{url}?offset=20").json()["text"] == "epoch 2/3 loss=0.33\n"
    assert client.get(f"{url}?offset=30").json()["text"] == "loss=0.33\n"  # from inside a chunk
    nothing = client.get(f"{url}?offset=40").json()
    assert (nothing["text"], nothing["next_offset"], nothing["complete"]) == ("", 40, False)

    job_log_append(job_id=job.pk, attempt=1, text="epoch 3/3 loss=0.29\n")
    more = client.get(f"{url}?offset=40").json()
    assert (more["text"], more["next_offset"]) == ("epoch 3/3 loss=0.29\n", 60)
    response = client.get(f"{url}?offset=60")
    assert response["Cache-Control"].startswith("max-age=0") and "no-cache" in response["Cache-Control"]

    job_finished(Job.objects.get(pk=job.pk))
    done = client.get(f"{url}?offset=60").json()
    assert (done["text"], done["state"], done["progress"], done["complete"]) == ("", "succeeded", 1.0, True)
    # A reader who is behind is not complete until it has read everything.
    assert client.get(f"{url}?offset=0").json()["complete"] is True
    assert client.get(f"{url}?offset=59").json()["complete"] is True
    assert client.get(f"{url}?offset=20").json()["complete"] is True


def test_log_view_says_more_when_the_log_is_longer_than_one_answer(story: Story, owner: Actor) -> None:
    job = job_running(job_create(actor=owner, model=story.model))
    for _ in range(3):
        job_log_append(job_id=job.pk, attempt=1, text="y" * 100_000)
    first = client_for(owner).get(f"/jobs/{job.pk}/log?offset=0").json()
    assert len(first["text"]) == 256 * 1024 and first["more"] is True and first["next_offset"] == 256 * 1024


@pytest.mark.parametrize("offset", ["-1", "abc", "1.5", "²"])
def test_log_view_refuses_a_bad_offset_with_400(jobs: dict[str, Job], viewer: Actor, offset: str) -> None:
    response = client_for(viewer).get(f"/jobs/{jobs['running'].pk}/log", {"offset": offset})
    assert response.status_code == 400
    assert response.json() == {
        "error": "offset must be a whole number",
        "code": "invalid",
        "details": {"offset": "not a number"},
    }


# --- workers and pools ---------------------------------------------------------------


@pytest.fixture
def cluster(jobs: dict[str, Job], outsider: Actor) -> None:
    """Two workers in the default pool; gpu-1 runs fraud's job on GPUs 0 and 1 and an
    ads job on GPU 2; a quota of 2 GPUs for fraud."""
    worker_create("gpu-1", gpus=4, labels={"zone": "eu"})
    worker_create("cpu-1", gpus=0)
    job_running(jobs["theirs"], worker="gpu-1", gpus=(2,))
    pool_quota_set(actor=None, pool=jobs["running"].pool, team=team_ensure(name="fraud"), gpu_limit=2)


def _worker_row(page: str, name: str) -> str:
    return page.split(f'id="worker-{name}"')[1].split("</tr>")[0]


def test_workers_page_shows_inventory_load_and_running_jobs(cluster: None, jobs: dict[str, Job], viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/workers/"))
    row = _worker_row(page, "gpu-1")
    assert "status-online" in row and "pool default" in row
    assert row.count('class="gpu gpu-busy"') == 3 and row.count('class="gpu"') == 1
    assert '<span class="gpu-index">GPU 3</span> A100 · 40 GiB' in row
    assert "8 CPUs<div>62.5 GiB</div>" in row and "zone=eu" in row
    assert "in use: 0, 1, 2 · inventory declared" in row and "75%" in row and "2 slots" in row
    assert (
        f'<a href="/jobs/{jobs["running"].pk}/">#{jobs["running"].pk}</a>; <span class="muted">1 of other teams</span>'
        in row
    )
    assert '<time datetime="' in row and "just now" in row
    idle = _worker_row(page, "cpu-1")
    assert "none (CPU only)" in idle and ">idle<" in idle and "0%" in idle


def test_workers_page_links_only_the_jobs_i_may_open(cluster: None, jobs: dict[str, Job], outsider: Actor) -> None:
    row = _worker_row(_text(client_for(outsider).get("/workers/")), "gpu-1")
    assert f'href="/jobs/{jobs["theirs"].pk}/"' in row
    assert f'href="/jobs/{jobs["running"].pk}/"' not in row and "1 of other teams" in row


def test_workers_page_shows_pools_with_quotas_and_usage_per_team(cluster: None, viewer: Actor) -> None:
    pool = _text(client_for(viewer).get("/workers/")).split('id="pool-default"')[1].split("</article>")[0]
    assert "2 workers · 4 GPUs" in pool
    fraud = pool.split("<td>fraud</td>")[1].split("</tr>")[0]
    assert "<td>2</td>" in fraud and "2 GPUs" in fraud and "100%" in fraud
    ads = pool.split("<td>ads</td>")[1].split("</tr>")[0]
    assert "<td>1</td>" in ads and "no quota" in ads


def test_a_team_over_its_quota_is_highlighted(cluster: None, viewer: Actor, jobs: dict[str, Job]) -> None:
    pool_quota_set(actor=None, pool=jobs["running"].pool, team=team_ensure(name="fraud"), gpu_limit=1)
    pool = _text(client_for(viewer).get("/workers/")).split('id="pool-default"')[1].split("</article>")[0]
    assert '<tr class="over-quota">\n            <td>fraud</td>' in pool and "200%" in pool


def test_a_silent_worker_is_flagged(viewer: Actor) -> None:
    worker_create("gpu-9")
    Worker.objects.filter(name="gpu-9").update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    row = _worker_row(_text(client_for(viewer).get("/workers/")), "gpu-9")
    assert ">silent<" in row and "5\xa0minutes ago" in row


def test_workers_empty_state_says_how_to_start_one(viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/workers/"))
    assert "No worker has registered yet." in page and "python manage.py job_worker --name gpu-1" in page
    assert "No pools yet." in page


# --- cost ----------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_jobs_and_workers_pages_cost_the_same_queries_however_many_rows(
    cluster: None, story: Story, owner: Actor, viewer: Actor
) -> None:
    urls = ("/jobs/", "/workers/")
    client = client_for(viewer)
    before = {url: _queries(client, url) for url in urls}
    for number in range(4):
        job_running(job_create(actor=owner, model=story.model, version=story.v1), worker="gpu-1", gpus=(3,))
        job_finished(job_running(job_create(actor=owner, model=story.model)))
        worker_create(f"extra-{number}", gpus=2)
    client = client_for(viewer)
    assert {url: _queries(client, url) for url in urls} == before
