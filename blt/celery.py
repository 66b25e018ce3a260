"""The Celery application of the host project.

Workers start with ``celery -A blt worker``; the broker is CELERY_BROKER_URL
(Redis or RabbitMQ). Tasks are used only when MAIL_CELERY is true.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blt.settings")

app = Celery("blt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
