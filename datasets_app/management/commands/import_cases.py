"""manage.py import_cases DATASET FILE --format jsonl|csv|promptfoo|openai-evals --as USERNAME"""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets_app import services
from datasets_app.importers import ImportFailed, read_cases
from datasets_app.models import Dataset, FailureClass

FORMATS = ("jsonl", "csv", "promptfoo", "openai-evals")


class Command(BaseCommand):
    help = "Import cases into a dataset, all or nothing: any bad line and nothing is written."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="dataset slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, default="jsonl")
        parser.add_argument("--failure-class", help="for cases without one (else: unclassified)")
        parser.add_argument("--input-field", default="input", help="OpenAI Evals API items: input key")
        parser.add_argument("--ideal-field", default="ideal", help="OpenAI Evals API items: reference key")
        parser.add_argument("--as", dest="username", help="importing user (recorded as contributor)")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['dataset']!r}.")
        failure_class = None
        if options["failure_class"]:
            failure_class = FailureClass.objects.filter(slug=options["failure_class"]).first()
            if failure_class is None:
                raise CommandError(f"No failure class with slug {options['failure_class']!r}.")
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"No user named {options['username']!r}.")
        try:
            data = options["file"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        parsed = read_cases(
            data, options["format"], input_field=options["input_field"], ideal_field=options["ideal_field"]
        )
        try:
            # The file's own errors go to the service with the good lines, so one error lists
            # those and the database conflicts (existing keys, unknown classes) together.
            created = services.import_cases(dataset, parsed, actor=actor, failure_class=failure_class)
        except ImportFailed as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(
                f"{options['file']}: nothing imported; {len(exc.errors)} problem(s):\n{lines}"
            ) from None
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from None
        self.stdout.write(f"Imported {len(created)} case(s) into {dataset.slug}.")
