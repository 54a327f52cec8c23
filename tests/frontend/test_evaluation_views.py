"""The evaluation on the version page, and its plots served through the UI for whoever
may see the version (404 for anyone else, and for any name the evaluation did not log)."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend.evaluation_report import evaluation_report
from lifecycle.evaluation.models import Evaluation
from tests.conftest import Actor
from tests.frontend.conftest import Story, client_for, evaluation_create, png_write

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return response.content.decode()


def _evaluation_section(page: str) -> str:
    return page.split('id="evaluation-title"')[1].split("</section>")[0]


@pytest.fixture
def evaluated(story: Story, tmp_path: Path) -> Evaluation:
    """v2 evaluated beside the champion v1; its plots in a local report directory."""
    return evaluation_create(version=story.v2, report_dir=tmp_path / "report", champion=story.v1)


def test_version_page_shows_the_latest_evaluation(evaluated: Evaluation, viewer: Actor) -> None:
    section = _evaluation_section(_text(client_for(viewer).get("/models/fraud-detector/versions/2/")))
    assert 'href="/models/fraud-detector/versions/1/">v1</a> (the champion then)' in section
    # The primary metric with its interval and cross-validation.
    assert '<p class="big">0.9312</p>' in section
    assert "95% CI [0.9102, 0.9488]" in section
    assert "5-fold CV f1: 0.9276 ± 0.0114" in section
    # The paired delta against the champion, with its interval and what it means.
    deltas = section.split('class="deltas"')[1].split("</table>")[0]
    assert '<td class="better">+0.0312</td>' in deltas and "95% [+0.0105, +0.0498]" in deltas
    assert "better: the interval is clear of 0" in deltas
    # Every scalar metric, the confusion matrix, the slices and the importance.
    metrics = section.split('class="sortable eval-metrics"')[1].split("</table>")[0]
    assert metrics.index("<td>f1 <span") < metrics.index("<td>accuracy")
    assert '<td>roc_auc</td><td data-sort="0.97">0.97</td>' in metrics
    assert "confusion_matrix" not in metrics
    confusion = section.split('class="confusion"')[1].split("</table>")[0]
    assert "<tr><th>1</th><td>8</td><td>106</td></tr>" in confusion
    slices = section.split('class="sortable slices"')[1].split("</table>")[0]
    assert "<td>EU</td><td>180</td>" in slices and ">0.91<" in slices
    assert "<td>amount</td>" in section.split('class="sortable importance"')[1]


def test_version_page_shows_the_plots_through_the_ui(evaluated: Evaluation, viewer: Actor) -> None:
    section = _evaluation_section(_text(client_for(viewer).get("/models/fraud-detector/versions/2/")))
    for plot in evaluated.plots:
        url = f"/models/fraud-detector/versions/2/evaluations/{evaluated.pk}/plots/{plot}"
        assert f'<img src="{url}" alt="{plot}"' in section


def test_a_plot_is_served_as_png(evaluated: Evaluation, viewer: Actor, tmp_path: Path) -> None:
    plot = evaluated.plots[0]
    response = client_for(viewer).get(f"/models/fraud-detector/versions/2/evaluations/{evaluated.pk}/plots/{plot}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content == (tmp_path / "report" / plot).read_bytes()
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "private" in response["Cache-Control"]


def test_a_plot_needs_a_login(evaluated: Evaluation) -> None:
    from django.test import Client

    response = Client().get(f"/models/fraud-detector/versions/2/evaluations/{evaluated.pk}/plots/{evaluated.plots[0]}")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_another_teams_plot_is_404(evaluated: Evaluation, outsider: Actor) -> None:
    response = client_for(outsider).get(
        f"/models/fraud-detector/versions/2/evaluations/{evaluated.pk}/plots/{evaluated.plots[0]}"
    )
    assert response.status_code == 404 and b"PNG" not in response.content


def test_only_the_plots_the_evaluation_logged_are_served(evaluated: Evaluation, viewer: Actor, tmp_path: Path) -> None:
    client = client_for(viewer)
    base = f"/models/fraud-detector/versions/2/evaluations/{evaluated.pk}/plots/"
    png_write(tmp_path / "report" / "secret.png")
    (tmp_path / "report" / "report.json").write_text("{}")
    for name in ("secret.png", "report.json", "..%2Fsecret.png", "%2E%2E"):
        assert client.get(base + name).status_code == 404, name
    # The evaluation must be the version's own.
    assert (
        client.get(
            f"/models/fraud-detector/versions/1/evaluations/{evaluated.pk}/plots/{evaluated.plots[0]}"
        ).status_code
        == 404
    )
    # A logged plot that has gone from the store is 404, not a 500.
    (tmp_path / "report" / evaluated.plots[1]).unlink()
    response = client.get(base + evaluated.plots[1])
    assert response.status_code == 404 and "is no longer at" in _text(response)


def test_earlier_evaluations_are_listed_under_the_latest(story: Story, viewer: Actor, tmp_path: Path) -> None:
    first = evaluation_create(version=story.v2, report_dir=tmp_path / "first", champion=story.v1)
    Evaluation.objects.filter(pk=first.pk).update(metrics={"f1": 0.9111})
    latest = evaluation_create(version=story.v2, report_dir=tmp_path / "second", champion=story.v1)
    section = _evaluation_section(_text(client_for(viewer).get("/models/fraud-detector/versions/2/")))
    assert f"/evaluations/{latest.pk}/plots/" in section and f"/evaluations/{first.pk}/plots/" not in section
    earlier = section.split("Earlier evaluations")[1]
    assert "<td>0.9111</td>" in earlier


def test_a_champion_evaluation_has_no_deltas_of_its_own(story: Story, viewer: Actor, tmp_path: Path) -> None:
    evaluation = evaluation_create(version=story.v1, report_dir=tmp_path / "r")
    Evaluation.objects.filter(pk=evaluation.pk).update(role="champion")
    section = _evaluation_section(_text(client_for(viewer).get("/models/fraud-detector/versions/1/")))
    assert "Evaluated as the champion beside a candidate" in section


def test_version_without_an_evaluation_says_how_to_start_one(story: Story, viewer: Actor) -> None:
    section = _evaluation_section(_text(client_for(viewer).get("/models/fraud-detector/versions/3/")))
    assert "No evaluation yet: <code>POST /api/v1/models/fraud-detector/versions/3/evaluations/</code>" in section


# --- the report's reading of what an evaluation recorded ------------------------------


def test_report_reads_a_full_evaluation() -> None:
    report = evaluation_report(
        metrics={"rmse": 2.5, "mae": 1.5, "r2": 0.8},
        details={"ci": {"rmse": {"low": 2.1, "high": 2.9, "level": 0.9}}, "cv": {"error": "too few rows"}},
        deltas={"rmse": {"delta": -0.4, "ci_low": -0.6, "ci_high": -0.1, "level": 0.95}},
        primary="rmse",
    )
    assert [row.name for row in report.metrics] == ["rmse", "mae", "r2"]
    assert (report.primary_value, report.primary_ci, report.ci_level) == (2.5, (2.1, 2.9), 0.9)
    assert report.cv is not None and report.cv.error == "too few rows"
    delta = report.deltas[0]
    # Lower is better for an error: a negative delta clear of zero is an improvement.
    assert (delta.direction, delta.improved, delta.verdict) == ("lower", True, "better")


@pytest.mark.parametrize(
    ("ci", "verdict"),
    [
        ((0.01, 0.05), "better"),
        ((-0.05, -0.01), "worse"),
        ((-0.01, 0.03), "inconclusive"),
        ((None, 0.1), "no interval"),
    ],
)
def test_report_reads_the_delta_interval(ci: tuple, verdict: str) -> None:
    report = evaluation_report(
        metrics={}, details={}, deltas={"f1": {"delta": 0.02, "ci_low": ci[0], "ci_high": ci[1]}}, primary="f1"
    )
    assert report.deltas[0].verdict == verdict


def test_report_leaves_out_what_is_missing_or_malformed() -> None:
    report = evaluation_report(
        metrics={"f1": None, "accuracy": "n/a", "auc": float("nan"), "ok": True, "confusion_matrix": {"labels": [1]}},
        details={"ci": "oops", "cv": [1, 2], "slices": {"a": 1}, "importance": "x"},
        deltas={"f1": {"delta": None}, "auc": "bad"},
        primary="f1",
    )
    assert report.metrics == [] and report.primary_value is None and report.primary_ci is None
    assert report.confusion is None and report.cv is None
    assert report.deltas == [] and report.slices == [] and report.importance == []


def test_version_page_costs_the_same_queries_however_many_evaluations(
    story: Story, viewer: Actor, tmp_path: Path
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        client = client_for(viewer)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/models/fraud-detector/versions/2/").status_code == 200
        return len(captured)

    evaluation_create(version=story.v2, report_dir=tmp_path / "0", champion=story.v1)
    before = queries()
    for number in range(1, 4):
        evaluation_create(version=story.v2, report_dir=tmp_path / str(number), champion=story.v1)
    assert queries() == before
