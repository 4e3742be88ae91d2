"""Production settings pass Django's deployment checklist (`manage.py check --deploy`)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Variables the settings read for security: the outer environment (tests run with DEBUG on)
# must not leak into the production run.
SECURITY_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "EVALGATE_BEHIND_TLS_PROXY",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
)


def deploy_check(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SECURITY_VARIABLES}
    production = {
        "DJANGO_SETTINGS_MODULE": "evalproject.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "evalgate.example.com",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={**env, **production, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_behind_a_tls_proxy_pass_the_deploy_check():
    result = deploy_check(EVALGATE_BEHIND_TLS_PROXY="true")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_hsts_preload_is_opt_in_and_still_passes_when_chosen():
    result = deploy_check(EVALGATE_BEHIND_TLS_PROXY="true", SECURE_HSTS_PRELOAD="true")
    assert result.returncode == 0, result.stderr


def test_deploy_check_warns_without_the_tls_proxy_setting():
    result = deploy_check()
    assert result.returncode == 1
    # HSTS, SSL redirect, secure session and CSRF cookies are all missing.
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr
