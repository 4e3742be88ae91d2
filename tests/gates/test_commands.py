"""Management commands: the demo from a fresh database, create_token's one-time secret."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gates_app.models import DeployToken
from gates_app.tokens import authenticate_secret
from tests.factories import make_dataset, make_gate, make_user

REPO = Path(__file__).resolve().parents[2]


def test_demo_on_a_fresh_sqlite_database_prints_pass_then_fail(tmp_path):
    """The README's main job, in embedded mode: SQLite file, no Redis, jobs in-process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="true", EVALGATE_VAR_DIR=str(tmp_path))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=300)
    demo = subprocess.run([*manage, "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    good, regressed = demo.stdout.split("== Candidate v2.4.0-rc1")
    assert "verdict: PASS" in good or "verdict: WARN" in good
    assert "verdict: FAIL" in regressed
    assert "no data leaks on high-risk refusals" in regressed
    assert "/admin/" in demo.stdout and "demo-admin" in demo.stdout
    assert (tmp_path / "evalgate.sqlite3").exists()
    # Running it again reuses the data and still decides both candidates.
    again = subprocess.run([*manage, "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("verdict: FAIL") == 1


@pytest.mark.django_db
def test_create_token_prints_the_secret_alone_on_the_last_line_and_stores_only_a_hash():
    gate = make_gate(make_dataset(), slug="web-release")
    out = StringIO()
    call_command("create_token", "ci-deploy", "--gate", "web-release", "--expires", "30", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    token = DeployToken.objects.get(name="ci-deploy")
    assert secret.startswith(f"egt_{token.prefix}_")
    assert secret not in (token.secret_hash, token.prefix)
    assert list(token.gates.all()) == [gate]
    assert sorted(token.scopes) == ["checks:read", "checks:write"]
    assert token.expires_at is not None
    assert authenticate_secret(secret) == token
    assert authenticate_secret(secret + "x") is None


@pytest.mark.django_db
def test_create_token_for_a_user_makes_a_personal_token():
    user = make_user("carol")
    out = StringIO()
    call_command("create_token", "carol-laptop", "--user", "carol", stdout=out)
    token = authenticate_secret(out.getvalue().strip().splitlines()[-1])
    assert token.user == user and token.is_personal


@pytest.mark.django_db
def test_create_token_rejects_unknown_gate_and_writes_nothing():
    with pytest.raises(CommandError, match="No gate with slug 'nope'"):
        call_command("create_token", "x", "--gate", "nope", stdout=StringIO())
    assert DeployToken.objects.count() == 0
