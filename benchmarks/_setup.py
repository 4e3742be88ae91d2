"""Shared set-up for benchmark scripts: a throwaway database and Django, nothing else."""

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def django_on_scratch_database() -> Path:
    """Configure Django on a fresh SQLite file (unless DATABASE_URL is set) and migrate it."""
    sys.path.insert(0, str(REPO))
    scratch = Path(tempfile.mkdtemp(prefix="evalgate-bench-"))
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("EVALGATE_VAR_DIR", str(scratch))
    os.environ.pop("REDIS_URL", None)  # in-process jobs unless a benchmark starts workers itself
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalproject.settings")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)  # traffic stays on 127.0.0.1
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return scratch
