"""Which calls finding a run's logged model makes (``mlflow_gateway.run_model``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from registry import mlflow_gateway


class _Page(list):
    token = None


class _Mlflow:
    """A run with ``outputs`` logged models, each of which names the run as its source."""

    def __init__(self, outputs: int) -> None:
        self.models = {
            f"m-{n}": SimpleNamespace(
                model_id=f"m-{n}",
                name=f"model-{n}",
                source_run_id="run-1",
                artifact_location=f"s3://mlflow/1/models/m-{n}/artifacts",
                creation_timestamp=n,
            )
            for n in range(outputs)
        }
        self.calls: list[str] = []

    def get_run(self, run_id: str) -> SimpleNamespace:
        self.calls.append("get_run")
        outputs = [SimpleNamespace(model_id=model_id, step=0) for model_id in self.models]
        return SimpleNamespace(
            data=SimpleNamespace(metrics={"f1": 0.9}),
            info=SimpleNamespace(experiment_id="1", artifact_uri="s3://mlflow/1/run-1/artifacts"),
            outputs=SimpleNamespace(model_outputs=outputs),
        )

    def get_logged_model(self, model_id: str) -> SimpleNamespace:
        self.calls.append("get_logged_model")
        return self.models[model_id]

    def search_logged_models(self, **kwargs: object) -> _Page:
        self.calls.append("search_logged_models")
        return _Page(self.models.values())


@pytest.fixture
def mlflow(monkeypatch):
    def install(outputs: int) -> _Mlflow:
        fake = _Mlflow(outputs)
        monkeypatch.setattr(mlflow_gateway, "client", lambda: fake)
        return fake

    return install


def test_a_run_with_a_few_models_has_each_looked_up_by_id(mlflow):
    fake = mlflow(2)

    found = mlflow_gateway.run_model("run-1", artifact_path="model-0")

    assert found.model_id == "m-0" and found.source.endswith("m-0/artifacts")
    assert fake.calls == ["get_run", "get_logged_model", "get_logged_model"]


def test_a_run_with_many_models_is_searched_once_instead(mlflow):
    fake = mlflow(mlflow_gateway._OUTPUT_LOOKUPS_MAX + 1)

    found = mlflow_gateway.run_model("run-1", artifact_path="model-3")

    assert found.model_id == "m-3"
    assert fake.calls == ["get_run", "search_logged_models"]
