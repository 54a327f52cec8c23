from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """What happens to models: one package per stage (governance, design, jobs, training,
    evaluation, deployments, monitoring, derivations), wired together here, the one place that
    sees them all."""

    name = "lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lifecycle.deployments.services import canary_started_at, on_production_changed, replica_outcome_apply
        from lifecycle.derivations.methods import params_problems
        from lifecycle.derivations.services import derivation_needed, derivation_outcome_apply
        from lifecycle.design import services as design
        from lifecycle.evaluation.services import evaluation_needed, evaluation_outcome_apply
        from lifecycle.governance import receivers
        from lifecycle.governance.signals import (
            canary_start_wanted,
            derivation_wanted,
            evaluation_wanted,
            production_changed,
        )
        from lifecycle.jobs.choices import JobKind
        from lifecycle.jobs.outcomes import job_outcome_handler_register
        from lifecycle.monitoring import policies as monitoring_policies
        from lifecycle.monitoring.services.predictions import on_policy_changed
        from lifecycle.monitoring.services.references import on_dataset_registered
        from lifecycle.training.services import training_outcome_apply
        from registry.signals import registry_changed

        # The policy validator the registry calls: governance's gate rules and the
        # monitoring stage's monitors (a derive action's parameters by the update
        # stage's own check), validated together.
        monitoring_policies.install(derive_params_check=params_problems)
        design.install()
        registry_changed.connect(receivers.on_registry_changed, dispatch_uid="lifecycle.audit")
        evaluation_wanted.connect(evaluation_needed, dispatch_uid="lifecycle.evaluation_wanted")
        job_outcome_handler_register(kinds=(JobKind.TRAIN, JobKind.RETRAIN), handler=training_outcome_apply)
        job_outcome_handler_register(kinds=(JobKind.EVALUATE,), handler=evaluation_outcome_apply)
        job_outcome_handler_register(kinds=(JobKind.DEPLOY,), handler=replica_outcome_apply)
        production_changed.connect(on_production_changed, dispatch_uid="lifecycle.deployments.primary")
        canary_start_wanted.connect(canary_started_at, dispatch_uid="lifecycle.deployments.canary_start")
        registry_changed.connect(on_policy_changed, dispatch_uid="lifecycle.monitoring.pii_policy")
        registry_changed.connect(on_dataset_registered, dispatch_uid="lifecycle.monitoring.reference_profile")
        job_outcome_handler_register(kinds=(JobKind.DERIVE,), handler=derivation_outcome_apply)
        derivation_wanted.connect(derivation_needed, dispatch_uid="lifecycle.derivations.wanted")
