"""Which buttons and forms a page offers to whom.

Display only: every action is checked again by the service it calls, so a forged
request is refused whatever the page showed. The roles come from
``registry.permissions``, the one place that knows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from lifecycle.deployments.choices import DeploymentState, RouteMode
from lifecycle.deployments.models import Deployment
from lifecycle.governance.choices import OPEN_TRANSITION_STATUSES, TransitionStatus
from lifecycle.governance.models import Transition
from lifecycle.jobs.choices import JOB_FINAL_STATES
from lifecycle.jobs.models import Job
from registry.choices import STAGE_TRANSITIONS, Role, Stage
from registry.models import ModelVersion, Team
from registry.permissions import has_role

User = AbstractBaseUser | AnonymousUser


def transitions_with_actions(user: User, transitions: Iterable[Transition]) -> list[Transition]:
    """The transitions, each with ``mine``, ``my_decision``, ``can_decide``, ``can_approve``,
    ``can_cancel`` and ``can_recheck`` set for this user."""
    annotated = []
    for transition in transitions:
        team = transition.model.team_id
        is_open = transition.status in OPEN_TRANSITION_STATUSES
        mine = transition.requested_by_id == user.pk
        my_decision = next((d.decision for d in transition.decisions.all() if d.user_id == user.pk), None)
        already = my_decision is not None
        transition.mine = mine
        transition.my_decision = my_decision
        transition.can_decide = is_open and not mine and not already and has_role(user, team, Role.APPROVER)
        # Approving a blocked request cannot unblock it: its failed gates must be fixed and rechecked.
        transition.can_approve = transition.can_decide and transition.status == TransitionStatus.PENDING
        transition.can_cancel = is_open and (mine or has_role(user, team, Role.ADMIN))
        transition.can_recheck = is_open and has_role(user, team, Role.DEVELOPER)
        annotated.append(transition)
    return annotated


def can_request_transition(user: User, team: Team | int) -> bool:
    return has_role(user, team, Role.DEVELOPER)


def can_roll_back(user: User, team: Team | int) -> bool:
    return has_role(user, team, Role.APPROVER)


def requestable_stages(version: ModelVersion) -> list[tuple[str, str]]:
    """Stages the version may be asked to move to from where it is, in lifecycle order."""
    allowed = STAGE_TRANSITIONS.get(version.stage, frozenset())
    if version.stage == Stage.PRODUCTION:
        # transition_request refuses this one: production is archived only by promoting
        # a replacement or by a rollback (the model page's rollback form).
        allowed = allowed - {Stage.ARCHIVED}
    return [(value, label) for value, label in Stage.choices if value in allowed]


def can_cancel_job(user: User, job: Job) -> bool:
    """What ``job_cancel`` allows: the submitter, or an approver of the job's team, while
    the job is not over."""
    if job.state in JOB_FINAL_STATES:
        return False
    return job.created_by_id == user.pk or has_role(user, job.team_id, Role.APPROVER)


@dataclass(frozen=True)
class DeploymentActions:
    """The forms a deployment's card offers: ``canary`` covers starting one, changing
    its weight, promoting and aborting it (``canary_set``, ``canary_promote``,
    ``canary_abort``: approvers); ``shadow`` adding a shadow (``shadow_set``:
    developers); ``stop`` stopping the deployment (``deployment_stop``: approvers);
    ``settings`` changing its monitoring windows, log sample rate and cache
    (``deployment_settings_update``: developers)."""

    canary: bool = False
    shadow: bool = False
    stop: bool = False
    settings: bool = False

    @property
    def any(self) -> bool:
        """Any form that changes the routes (the settings have a form of their own)."""
        return self.canary or self.shadow or self.stop


def deployment_actions(user: User, deployment: Deployment) -> DeploymentActions:
    """What the user may change on the deployment; nothing once it is stopped (every
    service refuses a stopped deployment)."""
    if deployment.state == DeploymentState.STOPPED:
        return DeploymentActions()
    team = deployment.model.team_id
    approver = has_role(user, team, Role.APPROVER)
    developer = has_role(user, team, Role.DEVELOPER)
    return DeploymentActions(canary=approver, shadow=developer, stop=approver, settings=developer)


def canary_versions(deployment: Deployment, deployable: Iterable[ModelVersion]) -> list[int]:
    """Versions a canary may be started with: deployable and not the primary
    (``canary_set`` takes a shadowed version off its shadow route)."""
    primary = {route.version_id for route in deployment.routes.all() if route.mode == RouteMode.PRIMARY}
    return [version.version for version in deployable if version.pk not in primary]


def shadow_versions(deployment: Deployment, deployable: Iterable[ModelVersion]) -> list[int]:
    """Versions a shadow may mirror: deployable and without a route in the deployment
    (a new shadow replaces the current one)."""
    routed = {route.version_id for route in deployment.routes.all()}
    return [version.version for version in deployable if version.pk not in routed]
