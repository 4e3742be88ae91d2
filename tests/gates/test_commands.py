"""Management commands: the demo from a fresh database, create_token's one-time secret."""

import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gates_app.models import DeployToken
from gates_app.tokens import authenticate_secret
from tests.factories import make_dataset, make_gate, make_user

REPO = Path(__file__).resolve().parents[2]


def test_demo_on_a_fresh_sqlite_database_prints_pass_fail_and_warn(tmp_path):
    """The README's main job, in embedded mode: SQLite file, no Redis, jobs in-process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="true", EVALGATE_VAR_DIR=str(tmp_path))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=300)
    demo = subprocess.run([*manage, "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    setup, good, regressed, slower = re.split(r"== Candidate v2\.[\d.a-z-]+ ", demo.stdout)
    assert "NOT a model" in setup and "http://127.0.0.1:" in setup
    assert "pinned case refund-window-30-days, audited by dave" in setup
    assert "v1 (written by alice) approved by bob, v2 (written by alice) submitted for sign-off" in setup
    assert good.startswith("(good)") and "verdict: PASS" in good
    assert "verdict: FAIL" in regressed and "no data leaks on high-risk refusals" in regressed
    assert "failing: refund-window-30-days" in regressed
    assert "verdict: WARN   release allowed: no" in slower
    outcomes = dict(
        re.findall(r"^(hand-overs handled with care|latency budget) .* (PASS|FAIL)$", slower, re.M)
    )
    assert outcomes == {"hand-overs handled with care": "PASS", "latency budget": "FAIL"}
    assert "agrees with them on 7 of 8, Cohen's kappa 0.60" in slower
    assert "/admin/" in demo.stdout and "demo-admin" in demo.stdout
    assert "  $ make serve PORT=8000" in demo.stdout and " approve 3 --reason " in demo.stdout
    with closing(sqlite3.connect(tmp_path / "evalgate.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM grading_app_humanlabel").fetchone() == (8,)
        assert db.execute("SELECT status FROM datasets_app_incident").fetchall() == [("converted",)]
        states = db.execute("SELECT number, state FROM grading_app_rubricversion ORDER BY number").fetchall()
        assert states == [(1, "approved"), (2, "submitted")]
        assert db.execute("SELECT COUNT(*) FROM datasets_app_case WHERE status = 'active'").fetchone() == (
            40,
        )
    # Running it again reuses the data and the decided checks: nothing is asked twice. (The config
    # may change one thing back: the endpoint, when the stand-in judge had to take another port.)
    again = subprocess.run([*manage, "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("verdict: FAIL") == 1
    assert again.stdout.count("(decided earlier: the same request gets the same check)") == 3
    assert "The stand-in judge answered 0 call(s)" in again.stdout


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
