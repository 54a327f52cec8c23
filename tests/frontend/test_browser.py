"""The web UI in a real browser: Debian's Chromium driven by Playwright against a live
server. Each test leaves full-page screenshots under ``test-output/screenshots/``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.deployments import services as deployment_services
from lifecycle.deployments.choices import ReplicaState
from lifecycle.deployments.models import Replica
from lifecycle.governance.services.transitions import transition_approve
from lifecycle.jobs.choices import JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_log_append, pool_quota_set
from registry.choices import Stage
from registry.services import team_ensure
from tests.conftest import Actor, require_service
from tests.frontend.conftest import (
    GPU_SPEC,
    Story,
    evaluation_create,
    job_create,
    job_finished,
    job_running,
    password_of,
    story_create,
    worker_create,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls that set up and
# check each test are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_service("Chromium", CHROMIUM.exists())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    # A time zone away from UTC shows that timestamps are rewritten to the viewer's.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshots(output_dir: Path) -> Path:
    directory = output_dir / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def live_story(transactional_db, owner: Actor, approver: Actor) -> Story:
    return story_create(owner=owner, approver=approver)


def log_in(page, base_url: str, actor: Actor, *, screenshot: Path | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.get_by_label("User name").fill(actor.user.get_username())
    page.get_by_label("Password").fill(password_of(actor))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()


def test_approver_reads_the_gates_and_approves_from_the_inbox(
    page, live_server, live_story: Story, approver: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, approver)
    card = page.locator(f"#transition-{live_story.pending.pk}")
    expect(card).to_contain_text("better recall on Q3 data")
    gates = card.locator(".gates li")
    expect(gates).to_have_count(3)
    expect(gates.nth(0)).to_contain_text("f1 = 0.93 on dataset dddddd… meets the threshold >= 0.8")
    expect(gates.nth(1)).to_contain_text("f1 = 0.93 vs champion 0.9")
    expect(gates.nth(1)).to_contain_text("improvement +0.03")
    expect(gates.nth(2)).to_contain_text("0 of 1 approval")
    expect(card.locator(".gate-icon")).to_have_text(["✓", "✓", "…"])
    # Local time for the reader, UTC on hover.
    stamp = card.locator("time").first
    assert stamp.get_attribute("title").endswith(" UTC")
    assert "UTC" not in stamp.inner_text()
    page.screenshot(path=str(screenshots / "inbox-approver.png"), full_page=True)

    card.get_by_label("Comment").fill("Recall gain confirmed on the Q3 holdout")
    card.get_by_role("button", name="Approve").click()
    expect(page.locator(".message-success")).to_contain_text(
        f"Approved request #{live_story.pending.pk}: fraud-detector v2 is now in production."
    )
    expect(page.locator(f"#transition-{live_story.pending.pk}")).to_have_count(0)

    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="fraud-detector").click()
    production = page.locator(".stage-card").filter(has_text="Production")
    expect(production).to_contain_text("v2")
    expect(page.locator("#timeline-title + .table-wrap")).to_contain_text("Recall gain confirmed on the Q3 holdout")
    page.screenshot(path=str(screenshots / "model-after-approval.png"), full_page=True)
    live_story.v2.refresh_from_db()
    assert live_story.v2.stage == Stage.PRODUCTION


def test_requester_gets_no_approve_button(
    page, live_server, live_story: Story, owner: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, owner, screenshot=screenshots / "login.png")
    card = page.locator(f"#transition-{live_story.pending.pk}")
    expect(card).to_contain_text("your request")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    expect(card.get_by_role("button", name="Reject")).to_have_count(0)
    expect(card.get_by_role("button", name="Cancel your request")).to_be_visible()
    page.screenshot(path=str(screenshots / "inbox-requester.png"), full_page=True)
    # The same page on a phone-sized window still reads top to bottom.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(card.get_by_role("button", name="Cancel your request")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "inbox-requester-narrow.png"), full_page=True)


def test_approver_rolls_back_from_the_model_page(
    page, live_server, live_story: Story, approver: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    transition_approve(transition=live_story.pending, actor=approver.user, comment="ship it")
    log_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/models/fraud-detector/")
    rollback = page.locator("section.rollback")
    expect(rollback.get_by_label("Back to")).to_contain_text("v1")
    rollback.get_by_label("Reason (required)").fill("v2 floods the manual review queue")
    rollback.get_by_role("button", name="Roll back").click()
    expect(page.locator(".message-success")).to_contain_text(
        "Rolled back fraud-detector: rolled back from v2 to v1; v1 is now in production."
    )
    expect(page.locator(".stage-card").filter(has_text="Production")).to_contain_text("v1")
    timeline = page.locator("#timeline-title + .table-wrap")
    expect(timeline.locator("tbody tr").first).to_contain_text("v2 floods the manual review queue")
    expect(timeline.locator("tbody tr").first).to_contain_text("Rollback")

    # Tables sort on a header click: versions ascending, then descending.
    versions = page.locator("#versions-title + .table-wrap table")
    versions.locator("th", has_text="Version").click()
    expect(versions.locator("tbody tr td:first-child")).to_have_text(["v1", "v2", "v3"])
    versions.locator("th", has_text="Version").click()
    expect(versions.locator("tbody tr td:first-child")).to_have_text(["v3", "v2", "v1"])
    page.screenshot(path=str(screenshots / "model-rollback.png"), full_page=True)
    live_story.v1.refresh_from_db()
    assert live_story.v1.stage == Stage.PRODUCTION


def test_models_version_and_audit_pages_render(
    page, live_server, live_story: Story, viewer: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, viewer)
    expect(page.locator("main button")).to_have_count(0)
    page.get_by_role("link", name="Models").click()
    expect(page.locator("table")).to_contain_text("fraud-detector")
    page.screenshot(path=str(screenshots / "models.png"), full_page=True)

    page.goto(f"{live_server.url}/models/fraud-detector/versions/2/")
    compare = page.locator("#compare-title + p + .table-wrap")
    expect(compare.locator("tr", has_text="f1")).to_contain_text("+0.03")
    expect(page.get_by_text("No evaluation yet:", exact=False)).to_be_visible()
    page.screenshot(path=str(screenshots / "version.png"), full_page=True)

    page.get_by_role("link", name="Audit").click()
    expect(page.locator(".chain-valid")).to_contain_text("Hash chain intact")
    page.screenshot(path=str(screenshots / "audit.png"), full_page=True)


# --- jobs, workers, evaluations ------------------------------------------------------


@pytest.mark.usefixtures("quiet_scheduler")
def test_a_job_log_tail_updates_while_the_job_runs(
    page, live_server, live_story: Story, owner: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    worker_create("gpu-1", gpus=2)
    job = job_running(job_create(actor=owner, model=live_story.model, version=live_story.v2, spec=GPU_SPEC))
    job_log_append(job_id=job.pk, attempt=1, text="loading data: 48210 rows\n")
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    log = page.locator("pre.log")
    expect(log).to_contain_text("loading data: 48210 rows")
    expect(page.locator("[data-job-state] .badge")).to_have_text("running")
    expect(page.get_by_role("button", name="Stop this job")).to_be_visible()
    # Anything the page remembers survives only if it is never reloaded.
    page.evaluate("window.__sameDocument = true")

    for epoch, loss in ((1, 0.412), (2, 0.331), (3, 0.297)):
        job_log_append(job_id=job.pk, attempt=1, text=f"epoch {epoch}/3 loss={loss}\n")
        Job.objects.filter(pk=job.pk).update(progress=epoch / 4)
        expect(log).to_contain_text(f"epoch {epoch}/3 loss={loss}")
    expect(page.locator("[data-job-percent]")).to_have_text("75%")
    assert page.evaluate("window.__sameDocument") is True
    assert log.inner_text().splitlines() == [
        "loading data: 48210 rows",
        "epoch 1/3 loss=0.412",
        "epoch 2/3 loss=0.331",
        "epoch 3/3 loss=0.297",
    ]
    page.screenshot(path=str(screenshots / "job-running.png"), full_page=True)

    job_log_append(job_id=job.pk, attempt=1, text="registered fraud-detector v4\n")
    job_finished(Job.objects.get(pk=job.pk), result={"version": 4, "f1": 0.931})
    badge = page.locator("[data-job-state] .badge")
    expect(badge).to_have_text("succeeded")
    expect(badge).to_have_class(re.compile(r"status-succeeded"))
    expect(log).to_contain_text("registered fraud-detector v4")
    expect(page.locator("[data-job-percent]")).to_have_text("100%")
    expect(page.locator("[data-log-status]")).to_contain_text("End of the log. The job has succeeded.")
    expect(page.get_by_role("button", name="Stop this job")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(screenshots / "job-finished.png"), full_page=True)

    # The reload the page offers shows the result.
    page.get_by_role("link", name="Reload for its result, exit code and cost.").click()
    expect(page.locator("#result-title + details")).to_contain_text('"f1": 0.931')


@pytest.mark.usefixtures("quiet_scheduler")
def test_jobs_and_workers_pages_render(
    page, live_server, live_story: Story, owner: Actor, approver: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    worker_create("gpu-1", gpus=4, labels={"zone": "eu", "disk": "nvme"})
    worker_create("gpu-2", gpus=2, labels={"zone": "us"})
    worker_create("cpu-1", gpus=0)
    model = live_story.model
    running = job_running(
        job_create(actor=owner, model=model, version=live_story.v2, spec=GPU_SPEC), worker="gpu-1", gpus=(0, 1)
    )
    job_log_append(job_id=running.pk, attempt=1, text="epoch 1/3 loss=0.41\n")
    job_running(job_create(actor=owner, model=model, kind="evaluate", version=live_story.v3), worker="gpu-2", gpus=(0,))
    job_create(actor=owner, model=model, kind="train", priority=10)
    job_create(actor=owner, model=model, kind="batch_infer")
    job_finished(job_running(job_create(actor=owner, model=model), worker="cpu-1", gpus=()), result={"f1": 0.93})
    job_finished(job_running(job_create(actor=owner, model=model), worker="gpu-2", gpus=(1,)), state=JobState.FAILED)
    pool_quota_set(actor=None, pool=running.pool, team=team_ensure(name="fraud"), gpu_limit=4)

    log_in(page, live_server.url, approver)
    page.get_by_role("link", name="Jobs").click()
    queue = page.locator("#queue-title ~ .table-wrap").first
    expect(queue.locator("tbody tr")).to_have_count(4)
    expect(queue.locator(f"#job-{running.pk}")).to_contain_text("gpu-1 · GPU 0, 1")
    expect(page.locator("#history-title ~ .table-wrap").first.locator("tbody tr")).to_have_count(2)
    page.screenshot(path=str(screenshots / "jobs.png"), full_page=True)

    page.get_by_label("State").select_option("running")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "jobs-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name="Workers").click()
    gpu1 = page.locator("#worker-gpu-1")
    expect(gpu1.locator(".gpus-in-use")).to_contain_text("in use: 0, 1")
    expect(gpu1.locator(".gpu-busy")).to_have_count(2)
    expect(gpu1.get_by_role("link", name=f"#{running.pk}")).to_be_visible()
    stamp = gpu1.locator("time")
    assert stamp.get_attribute("title").endswith(" UTC") and "UTC" not in stamp.inner_text()
    expect(page.locator("#pool-default")).to_contain_text("3 workers · 6 GPUs")
    page.screenshot(path=str(screenshots / "workers.png"), full_page=True)


def test_version_page_shows_the_evaluation_with_its_plots(
    page, live_server, live_story: Story, viewer: Actor, screenshots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    evaluation = evaluation_create(version=live_story.v2, report_dir=tmp_path / "report", champion=live_story.v1)
    log_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/models/fraud-detector/versions/2/")
    section = page.locator("section", has=page.locator("#evaluation-title"))
    expect(section).to_contain_text("95% CI [0.9102, 0.9488]")
    expect(section).to_contain_text("5-fold CV f1: 0.9276 ± 0.0114")
    expect(section.locator("table.deltas")).to_contain_text("better: the interval is clear of 0")
    images = section.locator(".plots img")
    expect(images).to_have_count(len(evaluation.plots))
    for index in range(len(evaluation.plots)):
        images.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.plots img')].every(img => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=str(screenshots / "version-evaluation.png"), full_page=True)


# --- deployments ---------------------------------------------------------------------


@pytest.mark.usefixtures("quiet_scheduler")
def test_approver_starts_a_canary_at_20_percent_then_aborts_it_from_the_model_page(
    page, live_server, live_story: Story, owner: Actor, approver: Actor, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    deployment = deployment_services.deployment_create(actor=owner.user, model=live_story.model, replicas=2)
    for replica in Replica.objects.filter(deployment=deployment, state=ReplicaState.STARTING):
        deployment_services.replica_ready(
            replica_id=replica.pk, url=f"http://10.0.0.7:{5500 + replica.pk}", host="gpu-1"
        )
    log_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/models/fraud-detector/")
    card = page.locator(f"#deployment-{deployment.pk}")
    primary = card.locator('tr[data-route-mode="primary"] [data-weight]')
    canary = card.locator('tr[data-route-mode="canary"] [data-weight]')
    expect(card.locator(".deployment-state")).to_contain_text("ready")
    expect(primary).to_have_text("100%")
    expect(card.locator("table.replicas tbody tr")).to_have_count(2)

    start = card.locator("form.canary-start")
    start.get_by_label("Canary version").select_option("2")
    start.get_by_label("Weight (%)").fill("20")
    start.get_by_label("Reason (optional)").fill("first look at v2 on live traffic")
    start.get_by_role("button", name="Start canary").click()

    expect(page.locator(".message-success")).to_contain_text(
        "Started a canary of v2 on fraud-detector/production: v1 primary 80% · v2 canary 20%."
    )
    expect(primary).to_have_text("80%")
    expect(canary).to_have_text("20%")
    expect(card.locator("table.revisions tbody tr").first).to_contain_text("canary_start")
    # The canary's own replicas are starting: placed as jobs, no heartbeat yet.
    expect(card.locator("table.replicas tbody tr")).to_have_count(4)
    page.screenshot(path=str(screenshots / "deployment-canary.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "deployment-canary-narrow.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})

    abort = card.locator("form.canary-abort")
    abort.get_by_label("Why abort (required)").fill("p99 latency doubled on v2")
    abort.get_by_role("button", name="Abort canary").click()

    expect(page.locator(".message-success")).to_contain_text(
        "Aborted the canary of fraud-detector/production: v1 primary 100%."
    )
    expect(primary).to_have_text("100%")
    expect(card.locator('tr[data-route-mode="canary"]')).to_have_count(0)
    latest = card.locator("table.revisions tbody tr").first
    expect(latest).to_contain_text("canary_abort")
    expect(latest).to_contain_text("p99 latency doubled on v2")
    expect(latest).to_contain_text("v1 primary 80% · v2 canary 20%")
    page.screenshot(path=str(screenshots / "deployment-aborted.png"), full_page=True)

    card.get_by_role("link", name="production").click()
    expect(page.get_by_role("heading", name="fraud-detector / production")).to_be_visible()
    expect(page.locator("#revisions-title + p + .table-wrap tbody tr")).to_have_count(3)
    page.screenshot(path=str(screenshots / "deployment-page.png"), full_page=True)
    routes = [(r.version.version, r.mode, r.weight) for r in deployment.routes.select_related("version")]
    assert routes == [(1, "primary", 1.0)]
