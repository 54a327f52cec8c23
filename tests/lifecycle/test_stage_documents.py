"""Stage changes store the documents of every version they change: the one moved, the
production version it archives, and the versions the stage aliases leave and reach."""

from __future__ import annotations

import pytest
from django.db import transaction

from lifecycle.governance.services.transitions import model_rollback, stage_apply
from registry.choices import Stage
from registry.models import RegisteredModel
from registry.services import version_documents_refresh
from tests.registry.factories import document_assert_current, version_create

pytestmark = pytest.mark.django_db


def _apply(model: RegisteredModel, version, to: str, actor) -> None:
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        stage_apply(model=locked, version=version, to=to, actor=actor, reason="test")


def test_promoting_stores_the_promoted_and_the_archived_versions_documents(owner, fraud_model):
    first = version_create(model=fraud_model)
    second = version_create(model=fraud_model)
    version_documents_refresh(versions=[first, second])
    _apply(fraud_model, first, Stage.EVALUATION, owner.user)  # no alias follows this stage
    document_assert_current(first)
    _apply(fraud_model, first, Stage.STAGING, owner.user)
    document_assert_current(first)
    _apply(fraud_model, first, Stage.PRODUCTION, owner.user)
    document_assert_current(first)
    _apply(fraud_model, second, Stage.PRODUCTION, owner.user)
    document_assert_current(first)  # archived, and the champion alias left it
    document_assert_current(second)


def test_a_rollback_stores_both_versions_documents(owner, approver, fraud_model):
    first = version_create(model=fraud_model)
    second = version_create(model=fraud_model)
    _apply(fraud_model, first, Stage.PRODUCTION, owner.user)
    _apply(fraud_model, second, Stage.PRODUCTION, owner.user)
    document_assert_current(first)
    model_rollback(model=fraud_model, actor=approver.user, reason="v2 misbehaves")
    document_assert_current(first)
    document_assert_current(second)
