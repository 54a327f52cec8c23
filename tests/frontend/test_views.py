"""The web UI through Django's test client: login, permissions exactly as the API's,
CSRF, and every form changing state through the same services the API calls."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from lifecycle.governance.models import Approval, AuditRecord, ProductionRecord, Transition
from registry.choices import MetricSource, Stage
from registry.models import ModelVersion
from registry.services import metrics_record, team_ensure
from tests.conftest import Actor
from tests.frontend.conftest import DIGEST, Story, client_for, evaluated_version, password_of
from tests.registry.factories import artifact_write, model_row_create, version_create

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return response.content.decode()


def _pages(story: Story) -> list[str]:
    name = story.model.name
    return ["/", "/models/", f"/models/{name}/", f"/models/{name}/versions/2/", "/audit/"]


# --- login ---------------------------------------------------------------------------


def test_every_page_requires_login(story: Story) -> None:
    client = Client()
    for url in _pages(story):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_every_form_requires_login(story: Story) -> None:
    client = Client()
    name = story.model.name
    for url in (
        f"/transitions/{story.pending.pk}/approve/",
        f"/models/{name}/rollback/",
        f"/models/{name}/versions/3/transitions/",
    ):
        response = client.post(url, {"reason": "x", "to": "staging"})
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    story.pending.refresh_from_db()
    assert story.pending.status == "pending"


def test_login_form_logs_in_and_returns_to_the_page_asked_for(story: Story, approver: Actor) -> None:
    client = Client()
    page = client.get("/login/?next=/models/")
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in _text(page)
    wrong = client.post("/login/", {"username": "approver", "password": "nope", "next": "/models/"})
    assert wrong.status_code == 200 and "did not match" in _text(wrong)
    response = client.post("/login/", {"username": "approver", "password": password_of(approver), "next": "/models/"})
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert client.get("/models/").status_code == 200


def test_logout_is_a_post(approver: Actor) -> None:
    client = client_for(approver)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_static_files_are_served_without_a_cdn(approver: Actor) -> None:
    client = client_for(approver)
    page = _text(client.get("/"))
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for path in ("/static/frontend/app.css", "/static/frontend/app.js"):
        assert client.get(path).status_code == 200, path


# --- approvals inbox -----------------------------------------------------------------


def test_inbox_shows_pending_requests_with_gate_results_and_numbers(story: Story, approver: Actor) -> None:
    response = client_for(approver).get("/")
    assert response.status_code == 200
    page = _text(response)
    card = page.split(f'id="transition-{story.pending.pk}"')[1].split("</article>")[0]
    assert "fraud-detector" in card and "v2" in card
    assert "better recall on Q3 data" in card and "owner" in card
    assert "just now" in card and '<time datetime="' in card
    assert "f1 = 0.93" in card and "meets the threshold &gt;= 0.8" in card
    assert "vs champion 0.9" in card and "improvement +0.03" in card
    assert "0 of 1 approval" in card
    assert card.count("gate-passed") >= 2 and "gate-waiting" in card
    assert f'action="/transitions/{story.pending.pk}/approve/"' in card
    assert f"/transitions/{story.pending.pk}/reject/" in card


def test_inbox_lists_blocked_requests_in_their_own_section(story: Story, approver: Actor) -> None:
    page = _text(client_for(approver).get("/"))
    pending_part, blocked_part = page.split('id="blocked-title"')
    assert f'id="transition-{story.blocked.pk}"' in blocked_part
    assert f'id="transition-{story.blocked.pk}"' not in pending_part
    card = blocked_part.split(f'id="transition-{story.blocked.pk}"')[1].split("</article>")[0]
    assert "gate-failed" in card and "f1 = 0.5" in card and "&gt;= 0.8" in card
    assert "Approve" not in card and "Reject" in card


def test_requester_sees_their_request_and_a_cancel_button_but_no_approve(story: Story, owner: Actor) -> None:
    page = _text(client_for(owner).get("/"))
    card = page.split(f'id="transition-{story.pending.pk}"')[1].split("</article>")[0]
    assert "your request" in card
    assert "Cancel your request" in card
    assert "/approve/" not in card and "/reject/" not in card


def test_viewer_sees_requests_but_no_buttons(story: Story, viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/"))
    assert f'id="transition-{story.pending.pk}"' in page
    assert "<button" not in page.split("<main>")[1]
    assert "Approvers of team fraud decide on this request." in page


def test_outsider_sees_no_requests_of_another_team(story: Story, outsider: Actor) -> None:
    page = _text(client_for(outsider).get("/"))
    assert "fraud-detector" not in page
    assert "No pending approvals." in page
    assert "/api/v1/models/{name}/versions/{v}/transitions/" in page


def test_approver_approves_with_a_comment_and_the_version_goes_to_production(story: Story, approver: Actor) -> None:
    client = client_for(approver)
    response = client.post(
        f"/transitions/{story.pending.pk}/approve/", {"comment": "ship it", "next": "/"}, follow=True
    )
    assert response.redirect_chain == [("/", 302)]
    assert f"Approved request #{story.pending.pk}: fraud-detector v2 is now in production." in _text(response)
    story.v2.refresh_from_db()
    story.v1.refresh_from_db()
    assert (story.v2.stage, story.v1.stage) == (Stage.PRODUCTION, Stage.ARCHIVED)
    decision = Approval.objects.get(transition=story.pending)
    assert (decision.user, decision.decision, decision.comment) == (approver.user, "approve", "ship it")


def test_approver_rejects_with_a_comment(story: Story, approver: Actor) -> None:
    response = client_for(approver).post(
        f"/transitions/{story.pending.pk}/reject/", {"comment": "not on a Friday"}, follow=True
    )
    assert "Rejected request" in _text(response) and "v2 is in staging; the request is rejected" in _text(response)
    story.pending.refresh_from_db()
    assert story.pending.status == "rejected" and "not on a Friday" in story.pending.status_detail
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.STAGING


def test_forged_approve_by_the_requester_is_refused(story: Story, owner: Actor) -> None:
    # The owner is a developer; make them an approver so that only the requester rule stops them.
    from registry.services import membership_set

    membership_set(user=owner.user, team=team_ensure(name="fraud"), role="approver")
    response = client_for(owner).post(f"/transitions/{story.pending.pk}/approve/", {"comment": "mine"})
    assert response.status_code == 403
    assert "the requester of a transition can never approve it" in _text(response)
    story.pending.refresh_from_db()
    assert story.pending.status == "pending"
    assert not Approval.objects.filter(transition=story.pending).exists()


def test_forged_decisions_by_a_viewer_are_refused(story: Story, viewer: Actor) -> None:
    client = client_for(viewer)
    for verb in ("approve", "reject", "cancel", "recheck"):
        response = client.post(f"/transitions/{story.pending.pk}/{verb}/", {"comment": "x"})
        assert response.status_code == 403, verb
        assert "Not allowed" in _text(response)
    story.pending.refresh_from_db()
    assert story.pending.status == "pending"


def test_an_outsider_gets_404_for_another_teams_transition(story: Story, outsider: Actor) -> None:
    response = client_for(outsider).post(f"/transitions/{story.pending.pk}/approve/", {"comment": "x"})
    assert response.status_code == 404
    story.pending.refresh_from_db()
    assert story.pending.status == "pending"


def test_deciding_twice_is_a_conflict_page(story: Story, approver: Actor) -> None:
    client = client_for(approver)
    client.post(f"/transitions/{story.pending.pk}/approve/", {})
    response = client.post(f"/transitions/{story.pending.pk}/approve/", {})
    assert response.status_code == 409
    assert "it cannot be approved" in _text(response)


def test_requester_cancels_their_own_request(story: Story, owner: Actor) -> None:
    response = client_for(owner).post(f"/transitions/{story.pending.pk}/cancel/", {"next": "/"}, follow=True)
    assert "Cancelled request" in _text(response)
    story.pending.refresh_from_db()
    assert story.pending.status == "cancelled"


def test_recheck_of_a_blocked_request_applies_it_once_the_gate_passes(story: Story, owner: Actor) -> None:
    metrics_record(version=story.v3, metrics={"f1": 0.85}, source=MetricSource.EVALUATION, dataset_digest=DIGEST)
    response = client_for(owner).post(f"/transitions/{story.blocked.pk}/recheck/", {}, follow=True)
    assert "Rechecked request" in _text(response) and "v3 is now in staging." in _text(response)
    story.v3.refresh_from_db()
    assert story.v3.stage == Stage.STAGING


def test_csrf_is_enforced_on_every_form(story: Story, approver: Actor) -> None:
    client = client_for(approver, enforce_csrf_checks=True)
    name = story.model.name
    for url, data in (
        (f"/transitions/{story.pending.pk}/approve/", {"comment": "x"}),
        (f"/transitions/{story.pending.pk}/reject/", {"comment": "x"}),
        (f"/models/{name}/rollback/", {"reason": "x"}),
        (f"/models/{name}/versions/3/transitions/", {"to": "archived"}),
        ("/logout/", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    story.pending.refresh_from_db()
    assert story.pending.status == "pending"
    # The page's own form carries the token, and then the same post goes through.
    page = _text(client.get("/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = client.post(f"/transitions/{story.pending.pk}/approve/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    story.pending.refresh_from_db()
    assert story.pending.status == "applied"


# --- models --------------------------------------------------------------------------


@pytest.fixture
def more_models(story: Story, outsider: Actor) -> None:
    fraud = team_ensure(name="fraud")
    other = model_row_create(
        team=fraud, name="chargeback-risk", description="predicts chargebacks", tags={"domain": "risk"}
    )
    version_create(model=other, stage=Stage.TRAINING)
    ads = model_row_create(team=team_ensure(name="ads"), name="ads-ctr", tags={"domain": "payments"})
    version_create(model=ads, stage=Stage.PRODUCTION)


def _listed(page: str) -> list[str]:
    return re.findall(r'<td><a href="/models/([^/"]+)/">', page)


def test_model_list_shows_the_models_of_my_teams(more_models: None, viewer: Actor, outsider: Actor) -> None:
    page = _text(client_for(viewer).get("/models/"))
    assert _listed(page) == ["chargeback-risk", "fraud-detector"]
    row = page.split('href="/models/fraud-detector/"')[1].split("</tr>")[0]
    assert 'href="/models/fraud-detector/versions/1/">v1<' in row
    assert 'href="/models/fraud-detector/versions/2/">v2<' in row
    assert "domain:payments" in row
    assert _listed(_text(client_for(outsider).get("/models/"))) == ["ads-ctr"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=chargeback", ["chargeback-risk"]),
        ("q=card+payments", ["fraud-detector"]),
        ("team=fraud", ["chargeback-risk", "fraud-detector"]),
        ("team=ads", []),
        ("stage=production", ["fraud-detector"]),
        ("stage=training", ["chargeback-risk"]),
        ("tag=domain:risk", ["chargeback-risk"]),
        ("tag=domain:payments&stage=staging", ["fraud-detector"]),
    ],
)
def test_model_list_search_and_filters(more_models: None, viewer: Actor, query: str, expected: list[str]) -> None:
    response = client_for(viewer).get(f"/models/?{query}")
    assert response.status_code == 200
    assert _listed(_text(response)) == expected
    if not expected:
        assert "No models match these filters." in _text(response)


def test_model_list_refuses_a_bad_filter_with_400(story: Story, viewer: Actor) -> None:
    for query in ("tag=nocolon", "stage=limbo"):
        response = client_for(viewer).get(f"/models/?{query}")
        assert response.status_code == 400, query
        assert "Cannot do that" in _text(response)


def test_model_list_is_paginated(owner: Actor) -> None:
    fraud = team_ensure(name="fraud")
    for number in range(30):
        model_row_create(team=fraud, name=f"model-{number:02d}")
    client = client_for(owner)
    first = _text(client.get("/models/"))
    assert len(_listed(first)) == 25 and "Page 1 of 2" in first and "?page=2" in first
    second = _text(client.get("/models/?page=2"))
    assert _listed(second) == [f"model-{n}" for n in range(25, 30)]


def test_model_list_empty_state_says_what_to_do(owner: Actor) -> None:
    page = _text(client_for(owner).get("/models/"))
    assert "No models yet" in page and "POST /api/v1/models/" in page


def test_model_page_shows_versions_timeline_history_and_lineage(story: Story, viewer: Actor, settings) -> None:
    settings.MLFLOW_UI_URL = "http://mlflow.example:5000"
    page = _text(client_for(viewer).get("/models/fraud-detector/"))
    production = page.split("<h2>Production</h2>")[1].split("</div>")[0]
    assert 'href="/models/fraud-detector/versions/1/">v1<' in production
    staging = page.split("<h2>Staging</h2>")[1].split("</div>")[0]
    assert 'href="/models/fraud-detector/versions/2/">v2<' in staging
    versions = page.split('id="versions-title"')[1].split("</table>")[0]
    assert versions.count("<tr>") == 4  # header and three versions
    assert "stage-production" in versions and "stage-evaluation" in versions
    assert ">0.93<" in versions and ">owner<" in versions
    lineage = page.split('id="lineage-title"')[1].split("</table>")[0]
    assert 'href="/models/fraud-detector/versions/1/">v1<' in lineage  # v2's parent
    assert "fraud-eval" in lineage and DIGEST[:12] in lineage
    assert "http://mlflow.example:5000/#/runs/" in lineage
    timeline = page.split('id="timeline-title"')[1].split("</table>")[0]
    assert "first release" in timeline and "better recall on Q3 data" in timeline and "try the small model" in timeline
    assert "approver approved" in timeline and "looks good" in timeline
    history = page.split('id="history-title"')[1].split("</table>")[0]
    assert "live now" in history and 'href="/models/fraud-detector/versions/1/"' in history


def test_rollback_form_is_shown_only_to_approvers_and_admins(
    story: Story, owner: Actor, viewer: Actor, approver: Actor, fraud_admin: Actor
) -> None:
    for actor, shown in ((owner, False), (viewer, False), (approver, True), (fraud_admin, True)):
        page = _text(client_for(actor).get("/models/fraud-detector/"))
        assert ('action="/models/fraud-detector/rollback/"' in page) is shown, actor.user


def _promote_v2(story: Story, approver: Actor) -> None:
    client_for(approver).post(f"/transitions/{story.pending.pk}/approve/", {})
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.PRODUCTION


def test_rollback_through_the_form(story: Story, approver: Actor) -> None:
    _promote_v2(story, approver)
    client = client_for(approver)
    page = _text(client.get("/models/fraud-detector/"))
    assert '<option value="1">v1</option>' in page
    response = client.post("/models/fraud-detector/rollback/", {"reason": "v2 floods the review queue"}, follow=True)
    assert response.redirect_chain == [("/models/fraud-detector/", 302)]
    assert "Rolled back fraud-detector: rolled back from v2 to v1; v1 is now in production." in _text(response)
    story.v1.refresh_from_db()
    story.v2.refresh_from_db()
    assert (story.v1.stage, story.v2.stage) == (Stage.PRODUCTION, Stage.ROLLED_BACK)
    rollback = Transition.objects.get(kind="rollback")
    assert rollback.reason == "v2 floods the review queue" and rollback.requested_by == approver.user
    assert "v2 floods the review queue" in _text(response).split('id="timeline-title"')[1]
    assert ProductionRecord.objects.filter(version=story.v2, ended_reason="rolled_back").exists()


def test_rollback_needs_a_reason(story: Story, approver: Actor) -> None:
    _promote_v2(story, approver)
    response = client_for(approver).post("/models/fraud-detector/rollback/", {"reason": "  "})
    assert response.status_code == 400 and "a rollback needs a reason" in _text(response)
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.PRODUCTION


def test_rollback_to_a_version_never_in_production_is_400(story: Story, approver: Actor) -> None:
    response = client_for(approver).post("/models/fraud-detector/rollback/", {"reason": "x", "to_version": "3"})
    assert response.status_code == 400 and "was never in production" in _text(response)


def test_forged_rollback_by_a_developer_is_refused(story: Story, owner: Actor, approver: Actor) -> None:
    _promote_v2(story, approver)
    response = client_for(owner).post("/models/fraud-detector/rollback/", {"reason": "I want v1"})
    assert response.status_code == 403
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.PRODUCTION


def test_another_teams_model_and_version_are_404(story: Story, outsider: Actor) -> None:
    client = client_for(outsider)
    for url in (
        "/models/fraud-detector/",
        "/models/fraud-detector/versions/1/",
        "/models/no-such-model/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "no model named" in _text(response)
    for url, data in (
        ("/models/fraud-detector/rollback/", {"reason": "x"}),
        ("/models/fraud-detector/versions/3/transitions/", {"to": "archived"}),
    ):
        assert client.post(url, data).status_code == 404, url
    story.v3.refresh_from_db()
    assert story.v3.stage == Stage.EVALUATION


def test_a_missing_version_is_404(story: Story, viewer: Actor) -> None:
    response = client_for(viewer).get("/models/fraud-detector/versions/99/")
    assert response.status_code == 404 and "has no version 99" in _text(response)


# --- versions ------------------------------------------------------------------------


def test_version_page_shows_metrics_with_source_digest_and_history(story: Story, viewer: Actor) -> None:
    metrics_record(version=story.v2, metrics={"f1": 0.94}, source=MetricSource.EVALUATION, dataset_digest=DIGEST)
    page = _text(client_for(viewer).get("/models/fraud-detector/versions/2/"))
    metrics = page.split('id="metrics-title"')[1].split("</table>")[0]
    assert ">0.94<" in metrics and ">0.93<" in metrics and "superseded" in metrics
    assert "evaluation" in metrics and DIGEST[:12] in metrics and '<time datetime="' in metrics


def test_version_page_compares_the_candidate_with_the_champion(story: Story, viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/models/fraud-detector/versions/2/"))
    comparison = page.split('id="compare-title"')[1].split("</table>")[0]
    assert 'href="/models/fraud-detector/versions/1/">v1</a> in production' in comparison
    f1_row = comparison.split("<td>f1</td>")[1].split("</tr>")[0]
    assert ">0.93<" in f1_row and ">0.9<" in f1_row and "+0.03" in f1_row and 'class="better"' in f1_row
    own = _text(client_for(viewer).get("/models/fraud-detector/versions/1/"))
    assert "This is the production version." in own


def test_version_page_shows_confidence_bounds_that_the_gate_recorded(story: Story, viewer: Actor) -> None:
    gates = story.pending.gates
    for gate in gates:
        if gate["rule"] == "beats_champion":
            gate["data"].update(
                candidate_ci_low=0.91, candidate_ci_high=0.95, champion_ci_low=0.88, champion_ci_high=0.92
            )
    Transition.objects.filter(pk=story.pending.pk).update(gates=gates)
    page = _text(client_for(viewer).get("/models/fraud-detector/versions/2/"))
    f1_row = page.split('id="compare-title"')[1].split("<td>f1</td>")[1].split("</tr>")[0]
    assert "[0.91, 0.95]" in f1_row and "[0.88, 0.92]" in f1_row


def test_version_page_without_a_report_or_signature_says_so(story: Story, viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/models/fraud-detector/versions/2/"))
    assert "No evaluation yet: <code>POST /api/v1/models/fraud-detector/versions/2/evaluations/</code>" in page
    assert "No signature recorded." in page


def test_version_page_shows_signature_tags_report_and_local_files(story: Story, viewer: Actor, tmp_path) -> None:
    directory = artifact_write(tmp_path / "artifact")
    (directory / "evaluation").mkdir()
    (directory / "evaluation" / "roc.png").write_bytes(b"\x89PNG fake")
    version = version_create(model=story.model, artifact_dir=directory, tags={"framework": "sklearn"})
    version.signature = {
        "inputs": [{"name": "amount", "type": "double", "required": True}],
        "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}],
    }
    version.save(update_fields=["signature"])
    page = _text(client_for(viewer).get(f"/models/fraud-detector/versions/{version.version}/"))
    signature = page.split('id="signature-title"')[1].split('id="artifact-title"')[0]
    assert "<td>amount</td><td><code>double</code></td><td>yes</td>" in signature
    assert "tensor int64 (-1)" in signature
    assert "framework:sklearn" in page
    report = page.split('id="report-title"')[1].split("</section>")[0]
    assert "evaluation/roc.png" in report and "No evaluation report yet" not in report
    files = page.split('id="artifact-title"')[1].split("</section>")[0]
    assert version.digest in files
    assert str(directory / "model.pkl") in files and str(directory / "MLmodel") in files
    assert "local directory" in files


def test_version_page_links_each_s3_file_to_a_presigned_url(story: Story, viewer: Actor, settings) -> None:
    from registry import storage

    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # presigning is local; nothing is contacted
    storage._s3_client.cache_clear()
    ModelVersion.objects.filter(pk=story.v2.pk).update(
        artifact_uri="s3://models/fraud/2",
        manifest={"MLmodel": {"sha256": "a" * 64, "size": 10}, "model.pkl": {"sha256": "b" * 64, "size": 20}},
    )
    try:
        page = _text(client_for(viewer).get("/models/fraud-detector/versions/2/"))
    finally:
        storage._s3_client.cache_clear()
    links = re.findall(r'<a href="([^"]+)" download>', page)
    assert len(links) == 2
    assert all(link.startswith("http://127.0.0.1:9/models/fraud/2/") and "X-Amz-Signature" in link for link in links)


def test_request_form_is_offered_to_developers_only(story: Story, owner: Actor, viewer: Actor) -> None:
    url = "/models/fraud-detector/versions/3/"
    assert 'action="/models/fraud-detector/versions/3/transitions/"' in _text(client_for(owner).get(url))
    assert "/transitions/" not in _text(client_for(viewer).get(url)).split('id="transitions-title"')[1]


def test_request_through_the_form_is_applied_when_the_gates_pass(story: Story, owner: Actor) -> None:
    version = evaluated_version(model=story.model, stage=Stage.EVALUATION, f1=0.88, creator=owner.user)
    response = client_for(owner).post(
        f"/models/fraud-detector/versions/{version.version}/transitions/",
        {"to": "staging", "reason": "second candidate"},
        follow=True,
    )
    assert response.redirect_chain == [(f"/models/fraud-detector/versions/{version.version}/", 302)]
    assert f"fraud-detector v{version.version} is now in staging." in _text(response)
    version.refresh_from_db()
    assert version.stage == Stage.STAGING
    transition = Transition.objects.get(version=version)
    assert (transition.requested_by, transition.reason) == (owner.user, "second candidate")


def test_request_that_needs_approval_lands_in_the_inbox(story: Story, owner: Actor, approver: Actor) -> None:
    client_for(approver).post(f"/transitions/{story.pending.pk}/reject/", {})
    response = client_for(owner).post(
        "/models/fraud-detector/versions/2/transitions/", {"to": "production", "reason": "again"}, follow=True
    )
    assert "v2 is in staging; the request is pending (waiting: 0 of 1 approval" in _text(response)
    inbox = _text(client_for(approver).get("/"))
    assert "again" in inbox


def test_bad_and_forged_requests_are_refused(story: Story, owner: Actor, viewer: Actor) -> None:
    url = "/models/fraud-detector/versions/3/transitions/"
    assert client_for(owner).post(url, {"to": "limbo"}).status_code == 400
    assert client_for(owner).post(url, {"to": "production"}).status_code == 302  # blocked by its gates, not refused
    assert client_for(owner).post(url, {"to": "production"}).status_code == 409  # a second open request
    assert client_for(viewer).post(url, {"to": "archived"}).status_code == 403
    duplicate = client_for(owner).post(url, {"to": "staging"})
    assert duplicate.status_code == 409 and "already blocked" in _text(duplicate)
    story.v3.refresh_from_db()
    assert story.v3.stage == Stage.EVALUATION


# --- audit ---------------------------------------------------------------------------


def test_audit_page_shows_the_trail_and_a_valid_chain(story: Story, viewer: Actor) -> None:
    page = _text(client_for(viewer).get("/audit/"))
    assert "Hash chain intact" in page
    assert "transition.request" in page and "version.stage_change" in page and "model.create" in page
    assert "better recall on Q3 data" in page


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ("action=transition.approve", "looks good", "better recall on Q3 data"),
        ("actor=approver", "looks good", "try the small model"),
        ("model=chargeback-risk", "No audit records match these filters.", "fraud-detector"),
    ],
)
def test_audit_filters(story: Story, viewer: Actor, query: str, present: str, absent: str) -> None:
    table = _text(client_for(viewer).get(f"/audit/?{query}")).split('role="search"')[1].split("</form>")[1]
    assert present in table and absent not in table


def test_audit_page_shows_only_my_teams_records(story: Story, outsider: Actor) -> None:
    page = _text(client_for(outsider).get("/audit/"))
    assert "fraud-detector" not in page and "No audit records for your teams' models yet." in page


def test_audit_page_names_the_first_tampered_record(story: Story, viewer: Actor) -> None:
    tampered = AuditRecord.objects.filter(action="transition.approve").first()
    AuditRecord.objects.filter(pk=tampered.pk).update(reason="nothing to see")
    page = _text(client_for(viewer).get("/audit/"))
    assert f"Hash chain broken at record #{tampered.pk}: its content does not match its hash" in page
    assert 'class="bad-record"' in page


# --- cost ----------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_pages_cost_the_same_number_of_queries_however_many_rows(story: Story, owner: Actor, approver: Actor) -> None:
    from lifecycle.governance.services.transitions import transition_request

    client = client_for(approver)
    urls = ("/", "/models/", "/models/fraud-detector/", "/models/fraud-detector/versions/2/")
    before = {url: _queries(client, url) for url in urls}
    for f1 in (0.91, 0.92, 0.94, 0.95):
        version = evaluated_version(model=story.model, stage=Stage.STAGING, f1=f1, creator=owner.user)
        transition_request(version=version, to=Stage.PRODUCTION, reason=f"candidate {f1}", actor=owner.user)
    client = client_for(approver)
    after = {url: _queries(client, url) for url in urls}
    assert after == before
