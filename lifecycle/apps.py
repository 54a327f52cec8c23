from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """What happens to models: one package per stage (governance, jobs, training,
    evaluation), wired together here, the one place that sees them all."""

    name = "lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lifecycle.evaluation.services import evaluation_needed, evaluation_outcome_apply
        from lifecycle.governance import policies, receivers
        from lifecycle.governance.signals import evaluation_wanted
        from lifecycle.jobs.choices import JobKind
        from lifecycle.jobs.outcomes import job_outcome_handler_register
        from lifecycle.training.services import training_outcome_apply
        from registry.signals import registry_changed

        policies.install()
        registry_changed.connect(receivers.on_registry_changed, dispatch_uid="lifecycle.audit")
        evaluation_wanted.connect(evaluation_needed, dispatch_uid="lifecycle.evaluation_wanted")
        job_outcome_handler_register(kinds=(JobKind.TRAIN, JobKind.RETRAIN), handler=training_outcome_apply)
        job_outcome_handler_register(kinds=(JobKind.EVALUATE,), handler=evaluation_outcome_apply)
