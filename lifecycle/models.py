"""Every model of the lifecycle app, gathered where Django looks for them.

Each stage keeps its models in its own package (``lifecycle/<stage>/models.py``); they
all belong to the ``lifecycle`` app, so its migrations and admin see one app. Code
imports a model from its stage's package, never from here.
"""

from lifecycle.deployments.models import (  # noqa: F401
    Deployment,
    DeploymentRevision,
    Replica,
    Route,
    RouteTablePublication,
)
from lifecycle.derivations.models import Derivation  # noqa: F401
from lifecycle.design.models import DesignCard, DesignCardRevision  # noqa: F401
from lifecycle.evaluation.models import Evaluation  # noqa: F401
from lifecycle.governance.models import (  # noqa: F401
    Approval,
    AuditRecord,
    OutboxEvent,
    ProductionRecord,
    Transition,
    Webhook,
    WebhookDelivery,
)
from lifecycle.jobs.models import Job, JobLogChunk, PoolQuota, ResourcePool, Worker  # noqa: F401
from lifecycle.monitoring.models import Alert, DriftResult, MonitorWindow, ReferenceProfile  # noqa: F401
from lifecycle.training.models import RetrainSchedule  # noqa: F401
