"""The Celery application shared by the web service (to enqueue) and the workers.

Settings come from Django's settings under the ``CELERY_`` prefix; periodic schedules
are all declared in ``CELERY_BEAT_SCHEDULE`` there, and the task modules a worker loads
in ``CELERY_IMPORTS``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modelgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
