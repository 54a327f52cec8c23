"""ModelGate settings, read from the environment (12-factor).

With nothing set, the embedded default runs everything on one machine: SQLite under
``var/``, MLflow on a SQLite store with local artifacts under ``var/``, a Celery broker
that needs no server (kombu's SQLAlchemy transport on SQLite) and artifacts in a local
directory. Production sets ``MODELGATE_ENV=production`` and real URLs; it then refuses
to start with ``DEBUG`` on or without its own ``SECRET_KEY``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config import env
from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.string("MODELGATE_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

MODELGATE_ENV = env.string("MODELGATE_ENV", "development")
if MODELGATE_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"MODELGATE_ENV={MODELGATE_ENV!r} must be one of development, production, test")

_DEFAULT_SECRET = "modelgate-insecure-development-key-change-me"
SECRET_KEY = env.string("SECRET_KEY", _DEFAULT_SECRET)
DEBUG = env.boolean("DEBUG", default=False)
ALLOWED_HOSTS = env.string_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.string_list("CSRF_TRUSTED_ORIGINS", [])

if MODELGATE_ENV == "production":
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off when MODELGATE_ENV=production")
    if SECRET_KEY == _DEFAULT_SECRET or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a secret of at least 32 characters when MODELGATE_ENV=production"
        )
    SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Keys that encrypt stored credentials (webhook secrets): comma-separated Fernet keys,
# the first encrypts and all decrypt. A key derived from SECRET_KEY is always tried last,
# and is the only one when this is empty (config/encryption.py, docs/operations.md).
MODELGATE_SECRET_KEYS = env.fernet_keys("MODELGATE_SECRET_KEYS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry",
    "lifecycle",
    "frontend",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "lifecycle.monitoring.api.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.ApiTrailingSlashMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'modelgate.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 60, minimum=0))
}
# The few lookups every API read makes are server-side prepared statements on
# PostgreSQL; off for a connection pooler that cannot keep them (PgBouncer before 1.21
# in transaction mode).
MODELGATE_PREPARED_STATEMENTS = env.boolean("MODELGATE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; a generous timeout turns lock contention between the
    # web server and the worker into waiting instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# The embedded default serves static files straight from the apps, without collectstatic.
WHITENOISE_USE_FINDERS = MODELGATE_ENV != "production"
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# Bodies above this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.integer("MODELGATE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.CursorPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "registry.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ModelGate API",
    "DESCRIPTION": "Model registry and lifecycle governance on top of MLflow.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "registry.api.schema.error_responses",
    ],
}

# --- MLflow -------------------------------------------------------------------------
MLFLOW_TRACKING_URI = env.url(
    "MLFLOW_TRACKING_URI",
    f"sqlite:///{VAR_DIR / 'mlflow.sqlite3'}",
    schemes=("http", "https", "sqlite", "postgresql", "file"),
)
# MLflow's client retries a dead server for minutes by default; a registry request
# should instead fail fast with 503 and let the caller retry with its Idempotency-Key.
os.environ.setdefault(
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(env.integer("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 1, minimum=0))
)
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(env.integer("MLFLOW_HTTP_REQUEST_TIMEOUT", 15, minimum=1)))
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
MLFLOW_UI_URL = env.string("MLFLOW_UI_URL", MLFLOW_TRACKING_URI if MLFLOW_TRACKING_URI.startswith("http") else "")

# --- Artifacts (S3 or a local directory) --------------------------------------------
MODELGATE_ARTIFACT_ROOT = env.string("MODELGATE_ARTIFACT_ROOT", str(VAR_DIR / "artifacts"))
AWS_ENDPOINT_URL = env.string("AWS_ENDPOINT_URL", "") or None
AWS_DEFAULT_REGION = env.string("AWS_DEFAULT_REGION", "us-east-1")
MODELGATE_S3_SSE = env.string("MODELGATE_S3_SSE", "")
if MODELGATE_S3_SSE not in {"", "AES256", "aws:kms"}:
    raise ImproperlyConfigured(f"MODELGATE_S3_SSE={MODELGATE_S3_SSE!r} must be empty, AES256 or aws:kms")
MODELGATE_S3_SSE_KMS_KEY_ID = env.string("MODELGATE_S3_SSE_KMS_KEY_ID", "")
if MODELGATE_S3_SSE:
    # What MLflow's client uploads from these processes (a registration from a local
    # path, evaluation and training runs) is encrypted the same way.
    _sse = {"ServerSideEncryption": MODELGATE_S3_SSE}
    if MODELGATE_S3_SSE == "aws:kms" and MODELGATE_S3_SSE_KMS_KEY_ID:
        _sse["SSEKMSKeyId"] = MODELGATE_S3_SSE_KMS_KEY_ID
    os.environ.setdefault("MLFLOW_S3_UPLOAD_EXTRA_ARGS", json.dumps(_sse))
MODELGATE_PRESIGN_EXPIRY_SECONDS = env.integer("MODELGATE_PRESIGN_EXPIRY_SECONDS", 3600, minimum=1)
# Server directories whose files API callers may register as a version's source or a
# dataset's uri: any other path would let every developer read the server's files.
# Production reads none unless told; elsewhere the local state directory.
MODELGATE_LOCAL_SOURCE_ROOTS = tuple(
    Path(root).expanduser().resolve()
    for root in env.string_list("MODELGATE_LOCAL_SOURCE_ROOTS", [] if MODELGATE_ENV == "production" else [str(VAR_DIR)])
)
# --- Prediction log (Parquet batches on the artifact store) --------------------------
# Empty: "<MODELGATE_ARTIFACT_ROOT>/prediction-log".
MODELGATE_PREDICTION_LOG_ROOT = env.string("MODELGATE_PREDICTION_LOG_ROOT", "")
# Key of the hash that replaces personal data (the model policy's "pii" columns); by
# default derived from SECRET_KEY. Changing it changes every masked value from then on.
MODELGATE_PII_KEY = env.string("MODELGATE_PII_KEY", "")
# Calls queued in the gateway before new ones are dropped (and counted), rows per
# Parquet file, and the longest a call waits in the queue.
MODELGATE_PREDICTION_LOG_CAPACITY = env.integer("MODELGATE_PREDICTION_LOG_CAPACITY", 100_000, minimum=1)
MODELGATE_PREDICTION_LOG_BATCH_ROWS = env.integer("MODELGATE_PREDICTION_LOG_BATCH_ROWS", 5_000, minimum=1)
MODELGATE_PREDICTION_LOG_FLUSH_SECONDS = env.number("MODELGATE_PREDICTION_LOG_FLUSH_SECONDS", 5.0, minimum=0.01)
# Records (or labels) one batch request of the API may carry.
MODELGATE_PREDICTION_BATCH_MAX = env.integer("MODELGATE_PREDICTION_BATCH_MAX", 10_000, minimum=1)
# Credentials are read by boto3 itself; named here so that deployment files may set them.
for _aws_name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_S3_ENDPOINT_URL"):
    env.raw(_aws_name)

# --- Celery -------------------------------------------------------------------------
CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL",
    f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}",
    schemes=("redis", "rediss", "amqp", "amqps", "pyamqp", "sqla", "filesystem", "memory"),
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "modelgate"
# Redis redelivers an unacknowledged task after the visibility timeout; it must outlast
# the longest job, or a running job would be handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": env.integer("MODELGATE_BROKER_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60)}
    if CELERY_BROKER_URL.startswith(("redis", "rediss"))
    else {}
)
CELERY_TASK_ALWAYS_EAGER = env.boolean("CELERY_TASK_ALWAYS_EAGER", default=False)
# Every task module (and the job worker's start-up hooks), found by configuration:
# services enqueue tasks by name and never import these modules.
CELERY_IMPORTS = (
    "registry.tasks",
    "lifecycle.governance.tasks",
    "lifecycle.jobs.tasks",
    "lifecycle.jobs.worker",
    "lifecycle.training.tasks",
    "lifecycle.deployments.tasks",
    "lifecycle.monitoring.tasks",
)
# Every periodic schedule of the platform, in one place.
CELERY_BEAT_SCHEDULE = {
    "registry.sync_mlflow": {
        "task": "registry.sync_mlflow",
        "schedule": timedelta(seconds=env.integer("MODELGATE_MLFLOW_SYNC_SECONDS", 300, minimum=10)),
    },
    "lifecycle.relay_outbox": {
        "task": "lifecycle.relay_outbox",
        "schedule": timedelta(seconds=env.integer("MODELGATE_OUTBOX_RELAY_SECONDS", 30, minimum=1)),
    },
    "lifecycle.schedule_jobs": {
        "task": "lifecycle.schedule_jobs",
        "schedule": timedelta(seconds=env.integer("MODELGATE_SCHEDULE_SECONDS", 10, minimum=1)),
    },
    "lifecycle.reap_jobs": {
        "task": "lifecycle.reap_jobs",
        "schedule": timedelta(seconds=env.integer("MODELGATE_REAP_SECONDS", 15, minimum=1)),
    },
    "lifecycle.retrain_due": {"task": "lifecycle.retrain_due", "schedule": crontab()},
    "lifecycle.reconcile_deployments": {
        "task": "lifecycle.reconcile_deployments",
        "schedule": timedelta(seconds=env.integer("MODELGATE_DEPLOYMENT_RECONCILE_SECONDS", 10, minimum=1)),
    },
    "lifecycle.monitor_deployments": {
        "task": "lifecycle.monitor_deployments",
        "schedule": timedelta(seconds=env.integer("MODELGATE_MONITOR_SECONDS", 60, minimum=1)),
    },
    "lifecycle.compact_prediction_log": {
        "task": "lifecycle.compact_prediction_log",
        "schedule": timedelta(seconds=env.integer("MODELGATE_PREDICTION_COMPACT_SECONDS", 3600, minimum=60)),
    },
    "registry.purge_idempotency_keys": {
        "task": "registry.purge_idempotency_keys",
        "schedule": crontab(minute=17),
    },
}

# --- Monitoring: drift and monitor rules -------------------------------------------
# Windows are aligned on multiples of this many seconds; a pass (every
# MODELGATE_MONITOR_SECONDS) stores each ended window of every served version, going back
# at most MODELGATE_MONITOR_LOOKBACK_WINDOWS windows.
MODELGATE_MONITOR_WINDOW_SECONDS = env.integer("MODELGATE_MONITOR_WINDOW_SECONDS", 300, minimum=1)
MODELGATE_MONITOR_LOOKBACK_WINDOWS = env.integer("MODELGATE_MONITOR_LOOKBACK_WINDOWS", 12, minimum=1)
# A claimed alert action holds its claim this long; a claim that ran out (its worker
# died mid-way) is taken over by the next pass, at most MODELGATE_ALERT_ACTION_ATTEMPTS
# claims in all before the action is failed for a person to take over.
MODELGATE_ALERT_ACTION_LEASE_SECONDS = env.integer("MODELGATE_ALERT_ACTION_LEASE_SECONDS", 300, minimum=1)
MODELGATE_ALERT_ACTION_ATTEMPTS = env.integer("MODELGATE_ALERT_ACTION_ATTEMPTS", 3, minimum=1)
# The prediction log keeps this many days of predictions and labels; a compaction
# (every MODELGATE_PREDICTION_COMPACT_SECONDS) merges each closed hour's files into one
# and deletes partitions older than that. 0 keeps everything.
MODELGATE_PREDICTION_RETENTION_DAYS = env.integer("MODELGATE_PREDICTION_RETENTION_DAYS", 90, minimum=0)
# One compaction of a log runs at a time: a run holds the log's lease this long, renewed
# before each partition; a run that died frees the log once it runs out.
MODELGATE_PREDICTION_UPKEEP_LEASE_SECONDS = env.integer("MODELGATE_PREDICTION_UPKEEP_LEASE_SECONDS", 900, minimum=1)
# Bearer token that a Prometheus scrape of /metrics (API and gateway) must send; empty:
# /metrics answers anyone who reaches it.
MODELGATE_METRICS_TOKEN = env.string("MODELGATE_METRICS_TOKEN", "")

# --- Jobs and workers ---------------------------------------------------------------
MODELGATE_SCHEDULER_STRATEGY = env.string("MODELGATE_SCHEDULER_STRATEGY", "least_loaded")
if MODELGATE_SCHEDULER_STRATEGY not in {
    "static",
    "round_robin",
    "least_loaded",
    "min_completion_time",
    "capability",
    "cost",
}:
    raise ImproperlyConfigured(f"MODELGATE_SCHEDULER_STRATEGY={MODELGATE_SCHEDULER_STRATEGY!r} is not a known strategy")
# Per-strategy configuration, e.g. {"static": {"assignments": {"fraud": ["gpu-a"]}}}.
MODELGATE_SCHEDULER_CONFIG: dict = {}
MODELGATE_JOB_DIR = env.string("MODELGATE_JOB_DIR", str(VAR_DIR / "jobs"))
MODELGATE_JOB_LEASE_SECONDS = env.integer("MODELGATE_JOB_LEASE_SECONDS", 60, minimum=2)
MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS = env.integer("MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS", 120, minimum=2)
MODELGATE_JOB_CANCEL_GRACE_SECONDS = env.number("MODELGATE_JOB_CANCEL_GRACE_SECONDS", 10.0, minimum=0)
MODELGATE_WORKER_HEARTBEAT_SECONDS = env.number("MODELGATE_WORKER_HEARTBEAT_SECONDS", 10.0, minimum=0.2)
MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS = env.number("MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS", 45.0, minimum=1)
# A ready replica silent for this long is marked unhealthy: the gateway tries it last.
MODELGATE_REPLICA_HEARTBEAT_TIMEOUT_SECONDS = env.number("MODELGATE_REPLICA_HEARTBEAT_TIMEOUT_SECONDS", 30.0, minimum=1)
# How thorough an evaluation job is: k-fold cross-validation folds, bootstrap rounds for
# confidence intervals, permutation-importance repeats (0 turns one off).
MODELGATE_EVALUATION_CV_FOLDS = env.integer("MODELGATE_EVALUATION_CV_FOLDS", 5, minimum=0)
MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS = env.integer("MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS", 200, minimum=0)
MODELGATE_EVALUATION_PERMUTATION_REPEATS = env.integer("MODELGATE_EVALUATION_PERMUTATION_REPEATS", 5, minimum=0)
# Whether an evaluation measures what a version costs to serve (latency, peak memory) when
# the request does not say. A model whose policy has a latency or memory gate is measured
# whatever this says, so the gate always gets its figure.
MODELGATE_EVALUATION_MEASURE = env.boolean("MODELGATE_EVALUATION_MEASURE", True)
# A new retrain schedule looks this far back for its first due run.
MODELGATE_RETRAIN_FIRST_LOOKBACK = timedelta(minutes=1)
# Read by the worker process itself (lifecycle/jobs/inventory.py); named here for deploy files.
for _worker_name in (
    "MODELGATE_WORKER_NAME",
    "MODELGATE_WORKER_POOL",
    "MODELGATE_WORKER_SLOTS",
    "MODELGATE_WORKER_GPUS",
    "MODELGATE_WORKER_LABELS",
    "MODELGATE_WORKER_COST_PER_HOUR",
    "MODELGATE_WORKER_CPUS",
    "MODELGATE_WORKER_MEMORY_MB",
    "MODELGATE_WORKER_ADDRESS",
):
    env.raw(_worker_name)

# --- API behaviour ------------------------------------------------------------------
MODELGATE_IDEMPOTENCY_TTL = timedelta(hours=24)
MODELGATE_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)

# Web logins: this many failures of one user name from one address within the window lock
# that pair out for the lockout (docs/security.md).
MODELGATE_LOGIN_MAX_FAILURES = env.integer("MODELGATE_LOGIN_MAX_FAILURES", 5, minimum=1)
MODELGATE_LOGIN_FAILURE_WINDOW = timedelta(
    seconds=env.integer("MODELGATE_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)
)
MODELGATE_LOGIN_LOCKOUT = timedelta(seconds=env.integer("MODELGATE_LOGIN_LOCKOUT_SECONDS", 15 * 60, minimum=1))
# Versions kept rendered per server process (about 1.5 kB each); 0 renders every time.
MODELGATE_RENDERED_VERSIONS = env.integer("MODELGATE_RENDERED_VERSIONS", 20000, minimum=0)
# Outbox and webhooks: retries back off exponentially from the base, up to the maximum,
# and are given up on (dead-lettered, re-sendable) after the number of attempts.
MODELGATE_OUTBOX_BACKOFF_SECONDS = env.number("MODELGATE_OUTBOX_BACKOFF_SECONDS", 5.0, minimum=0)
MODELGATE_OUTBOX_BACKOFF_MAX_SECONDS = env.number("MODELGATE_OUTBOX_BACKOFF_MAX_SECONDS", 3600.0, minimum=0)
MODELGATE_OUTBOX_MAX_ATTEMPTS = env.integer("MODELGATE_OUTBOX_MAX_ATTEMPTS", 8, minimum=1)
MODELGATE_WEBHOOK_TIMEOUT_SECONDS = env.number("MODELGATE_WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)

# One JSON object per line, with the request id, in production; plain lines elsewhere.
LOG_FORMAT = env.string("LOG_FORMAT", "json" if MODELGATE_ENV == "production" else "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be plain or json")
# LOG_FILE: also append every line to this file (the container logs stay on stderr).
LOGGING = logging_config(
    log_format=LOG_FORMAT, level=env.string("LOG_LEVEL", "INFO"), log_file=env.string("LOG_FILE", "")
)
