"""WSGI entry point (gunicorn evalproject.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalproject.settings")
application = get_wsgi_application()
