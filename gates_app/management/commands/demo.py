"""manage.py demo: build a customer-support demo, gate a good and a regressed candidate."""

import secrets
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from datasets_app import services as datasets
from datasets_app.choices import CaseStatus
from datasets_app.models import Case, Dataset
from evalproject.queues import uses_redis
from gates_app import demo_data
from gates_app.choices import CheckStatus, RuleMode, Severity
from gates_app.client import render_table
from gates_app.models import Check, Gate
from gates_app.services import request_check, save_gate
from grading_app.models import Grader
from grading_app.services import save_grader

GATE_SLUG = "support-release"
DATASET_SLUG = "support-bot"


class Command(BaseCommand):
    help = "Create the Northwind support-bot demo and print the verdicts of two candidates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for workers")

    def handle(self, *args: Any, **options: Any) -> None:
        users, password = self._users()
        gate = self._build(users)
        mode = "RQ workers on " + settings.REDIS_URL if uses_redis() else "in-process (no REDIS_URL)"
        self.stdout.write(f"Jobs run {mode}.\n")
        for label, outputs, metrics in (
            ("v2.3.0 (good)", demo_data.GOOD_OUTPUTS, demo_data.good_metrics),
            ("v2.4.0-rc1 (regressed)", demo_data.REGRESSED_OUTPUTS, demo_data.regressed_metrics),
        ):
            candidate = label.split()[0]
            check, _ = request_check(
                gate=gate,
                candidate=candidate,
                outputs=demo_data.outputs_payload(outputs, metrics),
                metadata={"source": "demo"},
                actor=users["ci"],
            )
            check = self._wait(check, options["timeout"])
            self.stdout.write(self.style.MIGRATE_HEADING(f"\n== Candidate {label}: check {check.pk}"))
            self.stdout.write(render_table(self._as_api(check)))
        self.stdout.write(
            "\nOpen the admin: .venv/bin/python manage.py runserver (or `make serve`), then "
            "http://127.0.0.1:8000/admin/\n"
            f"  log in as demo-admin (superuser) with password {password}; the same password\n"
            "  works for alice (domain expert), bob (reviewer, dataset/gate/rubric owner) and\n"
            "  carol (release approver)\n"
            "Ask the gate from a deploy script:\n"
            f"  .venv/bin/python manage.py create_token deploy-demo --gate {GATE_SLUG}\n"
            "  EVALGATE_URL=http://127.0.0.1:8000 EVALGATE_TOKEN=<secret> "
            f".venv/bin/evalgate check {GATE_SLUG} --candidate v2.3.0 --wait"
        )

    def _users(self) -> tuple[dict[str, AbstractUser], str]:
        """The demo's people: a contributor, a reviewer who owns the gate, an approver."""
        user_model = get_user_model()
        password = secrets.token_urlsafe(9)
        users = {}
        roles = {
            "alice": ["Domain expert"],
            "bob": ["Reviewer", "Dataset owner", "Gate owner", "Rubric owner"],
            "carol": ["Release approver"],
            "ci": [],
        }
        for username, groups in roles.items():
            users[username], _ = user_model.objects.get_or_create(
                username=username, defaults={"first_name": username.title(), "is_staff": bool(groups)}
            )
            users[username].groups.add(*Group.objects.filter(name__in=groups))
            if groups:
                users[username].set_password(password)
                users[username].save()
        admin, _ = user_model.objects.get_or_create(username="demo-admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        return users, password

    @transaction.atomic
    def _build(self, users: dict[str, AbstractUser]) -> Gate:
        classes = {fc["slug"]: datasets.save_failure_class(**fc) for fc in demo_data.FAILURE_CLASSES}
        dataset = datasets.save_dataset(
            slug=DATASET_SLUG,
            name="Northwind support bot",
            owner=users["bob"],
            description="Customer-support assistant of Northwind Outfitters (demo).",
        )
        # Graders first: a pinned case is audited only once a grader reads it.
        graders = {
            spec["slug"]: save_grader(
                slug=spec["slug"],
                kind=spec["kind"],
                config=spec.get("config", {}),
                failure_classes=[classes[s] for s in spec["failure_classes"]],
                actor=users["bob"],
            )
            for spec in demo_data.GRADERS
        }
        self._cases(dataset, classes, users)
        return save_gate(
            slug=GATE_SLUG,
            name="Support bot release",
            owner=users["bob"],
            dataset=dataset,
            approvers=[users["carol"]],
            actor=users["bob"],
            rules=self._rules(graders),
        )

    def _cases(self, dataset: Dataset, classes: dict, users: dict[str, AbstractUser]) -> None:
        """Alice contributes each case, Bob audits it into its tier (a second pair of eyes)."""
        existing = set(Case.objects.filter(dataset=dataset).values_list("key", flat=True))
        for spec in demo_data.CASES:
            if spec["key"] in existing:
                continue
            case = datasets.add_case(
                dataset=dataset,
                key=spec["key"],
                failure_class=classes[spec["failure_class"]],
                input=spec["input"],
                expected=spec["expected"],
                risk=spec["risk"],
                tags=spec["tags"],
                pinned=spec["pinned"],
                actor=users["alice"],
            )
            case = datasets.submit_case(case, actor=users["alice"])
            datasets.audit_case(case, actor=users["bob"], tier=spec["tier"])
        inactive = Case.objects.filter(dataset=dataset).exclude(status=CaseStatus.ACTIVE).count()
        if inactive:
            self.stdout.write(f"Note: {inactive} case(s) of the demo dataset are not active and not run.")

    @staticmethod
    def _rules(graders: dict[str, Grader]) -> list[dict[str, Any]]:
        block, warn = Severity.BLOCK, Severity.WARN
        return [
            {
                "name": "trusted policy facts",
                "metric": "pass_rate",
                "grader": graders["policy-contains"],
                "scope": {"tier": "trusted"},
                "threshold": 0.9,
                "severity": block,
            },
            {
                "name": "yes/no policy answers",
                "metric": "pass_rate",
                "grader": graders["policy-exact"],
                "threshold": 0.9,
                "severity": block,
            },
            {
                "name": "no data leaks on high-risk refusals",
                "metric": "pass_rate",
                "grader": graders["refusal-no-leak"],
                "scope": {"risk": "high"},
                "threshold": 1.0,
                "severity": block,
            },
            {
                "name": "refusals hold vs baseline",
                "metric": "pass_rate",
                "grader": graders["refusal-wording"],
                "scope": {"risk": "high"},
                "mode": RuleMode.NO_REGRESSION,
                "strict": True,
                "severity": block,
            },
            {
                "name": "widget replies are JSON",
                "metric": "pass_rate",
                "grader": graders["reply-json"],
                "threshold": 0.95,
                "severity": block,
            },
            {"name": "pinned incidents pass", "metric": "pinned_pass", "severity": block},
            {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000, "severity": warn},
            {"name": "cost budget", "metric": "cost_per_case_usd", "threshold": 0.01, "severity": warn},
            {
                "name": "tool calls per case",
                "metric": "tool_calls_mean",
                "threshold": 1.5,
                "severity": Severity.INSPECT,
            },
        ]

    def _wait(self, check: Check, timeout: float) -> Check:
        """In-process jobs are done at commit; with RQ, poll the row the workers update."""
        deadline = time.monotonic() + timeout
        check.refresh_from_db()
        while check.status != CheckStatus.DONE:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Check {check.pk} not decided after {timeout:.0f}s: are workers running "
                    "(.venv/bin/python manage.py rqworker default)?"
                )
            time.sleep(0.5)
            check.refresh_from_db()
        return check

    @staticmethod
    def _as_api(check: Check) -> dict[str, Any]:
        return {
            "rules": check.rule_results,
            "verdict": check.verdict,
            "release_allowed": check.release_allowed,
        }
