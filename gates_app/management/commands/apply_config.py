"""manage.py apply_config FILE --as USERNAME [--dry-run]: evals as code (DESIGN.md section 8)."""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from audit_app.context import acting_via
from datasets_app import config as datasets_config
from datasets_app.models import FailureClass
from evalproject.config import ConfigErrors, ConfigFileError, Plan, load_config
from gates_app import config as gates_config
from grading_app import config as grading_config
from monitoring_app import config as monitoring_config

# Sections in the order they are applied (later ones refer to earlier ones).
SECTIONS = (
    "failure_classes", "endpoints", "targets", "datasets", "rubrics", "graders",
    "sources", "gates", "monitors",
)  # fmt: skip


class DryRunRollback(Exception):
    """Raised inside the transaction to undo a dry run after planning it."""


class Command(BaseCommand):
    help = (
        "Load failure classes, endpoints, targets, datasets (with cases), rubrics, graders, trace "
        "sources, gates and monitors "
        "from a YAML or JSON file, idempotently. "
        "Every error is reported by path and nothing is written unless the whole file is valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--as", dest="username", required=True, help="the user the changes are recorded as"
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = get_user_model().objects.filter(username=options["username"], is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user named {options['username']!r}.")
        try:
            raw = load_config(options["file"])
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        errors = ConfigErrors()
        for key in sorted(set(raw) - set(SECTIONS)):
            errors.add(key, f"unknown section (known: {', '.join(SECTIONS)})")
        failure_classes = datasets_config.validate_failure_classes(raw.get("failure_classes"), errors)
        datasets = datasets_config.validate_datasets(
            raw.get("datasets"),
            errors,
            failure_classes={fc.slug for fc in failure_classes},
            base_dir=options["file"].resolve().parent,
        )
        grading = grading_config.validate(
            raw,
            errors,
            actor=actor,
            failure_classes={fc.slug for fc in failure_classes}
            | set(FailureClass.objects.values_list("slug", flat=True)),
        )
        if personas := datasets_config.persona_references(datasets):
            known = grading_config.rubric_slugs(grading)
            for path, slug in personas:
                if slug not in known:
                    errors.add(path, f"no rubric {slug!r} (declare it under rubrics, or create it first)")
        sources = monitoring_config.validate_sources(raw.get("sources"), errors)
        gates = gates_config.validate(
            raw.get("gates"),
            errors,
            datasets={d.slug for d in datasets},
            graders={g["slug"] for g in grading.graders},
            targets={t["slug"] for t in grading.targets},
            sources={s["slug"] for s in sources},
        )
        monitors = monitoring_config.validate_monitors(
            raw.get("monitors"),
            errors,
            sources={s["slug"] for s in sources},
            graders={g["slug"] for g in grading.graders},
            datasets={d.slug for d in datasets},
        )
        if errors:
            raise CommandError(
                f"{options['file']}: nothing applied; {len(errors.items)} problem(s):\n{errors}"
            )
        plan = Plan()
        try:
            with acting_via(f"manage.py apply_config {options['file']}"), transaction.atomic():
                datasets_config.apply_failure_classes(failure_classes, actor=actor, plan=plan)
                datasets_config.apply_datasets(datasets, actor=actor, plan=plan)
                grading_config.apply(grading, actor=actor, plan=plan)
                monitoring_config.apply_sources(sources, actor=actor, plan=plan)
                gates_config.apply(gates, actor=actor, plan=plan)
                monitoring_config.apply_monitors(monitors, actor=actor, plan=plan)
                # Asked last: a pinned case may be read by a grader this same file declares.
                if problems := datasets_config.check_pinned_gradable(datasets):
                    raise ValidationError([f"{path}: {problem}" for path, problem in problems])
                if options["dry_run"]:
                    raise DryRunRollback
        except DryRunRollback:
            pass
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError(
                "nothing applied: " + "; ".join(getattr(exc, "messages", [str(exc)]))
            ) from None
        for line in plan.lines:
            self.stdout.write(line)
        verb = "would change" if options["dry_run"] else "changed"
        self.stdout.write(
            f"{'Dry run: ' if options['dry_run'] else ''}{verb} {plan.changes} object group(s)."
        )
